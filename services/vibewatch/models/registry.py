"""The model registry: verified packages on disk, indexed in the state database.

Layout: ``<root>/<model_id>/<version>/`` holds the files of a package, copied in
atomically by :meth:`Registry.register` from bytes that were just verified;
``<root>/<model_id>/<version>.rollback.sig``, when present, the signed statement that
lets devices install that version as a rollback (:meth:`Registry.add_rollback`). The
``models`` table of the state database (:mod:`vibewatch.state`) holds one row per
package with its status:

* ``candidate`` — registered, not decided yet;
* ``champion`` — the model devices should run; at most one per model id (a unique
  index enforces it, and :meth:`Registry.promote` swaps champions in one transaction);
* ``retired`` — a former champion;
* ``rejected`` — a candidate that failed the quality gate.

Versions of a model id only grow: a package is registered only if its version is above
every version ever registered for that id, even ones whose rows were deleted since.
Nothing read back from disk is trusted: :meth:`Registry.load` verifies the package
again (signature, hashes, C engine) and checks that it is the one registered.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.errors import PackageError, RegistryError
from vibewatch.models.package import ModelPackage, rollback_problems, verify_package
from vibewatch.protocol import ID_RE
from vibewatch.state import open_state_db, transaction

__all__ = ["Registry", "RegistryEntry", "Status"]

Status = Literal["candidate", "champion", "retired", "rejected"]
_STATUSES: Final[tuple[Status, ...]] = ("candidate", "champion", "retired", "rejected")
# One query for every lookup: a NULL parameter matches anything.
_SELECT: Final = """
    SELECT model_id, version, status, path, registered_at, decided_at, reason, metrics
    FROM models
    WHERE (:model_id IS NULL OR model_id = :model_id)
      AND (:version IS NULL OR version = :version)
      AND (:status IS NULL OR status = :status)
    ORDER BY model_id, version
