"""The control-plane database: one SQLite file (WAL) under the data home.

Models, and later devices, rollouts and alert states, live in one database so a change
that touches several of them is one transaction. The schema grows by migrations:
:data:`MIGRATIONS` is an ordered list of SQL scripts, and ``PRAGMA user_version`` says
how many of them a database has had. :func:`open_state_db` applies the missing ones,
each in its own transaction together with the new ``user_version``, so a crash leaves
the database at a whole number of migrations, and two processes opening the same
file at once apply each migration once. A feature that needs a table appends a
migration; a released migration is never edited.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vibewatch.errors import VibewatchError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "ServiceReport",
    "StateError",
    "open_state_db",
    "record_report",
    "service_reports",
    "transaction",
]

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a writer waits for another process's write transaction before giving up."""


class StateError(VibewatchError):
    """The state database cannot be opened or is of a newer schema than this program."""


MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the model registry's index. Versions of a model id only grow: the high-water
    # mark in model_versions is kept by a trigger and survives the deletion of rows.
    """
    CREATE TABLE models (
        model_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        status TEXT NOT NULL
            CHECK (status IN ('candidate', 'champion', 'retired', 'rejected')),
        path TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        metrics TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        decided_at TEXT,
        reason TEXT,
        PRIMARY KEY (model_id, version)
    ) STRICT;
    CREATE UNIQUE INDEX models_one_champion ON models (model_id) WHERE status = 'champion';
    CREATE TABLE model_versions (
        model_id TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL
    ) STRICT;
    CREATE TRIGGER models_version_high_water AFTER INSERT ON models
    BEGIN
        INSERT INTO model_versions (model_id, last_version) VALUES (NEW.model_id, NEW.version)
        ON CONFLICT (model_id) DO UPDATE
            SET last_version = max(last_version, excluded.last_version);
    END;
    """,
    # 2: OTA rollouts (vibewatch.ota.store): each rollout, each target's progress, the
    # operators' commands waiting for the controller, and the devices as their last
    # status messages describe them.
    """
    CREATE TABLE rollouts (
        rollout_id TEXT PRIMARY KEY,
        number INTEGER NOT NULL UNIQUE,
        model_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        plan TEXT NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('running', 'paused', 'completed', 'aborted')),
        wave INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE rollout_devices (
        rollout_id TEXT NOT NULL REFERENCES rollouts (rollout_id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        state TEXT NOT NULL,
        wave INTEGER NOT NULL,
        sent_s REAL,
        changed_s REAL NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (rollout_id, device)
    ) STRICT;
    CREATE TABLE rollout_commands (
        id INTEGER PRIMARY KEY,
        rollout_id TEXT NOT NULL REFERENCES rollouts (rollout_id) ON DELETE CASCADE,
        command TEXT NOT NULL CHECK (command IN ('pause', 'resume', 'abort')),
        reason TEXT NOT NULL,
        requested_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE devices (
        device TEXT PRIMARY KEY,
        online INTEGER NOT NULL,
        firmware TEXT,
        model_id TEXT,
        model_version INTEGER,
        status TEXT NOT NULL,
        last_seen TEXT NOT NULL
    ) STRICT;
    """,
    # 3: when each target reported the new model active (the regression guard's span).
    """
    ALTER TABLE rollout_devices ADD COLUMN activated_s REAL;
    """,
    # 4: the operators' `rollback` command (of a rollout, also after it ended), and the
    # devices' labels (`vibewatch devices label`, the groups of `ota deploy --group`).
    """
    CREATE TABLE rollout_commands_4 (
        id INTEGER PRIMARY KEY,
        rollout_id TEXT NOT NULL REFERENCES rollouts (rollout_id) ON DELETE CASCADE,
        command TEXT NOT NULL CHECK (command IN ('pause', 'resume', 'abort', 'rollback')),
        reason TEXT NOT NULL,
        requested_at TEXT NOT NULL
    ) STRICT;
    INSERT INTO rollout_commands_4 SELECT * FROM rollout_commands;
    DROP TABLE rollout_commands;
    ALTER TABLE rollout_commands_4 RENAME TO rollout_commands;
    CREATE TABLE device_labels (
        device TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (device, key)
    ) STRICT;
    """,
    # 5: the webhook outbox (vibewatch.alerts.outbox): every notification, stored before
    # it is sent, with its attempts and outcome.
    """
    CREATE TABLE alert_outbox (
        id TEXT PRIMARY KEY,
        receiver TEXT NOT NULL,
        body BLOB NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dead')),
        created_s REAL NOT NULL,
        next_s REAL NOT NULL,
        attempts INTEGER NOT NULL,
        last_status INTEGER,
        last_error TEXT NOT NULL,
        done_s REAL
    ) STRICT;
    CREATE INDEX alert_outbox_due ON alert_outbox (receiver, state, next_s);
    """,
    # 6: silences (vibewatch.alerts.silences): matchers, a time span, who and why.
    """
    CREATE TABLE alert_silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_s REAL NOT NULL,
        ends_s REAL NOT NULL,
        comment TEXT NOT NULL,
        created_by TEXT NOT NULL
    ) STRICT;
    """,
    # 7: the alerts service's state (vibewatch.alerts.store): every alert as the rules
    # last saw it (firing or resolved), each receiver's groups as its dispatcher holds
    # them (alerts, schedule, what was notified), and the services' reports of their
    # counters (the ingestion rule reads the ingest processes').
    """
    CREATE TABLE alerts (
        fingerprint TEXT PRIMARY KEY,
        alert TEXT NOT NULL,
        firing INTEGER NOT NULL,
        updated_s REAL NOT NULL
    ) STRICT;
    CREATE TABLE alert_groups (
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (receiver, group_key)
    ) STRICT;
    CREATE TABLE service_reports (
        service TEXT NOT NULL,
        instance TEXT NOT NULL,
        at_s REAL NOT NULL,
        interval_s REAL NOT NULL,
        figures TEXT NOT NULL,
        PRIMARY KEY (service, instance)
    ) STRICT;
    """,
)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction (``BEGIN IMMEDIATE``), rolled back on error.

    IMMEDIATE takes the write lock at the start, so a read-then-write block (check a
    version, then insert) cannot interleave with another writer. Inside a transaction
    already, the block is part of that one (which commits or rolls back as a whole).
    """
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.commit()


def _schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    current = _schema_version(db)
    if current > len(MIGRATIONS):
        raise StateError(
            f"state database {path} has schema version {current}, newer than the "
            f"{len(MIGRATIONS)} this vibewatch knows; upgrade vibewatch"
        )
    for number in range(current + 1, len(MIGRATIONS) + 1):
        with transaction(db):
            # Read again under the write lock: another process may have migrated meanwhile.
            if _schema_version(db) >= number:
                continue
            for statement in _statements(MIGRATIONS[number - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> Iterator[str]:
    """The complete statements of ``script``, one by one (``executescript`` would commit)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()!r}")


