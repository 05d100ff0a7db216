"""Fleet simulator benchmark: a thousand simulated devices in real time, through `vibewatch serve`.

One run starts a real Mosquitto broker and a real InfluxDB 1.x server on loopback (in
a temporary directory), ``python -m vibewatch serve`` as a process of its own (the
service's default settings), and in this process a :class:`~vibewatch.sim.run.Simulation`
of ``--devices`` healthy devices (default 1,000), each the firmware's C device layer
with the factory model and its own MQTT connection, at speedup 1 for ``--duration``
seconds. It measures:

* ``windows_per_s``: windows the fleet scored between its first and its last progress
  report (once a second, from the moment every device is connected), over the real time
  between them; ``realtime``: every device scored a window for each second it ran, at
  speedup 1 (:attr:`~vibewatch.sim.run.Summary.realtime`). The simulated clock stands still while
  the devices connect, so no window is owed when the run starts;
* ``sim_cpu_percent``, ``serve_cpu_percent``: CPU time (user + system, from
  ``/proc/<pid>/stat``) of this process (the simulator, and the uplink counter below)
  and of the ``serve`` process over the run, in % of one core; the broker's and the
  database's are reported too;
* ``lost``: telemetry readings the devices published (in the messages the broker
  acknowledged, :attr:`~vibewatch.sim.run.Summary.readings_published`) minus the readings
  in InfluxDB, once they arrived (at most 60 s) and ``serve`` was stopped with SIGTERM;
* ``uplink_bytes_per_device_hour``: MQTT bytes a healthy device sends per hour at the
  default device settings. A subscriber of this process sees every uplink message
  through the broker and counts, per message, the MQTT 5 PUBLISH packet the device's
  client sent: fixed header (1 byte and the remaining length's 1-4 bytes), topic (2-byte
  length and the topic), packet identifier (2 bytes, QoS 1), property length (1 byte:
  the devices send no properties) and the payload. TCP, IP and TLS are not counted. The
  count covers the messages of each device's first windows (the window number is the low
  32 bits of a message's sequence number), as many as a whole number of the settings'
  schedule (a telemetry batch every 10 windows, a feature vector every 60: 60 windows)
  that every device completed, and is divided by the devices and by the simulated hours
  those windows span (one window a second). The birth status, sent once per connection,
  is reported apart; with a message every 10 s and a 30 s keepalive, a device sends no
  PINGREQ. Against it the summary prints what streaming the raw samples would cost:
  the model's sample rate (from the factory model's feature spec), 2 bytes a sample
  (int16, one axis, no framing at all), 3,600 s; and the windows the device scores alone.

Bars (exit status 1 when one is missed): ``devices >= 1000``, ``realtime``, ``lost == 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outcome import finish, progress  # benchmarks/outcome.py, beside this script
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import ProtocolError
from vibewatch.influx import schema
from vibewatch.mqtt import BrokerSettings, new_client
from vibewatch.protocol import (
    DEFAULT_PREFIX,
    AnomalyEvent,
    Features,
    Kind,
    Limits,
    Telemetry,
    decode_message,
    parse_topic,
    subscription_filters,
)
from vibewatch.sim.fleet import SimClock
from vibewatch.sim.run import Progress, Simulation, Summary
from vibewatch.sim.scenario import Scenario
from vibewatch.testing.ingest import ServiceProcess, ingest_env, wait_for
from vibewatch.testing.servers import LocalInfluxDB, local_servers

DEVICES: Final = 1000
#: Real (= simulated) seconds the fleet runs: every device completes two schedules of its
#: messages (120 windows), and with the servers, ``serve`` and the fleet's setup the whole
#: benchmark takes about two minutes.
DURATION_S: Final = 125.0
#: Simulated seconds between two windows of a device (the simulator's default).
WINDOW_PERIOD_S: Final = 1.0
#: Bytes of one raw sample, streamed: int16, one axis.
RAW_SAMPLE_BYTES: Final = 2
ID_PREFIX: Final = "bench-"
DATABASE: Final = "bench_sim"
#: Longest wait for the published readings to reach InfluxDB, and for the counter to see
#: every published message.
DRAIN_TIMEOUT_S: Final = 60.0
#: Progress reports of the fleet (one a second) per line printed.
PROGRESS_EVERY: Final = 10

BAR_DEVICES: Final = 1000

#: The uplink kinds that belong to a window (they carry its sequence number).
WINDOW_KINDS: Final = (Kind.TELEMETRY, Kind.FEATURES, Kind.EVENT)


# --- counting the uplink --------------------------------------------------------------


def publish_packet_bytes(topic_bytes: int, payload_bytes: int) -> int:
    """Bytes of an MQTT 5 PUBLISH packet at QoS 1 without properties, as paho sends it.

    Fixed header (the packet type and flags, then the remaining length as a variable
    byte integer of 1 to 4 bytes), topic name (2-byte length and the UTF-8 topic),
    packet identifier (2 bytes), property length (1 byte, 0) and the payload.

    Args:
        topic_bytes: Length of the UTF-8 topic.
        payload_bytes: Length of the payload.
    """
    remaining = 2 + topic_bytes + 2 + 1 + payload_bytes
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


def window_number(message: object) -> int | None:
    """Number since boot of the (last) window a decoded uplink message belongs to: the low
    32 bits of its sequence number (``docs/edge-firmware.md``); None for a message that
    belongs to no window (a status)."""
    if isinstance(message, Telemetry):
        seq = message.readings[-1].seq
    elif isinstance(message, Features):
        seq = message.vectors[-1].seq
    elif isinstance(message, AnomalyEvent):
        seq = message.seq
    else:
        return None
    return seq & 0xFFFF_FFFF


class BrokerCounter:
    """A subscriber of this process that sees messages of the fleet through the broker;
    a subclass counts them (:meth:`_on_message`).

    Args:
        port: The broker's port (loopback).
        prefix: The topic prefix.
        kinds: The kinds of message it subscribes to.
        name: Its name, in its client id and messages.
    """

    def __init__(self, port: int, prefix: str, kinds: Sequence[Kind], name: str) -> None:
        self._prefix = prefix
        self._port = port
        self._kinds = tuple(kinds)
        self._name = name
        self._limits = Limits()
        self._subscribed = threading.Event()
        self._client = new_client(BrokerSettings(client_id=f"bench-{name.replace(' ', '-')}"))
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message

    def start(self, timeout: float = 15.0) -> None:
        """Connect and subscribe; return once the broker granted it.

        Raises:
            TimeoutError: No SUBACK within ``timeout`` seconds.
        """
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"the {self._name} was not subscribed within {timeout:g}s")

    def stop(self) -> None:
        """Disconnect and stop the client's thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(f, 1) for f in subscription_filters(self._prefix, self._kinds)])

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        raise NotImplementedError


