"""Telemetry load: the messages, and the generator that publishes them at a rate.

:func:`telemetry_stream` builds a fleet's telemetry, round-robin over its devices, with
realistic values; :func:`telemetry` one message with distinct values. The
:class:`LoadGenerator` publishes any ``(topic, payload)`` messages at QoS 1 over one MQTT
connection, as fast as it can or at a rate, and reports what the broker acknowledged
(:class:`LoadReport`). It serves the ingest tests (in a thread, through
:meth:`LoadGenerator.start`), the ingest benchmark (in a process of its own, through
:class:`LoadProcess`, so that its CPU time is not the measured process's) and the fleet
simulator.

How a run publishes::

    caller thread                          paho network thread
    ─────────────                          ───────────────────
    take a window slot (at most `window`   PUBACK ─► mark the message acknowledged,
      messages unacknowledged), pace,                free its window slot
      publish ────────────────────────────►
    wait for the acknowledgements; with `retry_after`, publish again a message not
    acknowledged that long after its last send, while connected

The window is kept here rather than by paho's ``max_inflight_messages``: with a limit
set, paho 2.x scans every message it holds on each PUBACK, which is quadratic with a large
window (measured: 536 messages/s at 100% CPU with a limit of 10,000); with none (0) it does
not scan. A message published while the client is disconnected is held by paho and sent
when the connection is back; the client reconnects by itself.

A failure to connect or to finish a single :meth:`LoadGenerator.publish` raises
:class:`~vibewatch.testing.servers.LocalServerError`.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Final, Generic, Self, TypeVar, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from vibewatch.protocol import Reading, Telemetry
from vibewatch.testing.servers import LOOPBACK, LocalServerError

__all__ = [
    "DAY_MS",
    "DEFAULT_WINDOW",
    "READINGS_PER_MESSAGE",
    "VALUE_POOL",
    "Background",
    "LoadGenerator",
    "LoadJob",
    "LoadProcess",
    "LoadReport",
    "device_id",
    "reading_values",
    "telemetry",
    "telemetry_stream",
]

DAY_MS: Final = 86_400_000
"""A day in milliseconds: streams start a day or two back, inside ingest's accepted times."""

READINGS_PER_MESSAGE: Final = 10
"""Readings in each message of :func:`telemetry_stream` unless told otherwise."""

VALUE_POOL: Final = 4099
"""Distinct reading values cycled through by :func:`telemetry_stream` (a prime)."""

DEFAULT_WINDOW: Final = 10_000
"""Messages a :class:`LoadGenerator` may have unacknowledged unless told otherwise."""

T = TypeVar("T")

_PACING_SLOTS_PER_S: Final = 20
"""A paced run publishes in bursts of ``rate / 20`` messages: cheap, and close to the rate."""


# --- the messages --------------------------------------------------------------------


def device_id(index: int) -> str:
    """The id of device number ``index`` of a stream, ``dev-0007``."""
    return f"dev-{index:04d}"


def reading_values(seed: int) -> list[tuple[float, float, float, float, float]]:
    """:data:`VALUE_POOL` realistic ``(score, rms, peak, crest, kurtosis)`` tuples.

    Rounded to six decimals as firmware prints them, so that line protocol written from
    them is as long as what ingest writes for real devices.

    Args:
        seed: Seed of the values.
    """
    rng = random.Random(seed)
    pool = []
    for _ in range(VALUE_POOL):
        rms = rng.uniform(0.05, 1.5)
        crest = rng.uniform(2.5, 8.0)
        pool.append(
            (
                round(rng.lognormvariate(-3.5, 0.6), 6),
                round(rms, 6),
                round(rms * crest, 6),
                round(crest, 6),
                round(rng.uniform(2.6, 6.0), 6),
            )
        )
    return pool


