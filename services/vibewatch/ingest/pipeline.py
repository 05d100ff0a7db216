"""Batching, writing, spooling and in-order acknowledgement.

The pipeline takes the encoded lines of each accepted message together with an
opaque acknowledgement token, and calls back with the tokens once the lines are
durable — written to InfluxDB, or appended (fsync'd) to the on-disk spool.

Threads::

    submit() ──► current batch ──(count or age)──► ready queue ──► writers (N) ──► InfluxDB
                                                       │              │ retry budget spent
                                                       │              ▼
                                        over buffer ───┴─► spiller ─► spool ─► replayer ─► InfluxDB

* Batches are sealed when they reach ``batch_max_points`` lines or when the
  oldest line is ``batch_max_age`` seconds old.
* A writer retries connection errors and 5xx with exponential backoff and
  jitter until ``retry_budget`` is spent, then appends the batch to the spool
  and marks InfluxDB as down: later batches go straight to the spool until a
  write succeeds again.
* A refused batch (4xx) is split in halves until the bad lines are isolated;
  they are handed to ``on_reject`` and the rest is written.
* When more than ``buffer_max_points`` lines wait in memory, the spiller moves
  the oldest batches to the spool, so memory stays bounded while InfluxDB is slow.
* The replayer writes spooled batches back, oldest first, whenever there are any.
* Tokens are released in the order their messages were submitted (MQTT 5 asks
  for PUBACKs in the order of the PUBLISH packets), never before their lines
  are durable. Lines that could not be made durable keep their tokens: the
  broker redelivers those messages after a restart.
* Shutdown is :meth:`Pipeline.drain`, then :meth:`Pipeline.close`: draining keeps
  taking messages and makes each batch durable at once (the spool when InfluxDB
  fails), until nothing new has arrived for a moment; closing then refuses new
  messages and flushes the rest. :attr:`Pipeline.unacknowledged` counts what was
  left to the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from vibewatch.errors import RejectedWriteError, RetryableWriteError, SpoolError
from vibewatch.influx.lineprotocol import encode_batch
from vibewatch.influx.writers import PointWriter
from vibewatch.ingest.spool import Spool
from vibewatch.ingest.stats import IngestStats
from vibewatch.retry import backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchPolicy:
    """How lines are batched, retried and spilled.

    Attributes:
        batch_max_points: Seal a batch at this many lines.
        batch_max_age: Seal a batch when its first line is this old (seconds).
        buffer_max_points: Lines allowed to wait in memory before spilling to the spool.
        retry_initial: First backoff delay (seconds).
        retry_max: Largest backoff delay (seconds).
        retry_budget: Time a batch is retried before it goes to the spool (seconds).
        write_concurrency: Batches written to InfluxDB at once.
    """

    batch_max_points: int = 5000
    batch_max_age: float = 1.0
    buffer_max_points: int = 50000
    retry_initial: float = 0.2
    retry_max: float = 10.0
    retry_budget: float = 5.0
    write_concurrency: int = 2

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0-based): exponential, half jittered."""
        return backoff(attempt, self.retry_initial, self.retry_max)


# Spools written before points were keyed in nanoseconds hold millisecond timestamps:
# 13 digits for every time ingest accepts (2020 to 2286), where nanoseconds have 19.
_MS_DIGITS = 13


def _nanosecond_lines(lines: list[str]) -> list[str]:
    """Lines of a spooled body with nanosecond timestamps (an older spool had milliseconds)."""
    if not lines or len(lines[0].rsplit(" ", 1)[-1]) != _MS_DIGITS:
        return lines
    return [f"{line}000000" for line in lines]


@dataclass(slots=True)
class _Batch(Generic[T]):
    lines: list[str] = field(default_factory=list)
    tokens: list[T] = field(default_factory=list)
    started: float = 0.0
    seq: int = -1