class UplinkCounter(BrokerCounter):
    """Sees every uplink message of the fleet and counts the PUBLISH bytes the device sent
    (:func:`publish_packet_bytes`).

    Attributes:
        messages: Messages seen, by kind.
        packet_bytes: PUBLISH bytes, by kind.
        window_bytes: PUBLISH bytes of :data:`WINDOW_KINDS` messages, by kind and window
            number since boot.
        undecoded: Messages that broke the wire contract (not counted by window).
    """

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(port, prefix, [k for k in Kind if k.uplink], "uplink counter")
        self.messages: Counter[Kind] = Counter()
        self.packet_bytes: Counter[Kind] = Counter()
        self.window_bytes: Counter[tuple[Kind, int]] = Counter()
        self.undecoded = 0

    @property
    def total(self) -> int:
        """Messages seen."""
        return self.messages.total()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        device, kind = parse_topic(msg.topic, self._prefix)
        size = publish_packet_bytes(len(msg.topic.encode()), len(msg.payload))
        self.messages[kind] += 1
        self.packet_bytes[kind] += size
        if kind not in WINDOW_KINDS:
            return
        now_ms = int(time.time() * 1000)
        try:
            payload = bytes(msg.payload)
            message = decode_message(kind, device, payload, now_ms=now_ms, limits=self._limits)
        except ProtocolError:
            self.undecoded += 1
            return
        number = window_number(message)
        assert number is not None  # every WINDOW_KINDS message has one
        self.window_bytes[kind, number] += size


# --- the clock and the CPU ----------------------------------------------------------