def telemetry(device: str, seq0: int, t0: int, n: int = READINGS_PER_MESSAGE) -> Telemetry:
    """A telemetry message of ``n`` one-second readings with distinct values.

    Args:
        device: Device id.
        seq0: Sequence number of the first reading.
        t0: Device time of the first reading, epoch milliseconds.
        n: Number of readings.
    """
    return Telemetry(
        device=device,
        readings=tuple(
            Reading(
                seq=seq0 + i,
                t=t0 + 1000 * i,
                score=(seq0 + i) / 7,
                rms=0.25 + i / 1000,
                peak=1.5,
                crest=6.0,
                kurtosis=3.0 + i / 3,
            )
            for i in range(n)
        ),
    )


def telemetry_stream(
    devices: int,
    messages: int,
    *,
    t0: int,
    prefix: str = "vw/v1/",
    readings: int = READINGS_PER_MESSAGE,
    seed: int = 1,
) -> list[tuple[str, bytes]]:
    """``messages`` telemetry messages round-robin over ``devices`` devices.

    Device ``d`` (:func:`device_id`) sends its ``k``-th message with readings
    ``seq = k * readings ... k * readings + readings - 1`` at device time
    ``t0 + seq * 1000``: per-second windows that never collide, so every reading is a
    distinct point. Values cycle through :func:`reading_values`.

    Args:
        devices: Number of devices.
        messages: Number of messages.
        t0: Device time of sequence number 0, epoch milliseconds.
        prefix: Topic prefix, ending in ``/``.
        readings: Readings per message.
        seed: Seed of the values.

    Returns:
        ``(topic, payload)`` pairs in publishing order, payloads from :meth:`Telemetry.encode`.
    """
    pool = reading_values(seed)
    names = [device_id(d) for d in range(devices)]
    topics = [f"{prefix}{name}/telemetry" for name in names]
    out: list[tuple[str, bytes]] = []
    for i in range(messages):
        d, k = i % devices, i // devices
        batch = []
        for seq in range(k * readings, (k + 1) * readings):
            score, rms, peak, crest, kurtosis = pool[(seq * 7919 + d) % VALUE_POOL]
            batch.append(Reading(seq, t0 + seq * 1000, score, rms, peak, crest, kurtosis))
        out.append((topics[d], Telemetry(names[d], tuple(batch)).encode()))
    return out