"""


@dataclass(frozen=True)
class RegistryEntry:
    """One registered package, as the index knows it.

    Attributes:
        model_id: The model id.
        version: The version (unique per model id).
        status: ``candidate``, ``champion``, ``retired`` or ``rejected``.
        path: The package directory.
        registered_at: When it was registered (UTC).
        decided_at: When its status last changed after registering (UTC), if it did.
        reason: Why it was promoted, rejected or retired.
        metrics: The ``metrics`` object of its manifest.
    """

    model_id: str
    version: int
    status: Status
    path: Path
    registered_at: datetime
    decided_at: datetime | None
    reason: str | None
    metrics: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The entry as plain JSON data (times in ISO 8601, path as a string)."""
        return {
            "model_id": self.model_id,
            "version": self.version,
            "status": self.status,
            "path": str(self.path),
            "registered_at": self.registered_at.isoformat(),
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "reason": self.reason,
            "metrics": self.metrics,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _status(value: str) -> Status:
    if value not in _STATUSES:
        raise RegistryError(f"unknown status {value!r} in the state database")
    return value


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> RegistryEntry:
    model_id, version, status, path, registered_at, decided_at, reason, metrics = row
    return RegistryEntry(
        model_id=model_id,
        version=version,
        status=_status(status),
        path=Path(path),
        registered_at=datetime.fromisoformat(registered_at),
        decided_at=None if decided_at is None else datetime.fromisoformat(decided_at),
        reason=reason,
        metrics=json.loads(metrics),
    )


class Registry:
    """Registered model packages and their status.

    Args:
        root: The registry directory (``train.registry_dir``); created when needed.
        db: The state database, open (:func:`vibewatch.state.open_state_db`) or its path,
            which is then opened here and closed by :meth:`close`.
        public_key: The key package signatures are checked with. ``None`` gives a view
            of the index only: reading, registering or promoting a package raises
            :class:`RegistryError`.
    """

    def __init__(
        self,
        root: Path,
        db: sqlite3.Connection | Path,
        public_key: Ed25519PublicKey | None,
    ) -> None:
        self.root = Path(root)
        self._owns_db = not isinstance(db, sqlite3.Connection)
        self._db = db if isinstance(db, sqlite3.Connection) else open_state_db(Path(db))
        self._public_key = public_key

    def close(self) -> None:
        """Close the state database if this registry opened it."""
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the index ------------------------------------------------------------

    def next_version(self, model_id: str) -> int:
        """1 + the highest version ever registered for ``model_id`` (1 for a new id)."""
        row = self._db.execute(
            "SELECT last_version FROM model_versions WHERE model_id = ?", (model_id,)
        ).fetchone()
        return 1 if row is None else int(row[0]) + 1

    def _select(
        self, model_id: str | None, version: int | None = None, status: Status | None = None
    ) -> list[RegistryEntry]:
        params = {"model_id": model_id, "version": version, "status": status}
        return [_entry(row) for row in self._db.execute(_SELECT, params)]

    def entries(self, model_id: str | None = None) -> list[RegistryEntry]:
        """Every entry, or those of one model id, ordered by model id and version."""
        return self._select(model_id)

    def _find(self, model_id: str, version: int) -> RegistryEntry | None:
        found = self._select(model_id, version)
        return found[0] if found else None

    def get(self, model_id: str, version: int) -> RegistryEntry:
        """The entry of one package.

        Raises:
            RegistryError: No such model id and version is registered.
        """
        entry = self._find(model_id, version)
        if entry is None:
            known = [e.version for e in self.entries(model_id)]
            have = f"registered versions: {known}" if known else "no version is registered"
            raise RegistryError(f"model {model_id} version {version} is not registered ({have})")
        return entry

    def champion(self, model_id: str) -> RegistryEntry | None:
        """The champion of ``model_id``, or None when it has none."""
        found = self._select(model_id, status="champion")
        return found[0] if found else None

    # --- packages -------------------------------------------------------------

    def _key(self, doing: str) -> Ed25519PublicKey:
        if self._public_key is None:
            raise RegistryError(f"cannot {doing} without the public key of the package signer")
        return self._public_key

    def register(self, package_dir: Path) -> RegistryEntry:
        """Verify a package and add it as a ``candidate``.

        Raises:
            RegistryError: The package fails verification (every problem in the
                message), its version is not above every version registered for its
                model id, or its model id cannot name a directory.
            OSError: The files cannot be copied.
        """
        key = self._key("register a package")
        try:
            package = verify_package(Path(package_dir), key)
        except PackageError as exc:
            raise RegistryError(f"refusing to register: {exc}") from exc
        model_id, version = package.model_id, package.version
        # A model id names a directory: a valid id (protocol.ID_RE), but no leading "."
        # (".", ".." and the hidden staging directories).
        if not ID_RE.fullmatch(model_id) or model_id.startswith("."):
            raise RegistryError(f"model id {model_id!r} cannot name a directory (starts with '.')")
        with transaction(self._db):
            # Under the write lock, so two registrations of one id cannot both pass.
            wanted = self.next_version(model_id)
            if version < wanted:
                raise RegistryError(
                    f"model {model_id} version {version} is not above the versions already "
                    f"registered: the next version must be at least {wanted}"
                )
            # A directory here without a row is what an interrupted registration left.
            target = self.root / model_id / str(version)
            package.save(target, overwrite=True)
            try:
                self._db.execute(
                    "INSERT INTO models (model_id, version, status, path, registered_at, "
                    "metrics, manifest_sha256) VALUES (?, ?, 'candidate', ?, ?, ?, ?)",
                    (
                        model_id,
                        version,
                        str(target),
                        _now(),
                        json.dumps(package.manifest["metrics"], sort_keys=True),
                        package.manifest_sha256,
                    ),
                )
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        return self.get(model_id, version)

    def _verified(self, model_id: str, version: int) -> tuple[ModelPackage | None, list[str]]:
        """The package read from disk and verified, or None and every problem."""
        key = self._key("read a package")
        entry = self.get(model_id, version)
        try:
            package = verify_package(entry.path, key)
        except PackageError as exc:
            return None, exc.problems
        registered = self._db.execute(
            "SELECT manifest_sha256 FROM models WHERE model_id = ? AND version = ?",
            (model_id, version),
        ).fetchone()[0]
        if package.manifest_sha256 != registered:
            return None, [
                f"manifest.json has sha256 {package.manifest_sha256}, the one registered "
                f"had {registered}"
            ]
        return package, []

    def verify(self, model_id: str, version: int) -> list[str]:
        """Every problem of a registered package on disk; empty when it is intact.

        Besides :func:`~vibewatch.models.package.verify_package`, the package must be the
        one that was registered (same manifest bytes), not another validly signed one.

        Raises:
            RegistryError: The package is not registered, or there is no public key.
        """
        return self._verified(model_id, version)[1]

    def load(self, model_id: str, version: int) -> ModelPackage:
        """Read a registered package, verified again.

        Raises:
            RegistryError: It is not registered, or it fails :meth:`verify` (a package
                changed on disk after registering); the message lists every problem.
        """
        package, problems = self._verified(model_id, version)
        if package is None:
            raise RegistryError(
                f"model {model_id} version {version} fails verification: " + "; ".join(problems)
            )
        return package

    def _rollback_path(self, model_id: str, version: int) -> Path:
        return self.get(model_id, version).path.with_name(f"{version}.rollback.sig")

    def add_rollback(self, model_id: str, version: int, statement: bytes) -> Path:
        """Keep the signed rollback statement of a registered package (see
        :func:`~vibewatch.models.package.sign_rollback`); returns where it is.

        Raises:
            RegistryError: The package is not registered or fails verification, or the
                statement is not its rollback statement signed by the registry's key.
            OSError: The file cannot be written.
        """
        package = self.load(model_id, version)
        problems = rollback_problems(package, statement, self._key("check a rollback"))
        if problems:
            raise RegistryError("; ".join(problems))
        path = self._rollback_path(model_id, version)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(statement)
        staging.replace(path)
        return path

    def rollback_statement(self, model_id: str, version: int) -> bytes | None:
        """The signed rollback statement of a registered package, checked again; ``None``
        when none was added.

        Raises:
            RegistryError: The package is not registered or fails verification, or the
                statement on disk is not valid.
        """
        path = self._rollback_path(model_id, version)
        try:
            statement = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from exc
        problems = rollback_problems(
            self.load(model_id, version), statement, self._key("check a rollback")
        )
        if problems:
            raise RegistryError(f"{path}: " + "; ".join(problems))
        return statement

    def export(self, model_id: str, version: int, dest_dir: Path) -> ModelPackage:
        """Copy a verified registered package to ``dest_dir`` (missing or empty).

        Raises:
            RegistryError: As :meth:`load`, or ``dest_dir`` exists and is not empty.
            OSError: The files cannot be written.
        """
        package = self.load(model_id, version)
        try:
            return package.save(Path(dest_dir))
        except PackageError as exc:
            raise RegistryError(f"cannot export to {dest_dir}: {'; '.join(exc.problems)}") from exc

    # --- decisions ------------------------------------------------------------

    def promote(self, model_id: str, version: int, reason: str) -> RegistryEntry:
        """Make a candidate (or a retired model, to roll back) the champion.

        The previous champion becomes ``retired``, in the same transaction. The package
        is verified first: a package that changed on disk is never promoted.

        Raises:
            RegistryError: It is not registered, fails verification, is rejected or is
                already the champion.
        """
        self.load(model_id, version)
        now = _now()
        with transaction(self._db):
            entry = self.get(model_id, version)
            if entry.status in ("champion", "rejected"):
                raise RegistryError(
                    f"model {model_id} version {version} is {entry.status}; only a candidate "
                    "or a retired model can be promoted"
                )
            self._db.execute(
                "UPDATE models SET status = 'retired', decided_at = ?, reason = ? "
                "WHERE model_id = ? AND status = 'champion'",
                (now, f"replaced by version {version}", model_id),
            )
            self._set(entry, "champion", now, reason)
        return self.get(model_id, version)

    def reject(self, model_id: str, version: int, reason: str) -> RegistryEntry:
        """Mark a candidate ``rejected`` (it failed the quality gate).

        Raises:
            RegistryError: It is not registered or not a candidate.
        """
        with transaction(self._db):
            entry = self.get(model_id, version)
            if entry.status != "candidate":
                raise RegistryError(
                    f"model {model_id} version {version} is {entry.status}; only a candidate "
                    "can be rejected"
                )
            self._set(entry, "rejected", _now(), reason)
        return self.get(model_id, version)

    def _set(self, entry: RegistryEntry, status: Status, now: str, reason: str) -> None:
        self._db.execute(
            "UPDATE models SET status = ?, decided_at = ?, reason = ? "
            "WHERE model_id = ? AND version = ?",
            (status, now, reason, entry.model_id, entry.version),
        )