class HeldTime:
    """A monotonic time for :class:`~vibewatch.sim.fleet.SimClock` that stands at 0 until
    :meth:`release`, then runs with :func:`time.monotonic`: while the devices connect, no
    window falls due."""

    def __init__(self) -> None:
        self._since: float | None = None

    def release(self) -> None:
        """Let time run from now."""
        self._since = time.monotonic()

    def __call__(self) -> float:
        """Seconds since :meth:`release`; 0 before."""
        return 0.0 if self._since is None else time.monotonic() - self._since


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name: field 3 on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time of named processes between :meth:`start` and :meth:`stop`, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._begin: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self._t0 = time.monotonic()
        self._begin = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        """Take the second reading; each process's CPU use since :meth:`start`."""
        wall = time.monotonic() - self._t0
        return {
            name: round(100 * (cpu_seconds(pid) - self._begin[name]) / wall, 1)
            for name, pid in self._pids.items()
        }


# --- results ------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything the run measured, printed as the table and the JSON object."""

    devices: int
    duration_s: float
    seed: int
    connect_s: float = 0.0
    summary: Summary | None = None
    windows_per_s: float = 0.0
    fewest_windows: int = 0
    cpu_percent: dict[str, float] = field(default_factory=dict)
    readings_stored: int = 0
    stored_after_s: float | None = None
    schedule_windows: int = 0
    span_windows: int = 0
    uplink_seen: int = 0
    uplink_messages: dict[str, int] = field(default_factory=dict)
    uplink_undecoded: int = 0
    uplink_span_bytes: dict[str, int] = field(default_factory=dict)
    status_bytes_per_connection: float = 0.0
    sample_rate_hz: int = 0
    window_samples: int = 0

    @property
    def realtime(self) -> bool:
        """Every device scored a window for each second it ran."""
        return self.summary is not None and self.summary.realtime

    @property
    def lost(self) -> int | None:
        """Readings published minus readings in InfluxDB (None: the fleet never ran)."""
        if self.summary is None:
            return None
        return self.summary.readings_published - self.readings_stored

    @property
    def span_hours(self) -> float:
        """Simulated hours the counted windows span."""
        return self.span_windows * WINDOW_PERIOD_S / 3600

    def uplink_per_device_hour(self, kinds: Sequence[str] | None = None) -> float | None:
        """Counted PUBLISH bytes (of ``kinds``, else all) per device and simulated hour;
        None when no whole schedule was counted."""
        if self.span_windows == 0:
            return None
        counted = sum(v for k, v in self.uplink_span_bytes.items() if kinds is None or k in kinds)
        return counted / self.devices / self.span_hours

    @property
    def raw_stream_bytes_per_device_hour(self) -> int:
        """Every sample at the model's sample rate, streamed for an hour."""
        return self.sample_rate_hz * RAW_SAMPLE_BYTES * 3600

    @property
    def raw_window_bytes_per_device_hour(self) -> int:
        """The samples of the windows the device scores in an hour."""
        return round(self.window_samples * RAW_SAMPLE_BYTES * 3600 / WINDOW_PERIOD_S)

    def bars(self) -> list[tuple[str, bool, str]]:
        """Return ``(name, met, explanation)`` for every bar."""
        return [
            (f"devices >= {BAR_DEVICES}", self.devices >= BAR_DEVICES, f"{self.devices}"),
            (
                "realtime",
                self.realtime,
                f"fewest windows of a device {self.fewest_windows} in "
                f"{self.summary.seconds if self.summary else 0:.1f}s",
            ),
            ("lost == 0", self.lost == 0, f"lost {self.lost}"),
        ]

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``."""
        uplink = self.uplink_per_device_hour()
        s = self.summary
        return {
            "devices": self.devices,
            "windows_per_s": round(self.windows_per_s, 1),
            "realtime": self.realtime,
            "sim_cpu_percent": self.cpu_percent.get("sim"),
            "lost": self.lost,
            "serve_cpu_percent": self.cpu_percent.get("serve"),
            "uplink_bytes_per_device_hour": None if uplink is None else round(uplink),
            "raw_stream_bytes_per_device_hour": self.raw_stream_bytes_per_device_hour,
            "raw_window_bytes_per_device_hour": self.raw_window_bytes_per_device_hour,
            "status_bytes_per_connection": round(self.status_bytes_per_connection, 1),
            "uplink_span_windows": self.span_windows,
            "uplink_messages": self.uplink_messages,
            "duration_s": self.duration_s,
            "seconds": s.seconds if s else None,
            "connect_s": round(self.connect_s, 2),
            "windows": s.windows if s else None,
            "fewest_windows": self.fewest_windows,
            "readings_published": s.readings_published if s else None,
            "readings_stored": self.readings_stored,
            "cpu_percent": self.cpu_percent,
            "seed": self.seed,
            "bars_met": all(met for _, met, _ in self.bars()),
        }


# --- the run ------------------------------------------------------------------------------


def stored_readings(influx: LocalInfluxDB) -> int:
    """Telemetry readings in the benchmark's database (only its fleet writes there)."""
    return influx.count(DATABASE, schema.READING, schema.SEQ)