def _use_wal(db: sqlite3.Connection) -> str:
    """Switch ``db`` to WAL journaling; the journal mode it then has.

    The switch can fail at once as locked, without waiting on the busy timeout, while
    another connection is switching the same new file; it is tried again until
    :data:`BUSY_TIMEOUT_MS` has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


def open_state_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the state database and bring its schema up to date.

    The connection is in autocommit mode: write with :func:`transaction`. It has
    foreign keys on, WAL journaling (readers do not block the writer) with
    ``synchronous=NORMAL`` (durable at checkpoints, never corrupt), and waits up to
    :data:`BUSY_TIMEOUT_MS` for a lock.

    Args:
        path: The database file; missing parent directories are created.

    Returns:
        The open connection, schema at ``len(MIGRATIONS)``.

    Raises:
        StateError: The file is not a SQLite database, cannot be opened, or has a newer
            schema.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"cannot open the state database {path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        mode = _use_wal(db)
        if mode != "wal":
            raise StateError(f"state database {path} cannot use WAL journaling (mode {mode})")
        db.execute("PRAGMA synchronous = NORMAL")
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise StateError(f"cannot use the state database {path}: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return db


@dataclass(frozen=True)
class ServiceReport:
    """A service process's latest report of its counters (``service_reports``).

    Attributes:
        service: The service (``ingest``).
        instance: The process (its MQTT client id).
        at_s: When it reported, seconds since the epoch.
        interval_s: Seconds between its reports.
        figures: Its counters.
    """

    service: str
    instance: str
    at_s: float
    interval_s: float
    figures: Mapping[str, Any]


def record_report(db: sqlite3.Connection, report: ServiceReport) -> None:
    """Keep ``report`` as its process's latest."""
    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO service_reports (service, instance, at_s, interval_s, "
            "figures) VALUES (?, ?, ?, ?, ?)",
            (report.service, report.instance, report.at_s, report.interval_s,
             json.dumps(dict(report.figures))),
        )  # fmt: skip


def service_reports(db: sqlite3.Connection, service: str) -> list[ServiceReport]:
    """The latest report of each process of ``service``."""
    rows = db.execute(
        "SELECT instance, at_s, interval_s, figures FROM service_reports WHERE service = ? "
        "ORDER BY instance",
        (service,),
    ).fetchall()
    return [ServiceReport(service, i, at, every, json.loads(f)) for i, at, every, f in rows]
