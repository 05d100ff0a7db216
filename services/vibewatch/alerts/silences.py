"""Silences: alerts whose labels match every matcher of a silence are not notified while
it lasts (``vibewatch alerts silence``).

A silence needs at least one matcher that does not match the empty string (a silence
of everything is a mistake, as Alertmanager says too); it starts now, ends after its
duration or when it is expired, and says who made it and why.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vibewatch.alerts.dispatch import Matcher
from vibewatch.state import transaction

__all__ = ["Silence", "SilenceError", "SilenceStore"]


class SilenceError(ValueError):
    """A silence that cannot be made or expired; the message says why."""


@dataclass(frozen=True)
class Silence:
    """One silence.

    Attributes:
        id: Its id.
        matchers: What it mutes: alerts whose labels match all of them.
        starts_s: When it started (seconds since the epoch).
        ends_s: When it ends (or ended).
        comment: Why.
        created_by: Who.
    """

    id: str
    matchers: tuple[Matcher, ...]
    starts_s: float
    ends_s: float
    comment: str
    created_by: str

    def active(self, now_s: float) -> bool:
        """Whether it mutes now."""
        return self.starts_s <= now_s < self.ends_s

    def mutes(self, labels: Mapping[str, str]) -> bool:
        """Whether it mutes an alert with ``labels`` (while active)."""
        return all(m.matches(labels) for m in self.matchers)


def _row(row: tuple[str, str, float, float, str, str]) -> Silence:
    id_, matchers, starts, ends, comment, by = row
    parsed = tuple(Matcher(m["name"], m["op"], m["value"]) for m in json.loads(matchers))
    return Silence(id_, parsed, starts, ends, comment, by)


class SilenceStore:
    """Silences in an open state database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (from :func:`vibewatch.state.open_state_db`)."""
        self._db = db

    def add(
        self,
        matchers: Sequence[Matcher],
        duration_s: float,
        comment: str,
        created_by: str,
        now_s: float,
    ) -> Silence:
        """Make a silence from now for ``duration_s``.

        Raises:
            SilenceError: No matcher, each matches the empty string, or the duration is
                not positive.
        """
        if not matchers or all(m.matches({}) for m in matchers):
            raise SilenceError(
                "a silence needs a matcher that does not match every alert, like "
                'device="pump-01" (each given matches an absent label)'
            )
        if not duration_s > 0:
            raise SilenceError(f"the duration must be > 0 s, not {duration_s:g}")
        silence = Silence(
            "sil_" + secrets.token_urlsafe(9),
            tuple(matchers),
            now_s,
            now_s + duration_s,
            comment,
            created_by,
        )
        text = json.dumps([{"name": m.name, "op": m.op, "value": m.value} for m in matchers])
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO alert_silences (id, matchers, starts_s, ends_s, comment, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?)",
                (silence.id, text, silence.starts_s, silence.ends_s, comment, created_by),
            )
        return silence

    def expire(self, silence_id: str, now_s: float) -> Silence:
        """End a silence now.

        Raises:
            SilenceError: No such silence, or it has ended.
        """
        with transaction(self._db):
            row = self._db.execute(
                "SELECT id, matchers, starts_s, ends_s, comment, created_by FROM alert_silences "
                "WHERE id = ?",
                (silence_id,),
            ).fetchone()
            if row is None:
                raise SilenceError(f"no silence {silence_id!r}")
            if row[3] <= now_s:
                raise SilenceError(f"silence {silence_id} has ended already")
            self._db.execute(
                "UPDATE alert_silences SET ends_s = ? WHERE id = ?", (now_s, silence_id)
            )
        return _row((*row[:3], now_s, *row[4:]))

    def silences(self, *, active_at: float | None = None) -> list[Silence]:
        """The silences, newest first; only those active at ``active_at`` when given."""
        columns = "id, matchers, starts_s, ends_s, comment, created_by"
        args: tuple[float, ...]
        if active_at is None:
            query, args = f"SELECT {columns} FROM alert_silences ORDER BY starts_s DESC", ()  # noqa: S608
        else:
            query = (
                f"SELECT {columns} FROM alert_silences WHERE starts_s <= ? AND ends_s > ? "  # noqa: S608
                "ORDER BY starts_s DESC"
            )
            args = (active_at, active_at)
        return [_row(row) for row in self._db.execute(query, args).fetchall()]
