"""Webhook delivery: signed notifications from the durable outbox to their receivers.

:meth:`Notifier.notify` stores a notification (:mod:`vibewatch.alerts.outbox`) and
wakes the receiver's workers; each receiver has ``concurrency`` worker threads of its
own, so a slow or dead receiver never delays another. A worker claims a due
notification (its next attempt moves past the attempt's timeout, so that no other
worker takes it meanwhile and a notifier killed during the attempt tries it again after
a restart), signs it for this attempt (:mod:`vibewatch.alerts.signing`: a new
``webhook-timestamp``, the same ``webhook-id``) and POSTs it:

* a 2xx answer delivers it;
* a 4xx other than 408 and 429 fails it for good (recorded with the answer);
* a timeout, a connection error, 408, 429 (its ``Retry-After`` honoured) or a 5xx
  leaves it pending, due again after a jittered exponential backoff, until the retry
  budget is spent: then it is dead.

The outcome is recorded in one transaction with the worker's next claim, and the
workers of a notifier take turns writing the outbox (a lock of the process) instead of
meeting in SQLite's busy handler, which sleeps a millisecond or more each time: one
write transaction an attempt instead of two, and fewer waits.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from vibewatch import __version__
from vibewatch.alerts.outbox import Notification, Outbox, RetryPolicy, State, outcome
from vibewatch.alerts.signing import sign
from vibewatch.config import Config, WebhookReceiver
from vibewatch.state import open_state_db

__all__ = ["Answer", "Notifier", "post"]

log = logging.getLogger(__name__)

#: Seconds a claimed notification is kept from other workers beyond its timeout.
_CLAIM_MARGIN_S: Final = 5.0
#: Longest answer body kept for the record, characters.
_ANSWER_CHARS: Final = 200


@dataclass(frozen=True)
class Answer:
    """What a receiver answered to one attempt.

    Attributes:
        status: The HTTP status; ``None`` when there was no answer.
        text: The start of the answer's body, or what went wrong.
        retry_after: The ``Retry-After`` the receiver asked for, seconds.
        seconds: How long the attempt took.
    """

    status: int | None
    text: str
    retry_after: float | None
    seconds: float


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def post(
    receiver: WebhookReceiver, msg_id: str, body: bytes, *, clock: Callable[[], float] = time.time
) -> Answer:
    """Sign ``body`` for this attempt and POST it to ``receiver``; never raises for what
    the network or the receiver does."""
    started = time.monotonic()
    now = clock()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"vibewatch/{__version__}",
        **sign([s.reveal() for s in receiver.secrets], msg_id, math.floor(now), body),
    }
    parts = urlsplit(receiver.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=receiver.timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=receiver.timeout
        )
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")[:_ANSWER_CHARS]
        status: int | None = response.status
        retry_after = _retry_after(response.getheader("Retry-After"), now)
    except (OSError, http.client.HTTPException) as exc:
        status, retry_after = None, None
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        conn.close()
    return Answer(status, text, retry_after, time.monotonic() - started)


@dataclass(frozen=True)
class _Attempt:
    """An attempt made, to be recorded."""

    receiver: WebhookReceiver
    note: Notification
    answer: Answer


class Notifier:
    """Delivers the outbox's notifications (see the module documentation)."""

    name = "notifier"

    def __init__(
        self,
        *,
        receivers: Sequence[WebhookReceiver],
        state_db: Path,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Assemble the notifier; nothing is sent until :meth:`start`.

        Args:
            receivers: The configured receivers.
            state_db: The state database (the outbox).
            policy: When notifications are tried again, and for how long (the defaults
                of :class:`RetryPolicy` when None).
            clock: Wall clock, seconds.
        """
        self._receivers = {r.name: r for r in receivers}
        self._state_db = state_db
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._wake = {name: threading.Event() for name in self._receivers}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        #: Held by a worker while it writes the outbox: the workers of this process take
        #: turns here rather than in SQLite's busy handler, which sleeps milliseconds.
        self._writing = threading.Lock()
        self.ready = False

    @classmethod
    def from_config(cls, config: Config) -> Notifier:
        """The notifier as ``[alerts]`` describes it."""
        alerts = config.alerts
        policy = RetryPolicy(alerts.retry_initial, alerts.retry_max, alerts.retry_budget)
        return cls(receivers=alerts.receivers, state_db=config.state_db, policy=policy)

    def _outbox(self) -> Outbox:
        outbox: Outbox | None = getattr(self._local, "outbox", None)
        if outbox is None:
            outbox = Outbox(open_state_db(self._state_db))
            self._local.outbox = outbox
        return outbox

    def notify(self, receiver: str, body: bytes) -> str:
        """Store a notification for ``receiver`` and wake its workers; returns its id.

        Raises:
            KeyError: No receiver of that name is configured.
        """
        if receiver not in self._receivers:
            raise KeyError(f"no receiver {receiver!r} in [alerts.receivers]")
        msg_id = self._outbox().add(receiver, body, self._clock())
        self.wake(receiver)
        return msg_id

    def wake(self, receiver: str) -> None:
        """Make ``receiver``'s workers look at the outbox now (a notification was stored
        for it by another connection)."""
        self._wake[receiver].set()

    def start(self, timeout: float = 30.0) -> None:
        """Start every receiver's workers (pending notifications go out at once)."""
        for receiver in self._receivers.values():
            for index in range(receiver.concurrency):
                thread = threading.Thread(
                    target=self._work,
                    args=(receiver,),
                    name=f"vibewatch-webhook-{receiver.name}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        self.ready = True

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the workers after their attempts in flight; whether each stopped."""
        self._stop.set()
        for event in self._wake.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _work(self, receiver: WebhookReceiver) -> None:
        outbox = self._outbox()
        wake = self._wake[receiver.name]
        lease = receiver.timeout + _CLAIM_MARGIN_S
        done: _Attempt | None = None  # the last attempt, recorded with the next claim
        while True:
            stopping = self._stop.is_set()
            wake.clear()  # before the claim: a notification stored after it wakes the wait
            with self._writing, outbox.step():
                if done is not None:
                    self._record(outbox, done)
                    done = None
                note = None if stopping else outbox.claim(receiver.name, self._clock(), lease)
            if stopping:
                return
            if note is None:
                due = outbox.next_due(receiver.name)
                wake.wait(1.0 if due is None else min(1.0, max(0.0, due - self._clock())))
                continue
            done = _Attempt(receiver, note, post(receiver, note.id, note.body, clock=self._clock))

    def _record(self, outbox: Outbox, attempt: _Attempt) -> None:
        note, answer = attempt.note, attempt.answer
        now = self._clock()
        state = outcome(answer.status)
        next_s = None
        if state is State.PENDING:
            next_s = self._policy.next_try(
                note.attempts + 1, note.created_s, now, answer.retry_after
            )
            if next_s is None:
                state = State.DEAD
        error = "" if state is State.DELIVERED else answer.text
        outbox.record(
            note, state=state, status=answer.status, error=error, now_s=now, next_s=next_s
        )
        level = logging.INFO if state is State.DELIVERED else logging.WARNING
        log.log(
            level,
            "webhook %s to %s: %s (%s) after %d attempts",
            note.id,
            attempt.receiver.name,
            state.value,
            answer.status if answer.status is not None else answer.text,
            note.attempts + 1,
        )