class Pipeline(Generic[T]):
    """Turns submitted lines into durable writes and releases tokens in order."""

    def __init__(
        self,
        *,
        writer: PointWriter,
        spool: Spool,
        stats: IngestStats,
        on_ack: Callable[[list[T]], None],
        on_reject: Callable[[str, str], None],
        policy: BatchPolicy = BatchPolicy(),
    ) -> None:
        """Create the pipeline; call :meth:`start` to run its threads.

        Args:
            writer: Where batches go.
            spool: Where batches go when the writer cannot take them.
            stats: Counters to update.
            on_ack: Called with tokens whose lines are durable, in submission order.
            on_reject: Called with ``(line, error)`` for each line InfluxDB refuses.
            policy: Batching and retry settings.
        """
        self._writer = writer
        self._spool = spool
        self._stats = stats
        self._on_ack = on_ack
        self._on_reject = on_reject
        self._policy = policy
        self._cv = threading.Condition()
        self._ack_lock = threading.Lock()
        self._stop = threading.Event()
        self._current: _Batch[T] = _Batch()
        self._ready: deque[_Batch[T]] = deque()
        self._ready_points = 0
        self._next_seq = 0
        self._ack_seq = 0
        self._done: dict[int, list[T]] = {}
        self._closing = False
        self._draining = False
        self._last_submit = 0.0
        self._tokens_in = 0
        self._tokens_out = 0
        self.refused = 0
        self._influx_down = False
        self._threads: list[threading.Thread] = []
        self._background: list[threading.Thread] = []
        self._last_spool_error = 0.0

    # ------------------------------------------------------------------ intake
    def start(self) -> None:
        """Start the writer, flusher, spiller and replayer threads."""
        for index in range(self._policy.write_concurrency):
            self._threads.append(self._spawn(self._write_loop, f"writer-{index}"))
        self._background = [
            self._spawn(self._flush_loop, "flusher"),
            self._spawn(self._spill_loop, "spiller"),
            self._spawn(self._replay_loop, "replayer"),
        ]

    @staticmethod
    def _spawn(target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"vibewatch-{name}", daemon=True)
        thread.start()
        return thread

    def submit(self, lines: Sequence[str], token: T | None) -> bool:
        """Queue the lines of one message; ``token`` comes back through ``on_ack``.

        A message with no lines (a rejected one) still passes its token through
        the queue so acknowledgements keep their order.

        Returns:
            ``False`` once the pipeline is closing: the message was not taken.
        """
        with self._cv:
            if self._closing:
                if token is not None:
                    self.refused += 1
                return False
            batch = self._current
            self._last_submit = time.monotonic()
            if not batch.lines and not batch.tokens:
                batch.started = self._last_submit
            batch.lines.extend(lines)
            if token is not None:
                batch.tokens.append(token)
                self._tokens_in += 1
            if len(batch.lines) >= self._policy.batch_max_points:
                self._seal_locked()
        return True

    def _seal_locked(self) -> None:
        batch = self._current
        if not batch.lines and not batch.tokens:
            return
        batch.seq = self._next_seq
        self._next_seq += 1
        self._ready.append(batch)
        self._ready_points += len(batch.lines)
        self._current = _Batch()
        self._cv.notify_all()

    @property
    def buffered_points(self) -> int:
        """Lines held in memory, not yet durable or being written."""
        with self._cv:
            return self._ready_points + len(self._current.lines)

    @property
    def influx_down(self) -> bool:
        """Whether new batches currently go straight to the spool."""
        return self._influx_down

    # ----------------------------------------------------------------- threads
    def _flush_loop(self) -> None:
        tick = min(0.05, self._policy.batch_max_age / 2)
        with self._cv:
            while not self._closing:
                self._cv.wait(tick)
                batch = self._current
                if (batch.lines or batch.tokens) and (
                    time.monotonic() - batch.started >= self._policy.batch_max_age
                ):
                    self._seal_locked()

    def _take(self, *, spill: bool) -> _Batch[T] | None:
        """Wait for a ready batch (for the spiller: only while over the buffer limit)."""
        with self._cv:
            while True:
                if spill and self._closing:
                    return None
                over = self._ready_points > self._policy.buffer_max_points
                if self._ready and (over or not spill):
                    batch = self._ready.popleft()
                    self._ready_points -= len(batch.lines)
                    return batch
                if self._closing and not self._ready:
                    return None
                self._cv.wait()

    def _write_loop(self) -> None:
        while (batch := self._take(spill=False)) is not None:
            if not self._deliver(batch):
                return  # closed before the batch was durable: its messages stay unacknowledged
            self._complete(batch)

    def _spill_loop(self) -> None:
        while (batch := self._take(spill=True)) is not None:
            while not self._to_spool(encode_batch(batch.lines), len(batch.lines)):
                if self._stop.wait(1.0):
                    return
            self._complete(batch)

    def _replay_loop(self) -> None:
        attempt = 0
        replayed = 0  # points written back since the spool was last empty
        while not self._stop.is_set():
            record = self._spool.peek()
            if record is None:
                if replayed:
                    log.info("spool drained: %d spooled points written to InfluxDB", replayed)
                    replayed = 0
                with self._cv:
                    self._cv.wait(0.5)
                continue
            lines = _nanosecond_lines(record.body.decode("utf-8").splitlines())
            try:
                written = self._write_isolating(lines)
            except RetryableWriteError as exc:
                delay = self._policy.backoff(attempt)
                attempt += 1
                log.info("InfluxDB still unavailable (%s); next replay in %.1fs", exc, delay)
                self._stop.wait(delay)
                continue
            attempt = 0
            replayed += written
            self._spool.commit(record)
            self._influx_down = False
            with self._stats.lock:
                self._stats.points_replayed += written
                self._stats.points_written += written

    # ----------------------------------------------------------------- writing
    def _deliver(self, batch: _Batch[T]) -> bool:
        """Make a batch durable: InfluxDB, else the spool; keep trying while neither works.

        Returns:
            ``False`` when the pipeline was stopped before the batch was durable.
        """
        if not batch.lines:
            return True
        body = encode_batch(batch.lines)
        deadline = time.monotonic() + self._policy.retry_budget
        attempt = 0
        while True:
            if self._stop.is_set():
                return False
            spool_first = self._influx_down or self._closing_and_failing(attempt)
            if spool_first and self._to_spool(body, len(batch.lines)):
                return True
            try:
                written = self._write_isolating(batch.lines, body)
            except RetryableWriteError as exc:
                with self._stats.lock:
                    self._stats.write_retries += 1
                if time.monotonic() >= deadline and not spool_first:
                    log.warning("InfluxDB unavailable past the retry budget (%s): spooling", exc)
                    if self._to_spool(body, len(batch.lines)):
                        self._influx_down = True
                        return True
            else:
                self._influx_down = False
                with self._stats.lock:
                    self._stats.points_written += written
                    self._stats.batches_written += 1
                return True
            self._stop.wait(self._policy.backoff(attempt))
            attempt += 1

    def _closing_and_failing(self, attempt: int) -> bool:
        """While shutting down, a batch that already failed once goes to the spool at once."""
        return (self._closing or self._draining) and attempt > 0

    def _write_isolating(self, lines: list[str], body: bytes | None = None) -> int:
        """Write lines; split refused bodies to isolate bad lines. Return lines written.

        Raises:
            RetryableWriteError: A transient failure; parts may already be written
                (rewriting them later is idempotent).
        """
        try:
            self._writer.write(encode_batch(lines) if body is None else body)
        except RetryableWriteError:
            raise
        except RejectedWriteError as exc:
            if len(lines) == 1:
                self._on_reject(lines[0], str(exc))
                return 0
            middle = len(lines) // 2
            return self._write_isolating(lines[:middle]) + self._write_isolating(lines[middle:])
        except Exception as exc:  # a writer bug must not end the thread: retry like an outage
            log.exception("unexpected error writing to InfluxDB")
            raise RetryableWriteError(f"unexpected writer error: {exc!r}") from exc
        return len(lines)

    def _to_spool(self, body: bytes, points: int) -> bool:
        try:
            self._spool.append(body)
        except SpoolError as exc:
            now = time.monotonic()
            if now - self._last_spool_error > 10:
                self._last_spool_error = now
                log.error("cannot spool (%s); messages stay unacknowledged until it works", exc)
            return False
        with self._stats.lock:
            self._stats.points_spooled += points
        with self._cv:
            self._cv.notify_all()
        return True

    def _complete(self, batch: _Batch[T]) -> None:
        self._stats.add_latency(time.monotonic() - batch.started)
        with self._ack_lock:
            released: list[T] = []
            with self._cv:
                self._done[batch.seq] = batch.tokens
                while self._ack_seq in self._done:
                    released.extend(self._done.pop(self._ack_seq))
                    self._ack_seq += 1
                self._tokens_out += len(released)
                self._cv.notify_all()
            if released:
                self._on_ack(released)

    # ---------------------------------------------------------------- shutdown
    @property
    def unacknowledged(self) -> int:
        """Messages taken or refused whose tokens were not released: the broker keeps them."""
        with self._cv:
            return self._tokens_in - self._tokens_out + self.refused

    def drain(self, *, quiet: float = 0.5, timeout: float = 30.0) -> bool:
        """Keep taking messages, make each batch durable at once, until arrivals stop.

        Every ``quiet / 2`` seconds the open batch is sealed; a batch that fails to
        write once goes to the spool. Returns when every token submitted so far is
        released and nothing was submitted for ``quiet`` seconds.

        Returns:
            ``True`` when arrivals stopped and everything was released within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        self._draining = True
        with self._cv:
            while True:
                self._seal_locked()
                now = time.monotonic()
                settled = self._tokens_in == self._tokens_out and self._ack_seq == self._next_seq
                if settled and now - self._last_submit >= quiet:
                    return True
                if now >= deadline:
                    return False
                self._cv.wait(min(quiet / 2, deadline - now))

    def close(self, timeout: float = 30.0) -> bool:
        """Seal the open batch, make everything durable, release tokens, stop threads.

        Past ``timeout`` the pipeline gives up on what is not durable yet; those
        messages stay unacknowledged and the broker delivers them again later.

        Returns:
            ``True`` when every submitted line was made durable within ``timeout``.
        """
        with self._cv:
            self._closing = True
            self._seal_locked()
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        clean = not any(thread.is_alive() for thread in self._threads)
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for thread in (*self._threads, *self._background):
            thread.join(max(0.1, deadline - time.monotonic()))
        return clean