def run(results: Results) -> None:
    """Start the servers and ``serve`` in a temporary directory, run the fleet, count."""
    settings = DeviceSettings()
    blob = FACTORY_MODEL.read_bytes()
    spec = decode_header(blob).spec
    results.sample_rate_hz, results.window_samples = spec.sample_rate_hz, spec.window
    scenario = Scenario(
        devices=results.devices,
        id_prefix=ID_PREFIX,
        seed=results.seed,
        speedup=1.0,
        duration_s=results.duration_s,
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vibewatch-sim-")))
        progress(f"starting mosquitto and influxd in {workdir}")
        broker, influx = stack.enter_context(local_servers(workdir))
        env = ingest_env(
            mqtt_port=broker.port,
            influx_url=influx.url,
            database=DATABASE,
            data_home=workdir / "home",
            client_id="bench-serve",
            topic_prefix=DEFAULT_PREFIX,
            settings={},  # the service's defaults
        )
        serve = ServiceProcess(env, workdir, command="serve", ready_timeout=60)
        stack.callback(serve.close)
        serve.start()
        progress(f"vibewatch serve ready (pid {serve.pid})")
        counter = UplinkCounter(broker.port, DEFAULT_PREFIX)
        counter.start()
        stack.callback(counter.stop)
        held = HeldTime()
        simulation = Simulation(
            scenario,
            blob,
            Ed25519PrivateKey.generate().public_key(),
            host=broker.host,
            port=broker.port,
            prefix=DEFAULT_PREFIX,
            settings=settings,
            clock=SimClock(1.0, start_wall_ms=int(time.time() * 1000), monotonic=held),
            window_period_s=WINDOW_PERIOD_S,
        )
        assert broker.pid is not None and influx.pid is not None
        meter = CpuMeter(
            {"sim": os.getpid(), "serve": serve.pid, "mosquitto": broker.pid, "influxd": influx.pid}
        )
        reports: list[tuple[float, int]] = []

        def on_progress(p: Progress) -> None:
            reports.append((time.monotonic(), p.windows))
            if len(reports) % PROGRESS_EVERY == 0:
                progress(p.line())

        progress(f"connecting {results.devices} devices")
        began = time.monotonic()
        try:
            simulation.start()
            results.connect_s = time.monotonic() - began
            held.release()
            meter.start()
            progress(f"connected in {results.connect_s:.1f}s; running {results.duration_s:g}s")
            simulation.run(lambda: False, on_progress)
            results.cpu_percent = meter.stop()
        finally:
            simulation.close()
        results.summary = summary = simulation.summary()  # every PUBACK in
        results.fewest_windows = min(d.windows for d in simulation.fleet.devices.values())
        if len(reports) >= 2:
            (t0, w0), (t1, w1) = reports[0], reports[-1]
            results.windows_per_s = (w1 - w0) / (t1 - t0)
        stopped = time.monotonic()
        progress(f"fleet stopped: {summary.readings_published:,} readings published")
        with contextlib.suppress(TimeoutError):  # what is missing then is reported as lost
            wait_for(
                lambda: stored_readings(influx) >= summary.readings_published,
                DRAIN_TIMEOUT_S,
                "the readings in InfluxDB",
            )
            results.stored_after_s = time.monotonic() - stopped
        with contextlib.suppress(TimeoutError):  # what it misses is in the table
            wait_for(lambda: counter.total >= summary.published, DRAIN_TIMEOUT_S, "the uplink")
        code = serve.stop()
        if code != 0:
            progress(f"vibewatch serve exited with {code}:\n{serve.log_tail()}")
        results.readings_stored = stored_readings(influx)
        count_uplink(results, counter, math.lcm(settings.batch_windows, settings.features_every))
        progress("stopping servers")


def count_uplink(results: Results, counter: UplinkCounter, schedule: int) -> None:
    """Take the counter's figures: the bytes of the first whole schedules every device
    completed (``schedule``: windows after which the device's messages repeat)."""
    results.schedule_windows = schedule
    results.span_windows = schedule * (results.fewest_windows // schedule)
    results.uplink_seen = counter.total
    results.uplink_undecoded = counter.undecoded
    results.uplink_messages = dict(sorted((kind.value, n) for kind, n in counter.messages.items()))
    span: Counter[str] = Counter()
    for (kind, number), size in counter.window_bytes.items():
        if number < results.span_windows:
            span[kind.value] += size
    results.uplink_span_bytes = dict(span)
    births = counter.messages[Kind.STATUS]
    if births:
        results.status_bytes_per_connection = counter.packet_bytes[Kind.STATUS] / births


# --- output ------------------------------------------------------------------------------


def table(results: Results) -> str:
    """Render the results as a plain-text table."""
    s = results.summary
    if s is None:
        return "the fleet did not run"
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in results.cpu_percent.items())
    uplink = results.uplink_per_device_hour()
    seen = ", ".join(f"{k} {n:,}" for k, n in results.uplink_messages.items())
    if results.uplink_undecoded:
        seen += f" ({results.uplink_undecoded} undecodable)"
    rows: list[tuple[str, str]] = [
        (
            "fleet",
            f"{results.devices:,} healthy devices, {s.seconds:.1f}s at speedup 1 "
            f"(seed {results.seed})",
        ),
        ("  all connected in", f"{results.connect_s:.1f}s"),
        ("  windows scored", f"{s.windows:,}"),
        ("  sustained", f"{results.windows_per_s:,.1f} windows/s"),
        ("  fewest windows of one device", f"{results.fewest_windows}"),
        ("  real time (>= 1 window/s each)", "yes" if results.realtime else "NO"),
        ("  CPU, % of one core", cpu),
        (
            "telemetry through vibewatch serve",
            f"{s.readings_published:,} readings published, {results.readings_stored:,} in InfluxDB",
        ),
        ("  lost (published - stored)", f"{results.lost}"),
        (
            "  all in InfluxDB, after the fleet stopped",
            "not within 60s"
            if results.stored_after_s is None
            else f"{results.stored_after_s:.1f}s",
        ),
        (
            "uplink messages seen by the counter",
            f"{results.uplink_seen:,} of {s.published:,} published: {seen}",
        ),
    ]
    if uplink is None:
        rows.append(
            (
                "uplink per device and hour",
                f"n/a: no device completed {results.schedule_windows} windows",
            )
        )
    else:
        by_kind = " / ".join(
            f"{results.uplink_per_device_hour([kind.value]) or 0:,.0f}" for kind in WINDOW_KINDS
        )
        stream, windows = (
            results.raw_stream_bytes_per_device_hour,
            results.raw_window_bytes_per_device_hour,
        )
        rows += [
            ("uplink per device and hour", f"{uplink:,.0f} bytes (MQTT 5 PUBLISH packets)"),
            ("  telemetry / features / events", by_kind),
            ("  counted over", f"windows 0-{results.span_windows - 1} of every device"),
            (
                "  birth status, once per connection",
                f"{results.status_bytes_per_connection:,.0f} bytes (not in the hourly figure)",
            ),
            (
                "streaming raw samples instead",
                f"{stream:,} bytes ({results.sample_rate_hz:,} Hz x {RAW_SAMPLE_BYTES} B "
                f"int16 x 3,600 s): {stream / uplink:,.0f} x the uplink",
            ),
            (
                "  the scored windows' samples alone",
                f"{windows:,} bytes ({results.window_samples:,} samples every "
                f"{WINDOW_PERIOD_S:g}s): {windows / uplink:,.0f} x the uplink",
            ),
        ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    for name, met, detail in results.bars():
        lines.append(f"{'ok  ' if met else 'MISS'}  {name:<20} {detail}")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=DEVICES,
        help=f"devices in the fleet (default {DEVICES}; the bar wants >= {BAR_DEVICES})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DURATION_S,
        help=f"seconds the fleet runs, real and simulated (default {DURATION_S:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the machines (default 0)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the table on stderr)"
    )
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices must be >= 1, not {args.devices}")
    if not args.duration > 0:
        parser.error(f"--duration must be > 0, not {args.duration:g}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    results = Results(devices=args.devices, duration_s=args.duration, seed=args.seed)
    began = time.monotonic()
    try:
        run(results)
    except KeyboardInterrupt:
        progress("interrupted; servers and processes stopped")
        return 130
    progress(f"done in {time.monotonic() - began:.1f}s")
    return finish(table(results), results.as_json(), results.bars(), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