# --- the generator -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What one run of a :class:`LoadGenerator` did.

    Times are ``time.monotonic()``, a system-wide clock on Linux: comparable across
    processes.

    Attributes:
        messages: Messages the run was given.
        first: When the first message was published.
        last: When the last publish call returned.
        acked_at: When the last acknowledgement arrived (or the run gave up waiting).
        acked: Messages the broker acknowledged (PUBACK), each counted once.
        failed: Messages not acknowledged when the run ended: ``messages - acked``.
        offline: Publishes made while the client was not connected (paho holds them and
            sends them once the connection is back).
        resent: Publishes of a message again after ``retry_after`` without acknowledgement.
    """

    messages: int
    first: float
    last: float
    acked_at: float
    acked: int
    failed: int
    offline: int
    resent: int


@dataclass(eq=False)
class _Batch:
    """The acknowledgement state of the messages of one run (guarded by the generator's lock)."""

    size: int
    done: bytearray = field(init=False)
    acked: int = 0
    last_ack: float = 0.0

    def __post_init__(self) -> None:
        self.done = bytearray(self.size)


class LoadGenerator:
    """Publishes messages at QoS 1 over one MQTT connection and counts what was acknowledged.

    Example::

        with LoadGenerator(broker.port) as load:
            report = load.run(telemetry_stream(100, 5000, t0=t0), rate=500)
    """

    def __init__(
        self,
        port: int,
        *,
        host: str = LOOPBACK,
        client_id: str = "vibewatch-load",
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        window: int = DEFAULT_WINDOW,
        retry_after: float | None = None,
    ) -> None:
        """Configure the client; :meth:`connect` connects.

        Args:
            port: Broker port.
            host: Broker address.
            client_id: MQTT client id.
            protocol: ``paho.mqtt.client.MQTTv5`` or ``MQTTv311``.
            window: Messages that may be unacknowledged at once, at least 1.
            retry_after: Seconds after which a message not acknowledged is published
                again (a duplicate, which idempotent ingestion absorbs); ``None`` never.

        Raises:
            ValueError: ``window`` < 1 or ``retry_after`` <= 0.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if retry_after is not None and retry_after <= 0:
            raise ValueError(f"retry_after must be positive, got {retry_after}")
        self.host = host
        self.port = port
        self.window = window
        self.retry_after = retry_after
        #: Messages acknowledged over every run and single publish so far.
        self.published = 0
        #: Publishes made while disconnected, and publishes again, so far.
        self.offline = 0
        self.resent = 0
        self._cond = threading.Condition()
        self._pending: dict[int, tuple[_Batch, int]] = {}  # mid -> (batch, index)
        self._early: set[int] = set()  # mids acknowledged before publish() returned
        self._slots = threading.Semaphore(window)
        self._connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        client.reconnect_delay_set(1, 1)  # a restarted broker is back within a second
        client.max_inflight_messages_set(0)  # 0: no limit in paho; the window bounds it
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._started = False

    # -- connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._connected.is_set()

    def connect(self, timeout: float = 15.0) -> None:
        """Connect and start the network thread; it reconnects by itself after a loss.

        Args:
            timeout: Seconds to wait for the broker's CONNACK.

        Raises:
            LocalServerError: The broker refused, or did not answer in time.
        """
        try:
            self._client.connect(self.host, self.port, keepalive=60)
        except OSError as exc:
            raise LocalServerError(f"no MQTT broker at {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        self._started = True
        if not self._connected.wait(timeout):
            raise LocalServerError(
                f"MQTT broker at {self.host}:{self.port} sent no CONNACK within {timeout:g}s"
            )

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def __enter__(self) -> Self:
        """Connect (:meth:`connect`)."""
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close (:meth:`close`)."""
        self.close()

    # -- publishing ------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 120.0
    ) -> None:
        """Publish one message and wait until the broker acknowledges it.

        With ``retry_after`` set, the message is published again each time that long
        passes without an acknowledgement while connected.

        Args:
            topic: Topic.
            payload: Payload.
            retain: Whether the broker keeps the message as the topic's retained one.
            timeout: Seconds to wait for the acknowledgement.

        Raises:
            LocalServerError: Not acknowledged within ``timeout`` seconds.
        """
        batch = _Batch(1)
        deadline = time.monotonic() + timeout
        sent_at = [0.0]
        self._send(batch, 0, topic, payload, retain, sent_at, deadline)
        self._settle(batch, [(topic, payload)], retain, sent_at, deadline)
        if batch.acked != 1:
            raise LocalServerError(
                f"no PUBACK for {topic} from {self.host}:{self.port} within {timeout:g}s"
            )

    def run(
        self,
        messages: Sequence[tuple[str, bytes]],
        *,
        rate: float = 0.0,
        timeout: float = 120.0,
    ) -> LoadReport:
        """Publish ``messages`` in order and wait for their acknowledgements.

        Args:
            messages: ``(topic, payload)`` pairs.
            rate: Messages a second; 0 for as fast as the window allows.
            timeout: Seconds to wait, after the last publish, for the acknowledgements
                (and, while publishing, for a free window slot).

        Returns:
            What was published and acknowledged; messages still unacknowledged at the
            end count as ``failed``.
        """
        n = len(messages)
        batch = _Batch(n)
        sent_at = [0.0] * n
        offline, resent = self.offline, self.resent
        slot = max(1, math.ceil(rate / _PACING_SLOTS_PER_S)) if rate > 0 else n
        first = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if rate > 0 and i % slot == 0:
                delay = first + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if not self._send(batch, i, topic, payload, False, sent_at, time.monotonic() + timeout):
                break  # no window slot freed up within the timeout: the rest count as failed
        last = time.monotonic()
        self._settle(batch, messages, False, sent_at, last + timeout)
        with self._cond:
            acked, last_ack = batch.acked, batch.last_ack
        return LoadReport(
            messages=n,
            first=first,
            last=last,
            acked_at=last_ack if acked == n and n else time.monotonic(),
            acked=acked,
            failed=n - acked,
            offline=self.offline - offline,
            resent=self.resent - resent,
        )

    def start(
        self,
        messages: Sequence[tuple[str, bytes]],
        *,
        rate: float = 0.0,
        timeout: float = 120.0,
    ) -> Background[LoadReport]:
        """:meth:`run` in a background thread; its ``result(timeout)`` returns the report."""
        load = Background(lambda: self.run(messages, rate=rate, timeout=timeout))
        load.start()
        return load

    # -- mechanism -------------------------------------------------------------------

    def _send(
        self,
        batch: _Batch,
        index: int,
        topic: str,
        payload: bytes,
        retain: bool,
        sent_at: list[float],
        deadline: float,
    ) -> bool:
        """Publish message ``index`` of ``batch`` once; False if no window slot came free."""
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
        except BaseException:
            self._slots.release()
            raise
        sent_at[index] = time.monotonic()
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._slots.release()  # refused by paho: never sent, no PUBACK will free the slot
            return True
        with self._cond:
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                self.offline += 1  # held by paho until the connection is back
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._acknowledge(batch, index)
            else:
                self._pending[info.mid] = (batch, index)
        return True

    def _settle(
        self,
        batch: _Batch,
        messages: Sequence[tuple[str, bytes]],
        retain: bool,
        sent_at: list[float],
        deadline: float,
    ) -> None:
        """Wait until every message of ``batch`` is acknowledged or ``deadline`` passes."""
        while True:
            with self._cond:
                if batch.acked >= batch.size:
                    return
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                if batch.acked >= batch.size or time.monotonic() >= deadline:
                    return
                if self.retry_after is None or not self.connected:
                    continue
                done = bytes(batch.done)
            due = time.monotonic() - self.retry_after
            # Outside the lock: paho's publish takes paho's lock, under which PUBACKs are
            # handled and this generator's lock is taken.
            for index, sent in enumerate(sent_at):
                if not done[index] and 0 < sent <= due and self.connected:
                    topic, payload = messages[index]
                    with self._cond:
                        self.resent += 1
                    self._send(batch, index, topic, payload, retain, sent_at, deadline)

    def _acknowledge(self, batch: _Batch, index: int) -> None:
        """Mark a message acknowledged; the caller holds ``_cond``."""
        if not batch.done[index]:
            batch.done[index] = 1
            batch.acked += 1
            batch.last_ack = time.monotonic()
            self.published += 1
            self._cond.notify_all()

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any
    ) -> None:
        # Runs on paho's network thread, under paho's lock of its outgoing messages.
        self._slots.release()
        if getattr(reason, "is_failure", False):
            return  # refused by the broker (MQTT 5 reason code): not acknowledged
        with self._cond:
            entry = self._pending.pop(mid, None)
            if entry is None:
                self._early.add(mid)
            else:
                self._acknowledge(*entry)


