"""The webhook outbox: every notification is stored in the state database before it is
sent, and stays there with its outcome.

A notification is ``pending`` until a receiver accepts it (``delivered``: a 2xx
answer), refuses it for good (``failed``: a 4xx other than 408 and 429, which the
receiver would answer again), or the retry budget is spent (``dead``). Each attempt is
recorded: its time, the receiver's status or the error, and when the next one is due.
The notification's id is its ``webhook-id``, the same on every attempt, so that a
receiver that took it once can drop a copy (an answer lost on its way back makes the
sender try again).

:func:`outcome` and :class:`RetryPolicy` are the rules (pure); :class:`Outbox` keeps
the notifications (one per thread: each opens its own connection).
"""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from vibewatch.retry import backoff
from vibewatch.state import transaction

__all__ = ["Notification", "Outbox", "RetryPolicy", "State", "outcome"]

#: 4xx answers that mean "not now" rather than "never".
_RETRYABLE_4XX: Final = frozenset({408, 429})
#: Longest ``Retry-After`` honoured, seconds.
_RETRY_AFTER_MAX: Final = 3600.0


class State(StrEnum):
    """Where a notification is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Refused for good (a 4xx other than 408 and 429)."""
    DEAD = "dead"
    """Not accepted within the retry budget."""


def outcome(status: int | None) -> State:
    """What an attempt's answer makes of a notification: ``None`` for no answer (a
    timeout, a refused or broken connection)."""
    if status is not None and 200 <= status < 300:
        return State.DELIVERED
    if status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return State.FAILED
    return State.PENDING


@dataclass(frozen=True)
class RetryPolicy:
    """When a notification is tried again.

    Attributes:
        initial: First delay, seconds.
        maximum: Longest delay, seconds.
        budget: Seconds from its creation after which a notification is dead.
    """

    initial: float = 1.0
    maximum: float = 300.0
    budget: float = 86_400.0

    def next_try(
        self, attempts: int, created_s: float, now_s: float, retry_after: float | None = None
    ) -> float | None:
        """When to try again after ``attempts`` attempts, or ``None`` when the budget is
        spent. A receiver's ``Retry-After`` (seconds, at most an hour) is honoured when
        it asks for longer than the backoff."""
        delay = backoff(attempts - 1, self.initial, self.maximum)
        if retry_after is not None:
            delay = max(delay, min(retry_after, _RETRY_AFTER_MAX))
        at = now_s + delay
        return at if at < created_s + self.budget else None


@dataclass(frozen=True)
class Notification:
    """A stored notification.

    Attributes:
        id: Its ``webhook-id``.
        receiver: The receiver's name.
        body: The JSON body, exactly as sent.
        state: Where it is.
        created_s: When it was stored.
        next_s: When it is due (pending).
        attempts: Attempts made.
        last_status: The receiver's last HTTP status (``None``: no answer, or none yet).
        last_error: What went wrong last, for people.
        done_s: When it was delivered, failed or died.
    """

    id: str
    receiver: str
    body: bytes
    state: State
    created_s: float
    next_s: float
    attempts: int
    last_status: int | None
    last_error: str
    done_s: float | None


_COLUMNS: Final = (
    "id, receiver, body, state, created_s, next_s, attempts, last_status, last_error, done_s"
)


def _row(row: tuple[Any, ...]) -> Notification:
    id_, receiver, body, state, created, next_s, attempts, status, error, done = row
    return Notification(
        id_, receiver, bytes(body), State(state), created, next_s, attempts, status, error, done
    )


class Outbox:
    """Notifications in an open state database (see the module documentation)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (from :func:`vibewatch.state.open_state_db`)."""
        self._db = db

    def step(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction around several calls (an attempt's record and the next
        claim); a call inside it is part of it."""
        return transaction(self._db)

    def add(self, receiver: str, body: bytes, now_s: float) -> str:
        """Store a notification for ``receiver``, due now; returns its id."""
        msg_id = "msg_" + secrets.token_urlsafe(18)
        with transaction(self._db):
            self._db.execute(
                f"INSERT INTO alert_outbox ({_COLUMNS}) VALUES (?, ?, ?, 'pending', ?, ?, 0, "  # noqa: S608
                "NULL, '', NULL)",
                (msg_id, receiver, body, now_s, now_s),
            )
        return msg_id

    def claim(self, receiver: str, now_s: float, lease_s: float) -> Notification | None:
        """The oldest due notification of ``receiver``, made due again only ``lease_s``
        from now: no other worker takes it meanwhile, and one that was being sent when
        its sender died is taken again after the lease."""
        with transaction(self._db):
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM alert_outbox WHERE receiver = ? AND state = "  # noqa: S608
                "'pending' AND next_s <= ? ORDER BY next_s, created_s LIMIT 1",
                (receiver, now_s),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE alert_outbox SET next_s = ? WHERE id = ?", (now_s + lease_s, row[0])
            )
        return _row(row)

    def next_due(self, receiver: str) -> float | None:
        """When the next pending notification of ``receiver`` is due."""
        row = self._db.execute(
            "SELECT min(next_s) FROM alert_outbox WHERE receiver = ? AND state = 'pending'",
            (receiver,),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def record(
        self,
        notification: Notification,
        *,
        state: State,
        status: int | None,
        error: str,
        now_s: float,
        next_s: float | None = None,
    ) -> None:
        """Record an attempt: its answer (``status``, ``error``) and what it made of the
        notification (``state``; ``next_s`` when it stays pending)."""
        done = None if state is State.PENDING else now_s
        with transaction(self._db):
            self._db.execute(
                "UPDATE alert_outbox SET state = ?, attempts = attempts + 1, last_status = ?, "
                "last_error = ?, next_s = ?, done_s = ? WHERE id = ?",
                (
                    state.value,
                    status,
                    error[:500],
                    notification.next_s if next_s is None else next_s,
                    done,
                    notification.id,
                ),
            )

    def notifications(
        self, *, receiver: str | None = None, state: State | None = None, limit: int = 1000
    ) -> list[Notification]:
        """Stored notifications, newest first, of one receiver or state when given."""
        where, args = [], []
        if receiver is not None:
            where.append("receiver = ?")
            args.append(receiver)
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM alert_outbox {clause}ORDER BY created_s DESC LIMIT ?",  # noqa: S608
            (*args, limit),
        ).fetchall()
        return [_row(row) for row in rows]
