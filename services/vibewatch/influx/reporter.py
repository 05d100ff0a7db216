"""Points a service writes about its own state: in the background, best effort.

The OTA controller and the alerts service keep their state in the state database; the
points they write to InfluxDB (rollout progress, alert changes) are a view of it for the
dashboards, and InfluxDB being slow or down must never hold up or stop the service::

    service thread ── put(points) ──► lines in memory ──► reporter thread ──► PointWriter

* :meth:`PointReporter.put` encodes the points and queues their lines; it never blocks
  on InfluxDB and never raises (a point that cannot be encoded is counted and logged);
* the reporter's thread writes the lines in batches through a
  :class:`~vibewatch.influx.writers.PointWriter`. A failed write is retried with backoff
  (:func:`~vibewatch.retry.backoff`) while the lines wait; beyond ``max_lines`` waiting
  the oldest are dropped and counted. A refused body (400, 413, 422: a bug, not an
  outage) is dropped, counted and logged;
* the log says once when writes start failing and once when they work again, with the
  counts; :meth:`PointReporter.stop` tries what is left once more and says what was lost.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from vibewatch.errors import PointError, RejectedWriteError, WriteError
from vibewatch.influx.lineprotocol import Point, encode_batch, encode_point
from vibewatch.influx.writers import PointWriter
from vibewatch.retry import backoff

__all__ = ["PointReporter", "ReporterCounts"]

log = logging.getLogger(__name__)

#: Lines written in one request at most.
BATCH_LINES: Final = 5000


@dataclass(frozen=True)
class ReporterCounts:
    """What a :class:`PointReporter` did with the points it was given.

    Attributes:
        written: Points InfluxDB accepted.
        dropped: Points given up: beyond the limit while InfluxDB was down, refused by
            it, not encodable, or left at :meth:`PointReporter.stop`.
        failed_writes: Write attempts that failed (each retried, or given up at stop).
        waiting: Points waiting to be written.
    """

    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    waiting: int = 0

    def __str__(self) -> str:
        return (
            f"points written {self.written}, dropped {self.dropped}, "
            f"failed writes {self.failed_writes}, waiting {self.waiting}"
        )


class PointReporter:
    """Writes a service's points on a thread of its own (see the module documentation)."""

    def __init__(
        self,
        writer: PointWriter,
        *,
        name: str,
        max_lines: int = 100_000,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        """Assemble the reporter; nothing is written until :meth:`start`.

        Args:
            writer: Where the points go (closed by :meth:`stop`).
            name: The service's name, in the log and the thread's name.
            max_lines: Lines that may wait at most; beyond, the oldest are dropped.
            retry_initial: Seconds before the first retry of a failed write (doubling).
            retry_max: Seconds between two retries at most.
        """
        self._writer = writer
        self._name = name
        self._max_lines = max_lines
        self._retry = (retry_initial, retry_max)
        self._lines: collections.deque[str] = collections.deque()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = self._dropped = self._failed = self._in_flight = 0

    @property
    def counts(self) -> ReporterCounts:
        """What was done with the points so far."""
        with self._wake:
            waiting = len(self._lines) + self._in_flight
            return ReporterCounts(self._written, self._dropped, self._failed, waiting)

    def start(self) -> None:
        """Start the thread that writes."""
        self._thread = threading.Thread(
            target=self._run, name=f"vibewatch-{self._name}-points", daemon=True
        )
        self._thread.start()

    def put(self, points: Iterable[Point]) -> None:
        """Queue ``points`` to be written; returns at once, never raises."""
        lines = []
        for point in points:
            try:
                lines.append(encode_point(point))
            except PointError as exc:
                with self._wake:
                    self._dropped += 1
                log.error("%s: a point of %s cannot be written: %s", self._name, point, exc)
        if not lines:
            return
        with self._wake:
            self._lines.extend(lines)
            self._bound()
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what waits (one attempt, within ``timeout`` seconds), stop the thread,
        close the writer; the log says how many points were left unwritten."""
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._writer.close()
        waiting = self.counts.waiting
        if waiting:
            log.warning("%s: %d points could not be written to InfluxDB", self._name, waiting)

    def _bound(self) -> None:
        """Drop the oldest lines beyond the limit (called holding the lock)."""
        over = len(self._lines) - self._max_lines
        if over > 0:
            for _ in range(over):
                self._lines.popleft()
            self._dropped += over

    def _take(self) -> list[str]:
        """The next batch, out of the queue; empty once stopped with nothing left."""
        with self._wake:
            while not self._lines and not self._stop.is_set():
                self._wake.wait()
            batch = [self._lines.popleft() for _ in range(min(BATCH_LINES, len(self._lines)))]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        attempt = 0
        down_since = 0.0
        while batch := self._take():
            try:
                self._writer.write(encode_batch(batch))
            except RejectedWriteError as exc:
                log.error("%s: InfluxDB refused %d points: %s", self._name, len(batch), exc)
                self._done(dropped=len(batch))
            except WriteError as exc:
                if self._stop.is_set():  # the last attempt
                    self._done(dropped=0, failed=1, back=batch)
                    return
                if not attempt:
                    down_since = time.monotonic()
                    log.warning(
                        "%s: cannot write to InfluxDB, retrying (at most %d points wait): %s",
                        self._name,
                        self._max_lines,
                        exc,
                    )
                self._done(dropped=0, failed=1, back=batch)
                self._stop.wait(backoff(attempt, *self._retry))
                attempt += 1
            except Exception:  # a writer's bug must not end the thread
                log.exception("%s: unexpected error writing %d points", self._name, len(batch))
                self._done(dropped=len(batch))
            else:
                self._done(written=len(batch))
                if attempt:
                    log.warning(
                        "%s: InfluxDB takes points again after %.0f s (%s)",
                        self._name,
                        time.monotonic() - down_since,
                        self.counts,
                    )
                attempt = 0

    def _done(
        self, *, written: int = 0, dropped: int = 0, failed: int = 0, back: list[str] | None = None
    ) -> None:
        """Count a batch's fate; a batch to try again goes back to the front."""
        with self._wake:
            self._in_flight = 0
            self._written += written
            self._dropped += dropped
            self._failed += failed
            if back:
                self._lines.extendleft(reversed(back))
                self._bound()