class Background(threading.Thread, Generic[T]):
    """Runs a function in a daemon thread; :meth:`result` returns its value or raises its error.

    Example::

        job = Background(lambda: publisher.publish_all(stream, rate=250))
        job.start()
        ...  # a fault while the stream flows
        job.result(120)
    """

    def __init__(self, target: Callable[[], T]) -> None:
        """Prepare the thread; :meth:`start` starts it."""
        super().__init__(name="vibewatch-background", daemon=True)
        self._target_fn = target
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        """Call the function; keep its value or its exception for :meth:`result`."""
        try:
            self._value = self._target_fn()
        except BaseException as exc:  # re-raised by result() in the caller's thread
            self._error = exc

    def result(self, timeout: float) -> T:
        """Wait for the function to return and return its value.

        Args:
            timeout: Seconds to wait.

        Raises:
            TimeoutError: It did not return in time.
            BaseException: Whatever it raised.
        """
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} did not finish within {timeout:g}s")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


# --- in a process of its own ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadJob:
    """A :func:`telemetry_stream` to publish from a :class:`LoadProcess`.

    Attributes:
        port: Broker port.
        devices: Devices of the stream.
        messages: Messages of the stream.
        t0: Device time of sequence number 0, epoch milliseconds.
        prefix: Topic prefix.
        rate: Messages a second, or 0 for as fast as possible.
        client_id: MQTT client id.
        protocol: MQTT protocol version (``paho.mqtt.client.MQTTv5`` or ``MQTTv311``).
        window: Messages that may be unacknowledged at once.
        timeout: Seconds to wait for acknowledgements after the last publish.
        seed: Seed of the values.
    """

    port: int
    devices: int
    messages: int
    t0: int
    prefix: str = "vw/v1/"
    rate: float = 0.0
    client_id: str = "vibewatch-load"
    protocol: MQTTProtocolVersion = mqtt.MQTTv5
    window: int = DEFAULT_WINDOW
    timeout: float = 120.0
    seed: int = 1


