"""The alerts service's state in the state database, so that a restart forgets nothing:
every alert as the rules last saw it (``alerts``: firing, or resolved with its end) and
each receiver's groups as its dispatcher holds them (``alert_groups``).

:meth:`AlertStore.save` writes a step of the service — the alerts that changed, the
groups that changed, the notifications made — in one transaction with the notifications'
outbox rows: a notification is in the outbox exactly when its group says it was sent,
whatever instant the process dies at.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vibewatch.alerts.model import Alert
from vibewatch.alerts.outbox import Outbox
from vibewatch.alerts.rules import RolloutRecord
from vibewatch.state import transaction

__all__ = ["AlertStore", "StoredAlert"]

#: Resolved alerts are kept this long for ``vibewatch alerts list --all``.
RESOLVED_KEPT_S: Final = 7 * 86400.0


@dataclass(frozen=True)
class StoredAlert:
    """An alert as last saved.

    Attributes:
        alert: The alert.
        updated_s: When it was saved, seconds since the epoch.
    """

    alert: Alert
    updated_s: float


class AlertStore:
    """The alerts and the groups in an open state database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (from :func:`vibewatch.state.open_state_db`)."""
        self._db = db
        self._outbox = Outbox(db)

    def alerts(self, *, firing_only: bool = True) -> list[StoredAlert]:
        """The saved alerts, newest first (resolved ones too unless ``firing_only``)."""
        where = "WHERE firing = 1 " if firing_only else ""
        rows = self._db.execute(
            f"SELECT alert, updated_s FROM alerts {where}ORDER BY updated_s DESC, fingerprint"  # noqa: S608
        ).fetchall()
        return [StoredAlert(Alert.from_dict(json.loads(a)), at) for a, at in rows]

    def groups(self, receiver: str) -> list[dict[str, Any]]:
        """The saved groups of ``receiver``'s dispatcher."""
        rows = self._db.execute(
            "SELECT state FROM alert_groups WHERE receiver = ?", (receiver,)
        ).fetchall()
        return [json.loads(state) for (state,) in rows]

    def save(
        self,
        alerts: Iterable[Alert],
        groups: Mapping[str, Mapping[str, dict[str, Any] | None]],
        notices: Sequence[tuple[str, bytes]],
        now_s: float,
    ) -> list[tuple[str, str]]:
        """Save a step in one transaction; the notifications' (receiver, id).

        Args:
            alerts: Alerts that changed.
            groups: By receiver, the groups that changed (None: gone), by key.
            notices: (receiver, body) of the notifications to send.
            now_s: The time, seconds since the epoch.
        """
        with transaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO alerts (fingerprint, alert, firing, updated_s) "
                "VALUES (?, ?, ?, ?)",
                [(a.fingerprint, json.dumps(a.as_dict()), a.firing, now_s) for a in alerts],
            )
            for receiver, changed in groups.items():
                self._db.executemany(
                    "DELETE FROM alert_groups WHERE receiver = ? AND group_key = ?",
                    [(receiver, key) for key, state in changed.items() if state is None],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO alert_groups (receiver, group_key, state) "
                    "VALUES (?, ?, ?)",
                    [(receiver, key, json.dumps(s)) for key, s in changed.items() if s is not None],
                )
            return [(r, self._outbox.add(r, body, now_s)) for r, body in notices]

    def forget_resolved(self, now_s: float) -> int:
        """Drop resolved alerts saved more than :data:`RESOLVED_KEPT_S` ago; how many."""
        with transaction(self._db):
            cursor = self._db.execute(
                "DELETE FROM alerts WHERE firing = 0 AND updated_s < ?",
                (now_s - RESOLVED_KEPT_S,),
            )
        return cursor.rowcount

    def rollouts(self) -> list[RolloutRecord]:
        """The OTA rollouts (``vibewatch.ota.store``'s table) as the rules see them."""
        rows = self._db.execute(
            "SELECT rollout_id, number, model_id, version, phase, reason, updated_at "
            "FROM rollouts ORDER BY number"
        ).fetchall()
        return [
            RolloutRecord(i, n, m, v, p, r, datetime.fromisoformat(at).timestamp())
            for i, n, m, v, p, r, at in rows
        ]

    def devices(self) -> list[str]:
        """The devices the OTA controller has heard of."""
        return [d for (d,) in self._db.execute("SELECT device FROM devices ORDER BY device")]