def _load_main(conn: Connection, job: LoadJob) -> None:
    """Body of a :class:`LoadProcess`: build, connect, say ``ready``, wait for ``go``, run."""
    messages = telemetry_stream(
        job.devices, job.messages, t0=job.t0, prefix=job.prefix, seed=job.seed
    )
    generator = LoadGenerator(
        job.port, client_id=job.client_id, protocol=job.protocol, window=job.window
    )
    generator.connect()
    try:
        conn.send("ready")
        conn.recv()
        conn.send(generator.run(messages, rate=job.rate, timeout=job.timeout))
    finally:
        generator.close()


class LoadProcess:
    """A :class:`LoadGenerator` publishing a :class:`LoadJob` from a process of its own.

    The process builds its messages and connects as soon as it starts, says it is ready
    (:meth:`wait_ready`), publishes on :meth:`go` and sends its :class:`LoadReport` back
    (:meth:`result`).
    """

    def __init__(self, job: LoadJob, ctx: SpawnContext | None = None) -> None:
        """Start the process.

        Args:
            job: What to publish.
            ctx: The multiprocessing context; a new ``spawn`` one when ``None`` (a
                fork of a process with threads can deadlock).
        """
        context = ctx if ctx is not None else multiprocessing.get_context("spawn")
        self.job = job
        self._conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_load_main, args=(child, job), name="vibewatch-load", daemon=True
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        """Process id of the load generator."""
        assert self.process.pid is not None
        return self.process.pid

    def _receive(self, timeout: float, what: str) -> object:
        if not self._conn.poll(timeout):
            state = "is still running" if self.process.is_alive() else "has exited"
            raise LocalServerError(f"the load process {state} and {what} within {timeout:g}s")
        try:
            return self._conn.recv()
        except EOFError as exc:
            raise LocalServerError(f"the load process exited before it {what}") from exc

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the messages are built and the client is connected.

        Raises:
            LocalServerError: The process died or took longer than ``timeout`` seconds.
        """
        self._receive(timeout, "was not ready")

    def go(self) -> None:
        """Start publishing."""
        self._conn.send("go")

    def result(self, timeout: float) -> LoadReport:
        """Wait for the report of the run.

        Raises:
            LocalServerError: The process died or took longer than ``timeout`` seconds.
        """
        report = self._receive(timeout, "sent no report")
        assert isinstance(report, LoadReport)
        self.process.join(10)
        return report

    def close(self) -> None:
        """Terminate the process if it still runs."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
