"""Ingest throughput and memory benchmark: MQTT telemetry into InfluxDB through `vibewatch ingest`.

One run starts a real Mosquitto broker and a real InfluxDB 1.x server on
loopback (in a temporary directory) and measures, on this machine and in the
same run:

* **raw ceiling**: pre-encoded 5,000-line batches of ``reading`` lines posted
  straight to ``/write`` over one kept-alive connection. No client can write
  faster than the server takes points, so this is the yardstick. It runs
  before and after the end-to-end phase and the mean of the two is used, so
  a drift in the machine's speed between phases cancels out.
* **end to end**: a load generator (its own process) publishes telemetry at
  QoS 1 as fast as it can: 1,000 devices, each message a batch of 10
  per-second readings. One ``python -m vibewatch ingest`` process subscribes
  and writes them; the rate is the points counted in InfluxDB
  (``SELECT count(score) FROM reading``) divided by the time from the first
  publish to the moment the count reaches the total. After ingest has drained
  and been stopped with SIGTERM, ``lost`` is published minus counted.
* **naive**: the loop most tutorials show (paho ``on_message`` parses the JSON
  and makes one synchronous HTTP write per message, QoS 1 acknowledged
  automatically), run as a subscriber process of this benchmark against the
  same load.
* **outage**: ingest runs while load flows at a steady rate and InfluxDB is
  stopped for 30 s (10 s with ``--quick``), then started again. Nothing may
  be lost, and memory must stay bounded while ingest spools.

With ``--group-sizes 1,2,...`` the run measures scale-out instead: for each size N,
N ``vibewatch ingest`` processes in one MQTT 5 shared subscription group
(``mqtt.group``, ``$share/bench/...``) take the same flat-out load, and the table
gives messages and points per second of the group and per process, with each
process's CPU, between a raw-ceiling run before and one after. Its one bar: nothing
lost at any size.

Peak RSS is the ingest process's ``VmHWM`` read from ``/proc/<pid>/status``
just before it is stopped. Each phase has its own database and topic prefix,
so no phase's messages queue up for another phase's subscriber.

Speed figures are ratios measured in one run, because these machines are
shared and noisy; the exit status is 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
import psutil  # type: ignore[import-untyped, unused-ignore]
from paho.mqtt.enums import CallbackAPIVersion

from outcome import finish, progress  # benchmarks/outcome.py, beside this script
from vibewatch.influx.schema import point_time_ns
from vibewatch.testing.ingest import ServiceProcess, ingest_env
from vibewatch.testing.load import (
    DAY_MS,
    READINGS_PER_MESSAGE,
    VALUE_POOL,
    LoadJob,
    LoadProcess,
    device_id,
    reading_values,
)
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, LocalServerError, local_servers

# --- the load ---------------------------------------------------------------------

DEVICES: Final = 1000
#: Lines per body of the raw-ceiling writes (ingest's default ``batch_max_points``).
RAW_BATCH_LINES: Final = 5000
#: Device times start this far back: inside ingest's window of accepted times.
BASE_AGE_MS: Final = 2 * DAY_MS

# --- the bars ---------------------------------------------------------------------

BAR_CEILING_SHARE: Final = 0.5
BAR_NAIVE_FACTOR: Final = 3.0
BAR_PEAK_RSS_MB: Final = 300.0

HOST: Final = "127.0.0.1"
POLL_INTERVAL: Final = 0.5


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes and durations of one run.

    Attributes:
        quick: Whether this is the ``--quick`` plan.
        raw_seconds: How long the raw-ceiling writes run.
        e2e_messages: Messages published in the end-to-end phase.
        naive_messages: Messages published in the naive phase.
        outage_rate: Messages a second published during the outage phase.
        outage_before: Seconds of load before InfluxDB is stopped.
        outage_seconds: Seconds InfluxDB stays stopped.
        outage_after: Seconds of load after InfluxDB is started again.
        drain_timeout: Longest wait for a phase's points to land.
    """

    quick: bool
    raw_seconds: float
    e2e_messages: int
    naive_messages: int
    outage_rate: int
    outage_before: float
    outage_seconds: float
    outage_after: float
    drain_timeout: float


# The end-to-end load lasts about 25 s (full) or 8 s (quick) at the 40,000 points/s
# that half of a typical raw ceiling here asks for. The outage load, 1,000 messages/s
# (10,000 points/s), is ten times the steady traffic of 1,000 devices that each
# report every 10 s: enough to fill ingest's buffer quickly once writes fail.
FULL: Final = Plan(
    quick=False,
    raw_seconds=8.0,
    e2e_messages=100_000,
    naive_messages=15_000,
    outage_rate=1000,
    outage_before=5.0,
    outage_seconds=30.0,
    outage_after=5.0,
    drain_timeout=180.0,
)
QUICK: Final = Plan(
    quick=True,
    raw_seconds=2.0,
    e2e_messages=30_000,
    naive_messages=3_000,
    outage_rate=1000,
    outage_before=2.0,
    outage_seconds=10.0,
    outage_after=1.0,
    drain_timeout=40.0,
)


# --- payloads and lines -------------------------------------------------------------


def reading_line(device: str, seq: int, t: int, values: tuple[float, ...]) -> str:
    """Encode one ``reading`` point as ingest does (checked by :func:`schema_differences`).

    Floats are written with :func:`repr`, as ingest writes them; the load's values
    have six significant digits, so the text is as long as ingest's. The timestamp is
    keyed by time and sequence number in nanoseconds, as ingest keys it.
    """
    score, rms, peak, crest, kurtosis = values
    return (
        f"reading,device={device} score={score!r},rms={rms!r},peak={peak!r},"
        f"crest={crest!r},kurtosis={kurtosis!r},seq={seq}i {point_time_ns(t, seq)}"
    )


def raw_batches(batches: int, *, base_ms: int) -> list[bytes]:
    """Pre-encode ``batches`` bodies of :data:`RAW_BATCH_LINES` distinct reading lines."""
    pool = reading_values(2)
    devices = [device_id(d) for d in range(DEVICES)]
    bodies = []
    i = 0
    for _ in range(batches):
        lines = []
        for _ in range(RAW_BATCH_LINES):
            d, seq = i % DEVICES, i // DEVICES
            lines.append(reading_line(devices[d], seq, base_ms + seq * 1000, pool[i % VALUE_POOL]))
            i += 1
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies


# --- the naive subscriber (a separate process) -----------------------------------------


def naive_main(conn: Connection, mqtt_port: int, influx_port: int, db: str, prefix: str) -> None:
    """Body of the naive subscriber: what most MQTT-to-InfluxDB tutorials show.

    ``on_message`` decodes the JSON, formats the lines and makes one synchronous
    HTTP write per message over a kept-alive connection; paho acknowledges each
    QoS 1 message automatically when ``on_message`` returns.
    """
    influx = http.client.HTTPConnection(HOST, influx_port, timeout=30)
    path = f"/write?db={db}&precision=ms"
    counts = {"messages": 0, "errors": 0}
    subscribed = threading.Event()

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{prefix}+/telemetry", qos=1)

    def on_message(_client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[-2]
        lines = [
            f"reading,device={device} score={r['score']},rms={r['rms']},peak={r['peak']},"
            f"crest={r['crest']},kurtosis={r['kurtosis']},seq={r['seq']}i {r['t']}"
            for r in json.loads(msg.payload)["readings"]
        ]
        influx.request("POST", path, body="\n".join(lines).encode())
        response = influx.getresponse()
        response.read()
        counts["messages"] += 1
        if response.status != 204:
            counts["errors"] += 1

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv311
    )
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(HOST, mqtt_port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(15):
        raise RuntimeError("naive subscriber could not subscribe")
    conn.send("ready")
    conn.recv()
    client.disconnect()
    client.loop_stop()
    conn.send(counts)


# --- the ingest process ------------------------------------------------------------------


_SUMMARY: Final = re.compile(r"ingest stopped .*?, spooled (\d+), replayed (\d+)")


def stop_ingest(ingest: ServiceProcess) -> tuple[int | None, int | None]:
    """Stop ingest with SIGTERM (it flushes) and wait; its peak RSS is read on the way.

    Returns:
        The points spooled and replayed, from the summary ingest logs last (``None``
        when the line is missing).

    Raises:
        RuntimeError: Ingest had exited before it was asked to stop.
    """
    if not ingest.running:
        raise RuntimeError(f"{ingest.name} exited early:\n{ingest.log_tail()}")
    code = ingest.stop(90)
    if code != 0:
        progress(f"{ingest.name} exited with {code}:\n{ingest.log_tail()}")
    found = _SUMMARY.findall(ingest.log())
    if not found:
        return None, None
    spooled, replayed = found[-1]
    return int(spooled), int(replayed)


# --- measuring ---------------------------------------------------------------------------


class CpuMeter:
    """CPU time of named processes between :meth:`start` and :meth:`stop`, as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        """Remember the processes to watch."""
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._begin: dict[str, float] = {}
        self._t0 = 0.0
        self.percent: dict[str, float] = {}

    def _cpu(self) -> dict[str, float]:
        out = {}
        for name, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[name] = times.user + times.system
        return out

    def start(self) -> None:
        """Take the first reading."""
        self._t0 = time.monotonic()
        self._begin = self._cpu()

    def stop(self) -> dict[str, float]:
        """Take the second reading; return each process's CPU use in % of one core."""
        wall = time.monotonic() - self._t0
        end = self._cpu()
        self.percent = {
            name: round(100 * (end[name] - self._begin[name]) / wall, 1)
            for name in self._procs
            if name in end and name in self._begin
        }
        return self.percent


def count_points(influx: LocalInfluxDB, db: str) -> int:
    """``SELECT count(score) FROM reading`` in ``db``."""
    return influx.count(db, "reading", "score")


def points_written(influx: LocalInfluxDB, db: str) -> int:
    """Points InfluxDB has taken into ``db`` since it started, from its ``/debug/vars``.

    The per-shard ``writePointsOk`` counters cost the server about a millisecond
    to report, where ``count()`` over a few hundred thousand points costs it
    0.1-0.4 s of CPU: polled every half second, that would take a large share of
    one of the two cores from the run being measured. The counters include
    ingest's own ``vibewatch_ingest`` points and reset when influxd restarts.
    """
    conn = http.client.HTTPConnection(HOST, influx.port, timeout=10)
    try:
        conn.request("GET", "/debug/vars")
        response = conn.getresponse()
        data = json.loads(response.read())
    finally:
        conn.close()
    return sum(
        int(entry["values"].get("writePointsOk", 0))
        for entry in data.values()
        if isinstance(entry, dict)
        and entry.get("name") == "shard"
        and (entry.get("tags") or {}).get("database") == db
    )


def wait_for_points(
    influx: LocalInfluxDB,
    db: str,
    total: int,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    *,
    use_counters: bool = True,
) -> tuple[float | None, int]:
    """Wait until ``SELECT count(score) FROM reading`` in ``db`` reaches ``total``.

    With ``use_counters``, InfluxDB's write counters are polled every 0.1 s
    (see :func:`points_written`) and the count is queried once they reach
    ``total``; the count is polled every :data:`POLL_INTERVAL` seconds without
    them, or when they ran ahead of it.

    Args:
        influx: The server.
        db: Database.
        total: Points expected.
        timeout: Seconds to wait at most.
        alive: Stop waiting as soon as this returns ``False`` (the writer died).
        use_counters: Whether the write counters can be trusted (no restart
            since the points started to arrive).

    Returns:
        ``(time.monotonic() when the total was reached, or None on timeout, last count)``.
    """
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline and alive():
        try:
            if use_counters:
                if points_written(influx, db) >= total:
                    reached = time.monotonic()
                    count = count_points(influx, db)
                    if count >= total:
                        return reached, count
                    use_counters = False  # counters include other points: count instead
                else:
                    time.sleep(0.1)
                    continue
            else:
                count = count_points(influx, db)
                if count >= total:
                    return time.monotonic(), count
        except (OSError, http.client.HTTPException, LocalServerError):
            pass  # a server being restarted answers nothing for a moment
        time.sleep(POLL_INTERVAL)
    return None, count


def reading_schema(influx: LocalInfluxDB, db: str) -> dict[str, object]:
    """Tag keys and field keys with their types of ``reading`` in ``db``."""
    schema: dict[str, object] = {}
    for what in ("TAG KEYS", "FIELD KEYS"):
        rows = [
            tuple(row)
            for series in influx.query(f"SHOW {what} FROM reading", db)
            for row in series.values
        ]
        schema[what] = sorted(rows)
    return schema


def schema_differences(influx: LocalInfluxDB, ours: str, ingests: str) -> str:
    """Compare the ``reading`` schema of the raw-ceiling database with the one ingest wrote.

    Returns:
        An empty string when tag keys, field keys and field types are the same;
        else both schemas, for the warning.
    """
    mine, theirs = reading_schema(influx, ours), reading_schema(influx, ingests)
    return "" if mine == theirs else f"raw lines {mine} but ingest wrote {theirs}"


def start_py_spy(pid: int, output: Path, log_path: Path) -> subprocess.Popen[bytes] | None:
    """Start ``py-spy record`` on a process; ``None`` when py-spy is not installed.

    The format follows the file name: ``.txt`` collapsed stacks, ``.json``
    speedscope, anything else an SVG flame graph.
    """
    exe = shutil.which("py-spy")
    if exe is None:
        progress("py-spy is not installed (pip install py-spy): not profiling")
        return None
    formats = {".txt": "raw", ".json": "speedscope"}
    fmt = formats.get(output.suffix, "flamegraph")
    command = [exe, "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    command += ["--format", fmt, "--output", str(output)]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop ``py-spy record`` with SIGINT, which makes it write its output."""
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- phases ------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything the run measured, printed as the table and the JSON object."""

    quick: bool
    ingest_env: dict[str, str]
    raw_runs_points_per_s: list[float] = field(default_factory=list)
    raw_cpu_percent: dict[str, float] = field(default_factory=dict)
    points_per_s: float = 0.0
    lost: int | None = None
    peak_rss_mb: float = 0.0
    e2e_points: int = 0
    e2e_seconds: float = 0.0
    publish_msgs_per_s: float = 0.0
    publish_failed: int = 0
    cpu_percent: dict[str, float] = field(default_factory=dict)
    naive_points_per_s: float = 0.0
    naive_lost: int | None = None
    naive_write_errors: int | None = None
    naive_cpu_percent: dict[str, float] = field(default_factory=dict)
    outage_seconds: float = 0.0
    outage_points: int = 0
    outage_rate_points_per_s: float = 0.0
    outage_lost: int | None = None
    outage_peak_rss_mb: float = 0.0
    outage_recovery_s: float | None = None
    outage_spooled: int | None = None
    raw_schema_difference: str = ""
    outage_replayed: int | None = None

    @property
    def raw_ceiling_points_per_s(self) -> float:
        """Mean of the raw-ceiling runs before and after the end-to-end phase.

        The machine's speed drifts between phases; bracketing the end-to-end
        phase with two raw runs and taking their mean cancels a slow drift.
        """
        runs = self.raw_runs_points_per_s
        return sum(runs) / len(runs) if runs else 0.0

    def bars(self) -> list[tuple[str, bool, str]]:
        """Return ``(name, met, explanation)`` for every bar."""
        ceiling_bar = BAR_CEILING_SHARE * self.raw_ceiling_points_per_s
        naive_bar = BAR_NAIVE_FACTOR * self.naive_points_per_s
        return [
            ("lost == 0", self.lost == 0, f"lost {self.lost}"),
            (
                f"points_per_s >= {BAR_CEILING_SHARE} x raw ceiling",
                self.points_per_s >= ceiling_bar,
                f"{self.points_per_s:,.0f} vs {ceiling_bar:,.0f}",
            ),
            (
                f"points_per_s >= {BAR_NAIVE_FACTOR:g} x naive",
                self.points_per_s >= naive_bar,
                f"{self.points_per_s:,.0f} vs {naive_bar:,.0f}",
            ),
            (
                f"peak_rss_mb <= {BAR_PEAK_RSS_MB:g}",
                0 < self.peak_rss_mb <= BAR_PEAK_RSS_MB,
                f"{self.peak_rss_mb:.1f} MiB",
            ),
            (
                f"outage_peak_rss_mb <= {BAR_PEAK_RSS_MB:g}",
                0 < self.outage_peak_rss_mb <= BAR_PEAK_RSS_MB,
                f"{self.outage_peak_rss_mb:.1f} MiB",
            ),
            ("outage_lost == 0", self.outage_lost == 0, f"lost {self.outage_lost}"),
        ]

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``."""
        return {
            "points_per_s": round(self.points_per_s),
            "lost": self.lost,
            "raw_ceiling_points_per_s": round(self.raw_ceiling_points_per_s),
            "raw_runs_points_per_s": [round(run) for run in self.raw_runs_points_per_s],
            "naive_points_per_s": round(self.naive_points_per_s),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "outage_peak_rss_mb": round(self.outage_peak_rss_mb, 1),
            "outage_lost": self.outage_lost,
            "outage_seconds": self.outage_seconds,
            "outage_points": self.outage_points,
            "outage_recovery_s": _round(self.outage_recovery_s, 1),
            "outage_spooled": self.outage_spooled,
            "outage_replayed": self.outage_replayed,
            "raw_lines_match_ingest": not self.raw_schema_difference,
            "e2e_points": self.e2e_points,
            "e2e_seconds": round(self.e2e_seconds, 2),
            "publish_msgs_per_s": round(self.publish_msgs_per_s),
            "publish_failed": self.publish_failed,
            "naive_lost": self.naive_lost,
            "naive_write_errors": self.naive_write_errors,
            "cpu_percent": self.cpu_percent,
            "raw_cpu_percent": self.raw_cpu_percent,
            "naive_cpu_percent": self.naive_cpu_percent,
            "ingest_env": self.ingest_env,
            "quick": self.quick,
            "bars_met": all(met for _, met, _ in self.bars()),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Bench:
    """The servers and settings shared by the phases."""

    plan: Plan
    workdir: Path
    broker: LocalMosquitto
    influx: LocalInfluxDB
    ctx: multiprocessing.context.SpawnContext
    overrides: dict[str, str]
    base_ms: int
    results: Results
    py_spy: Path | None = None

    def ingest(self, name: str, db: str, prefix: str, group: str = "") -> ServiceProcess:
        """An ingest process for one phase (not started), in the shared subscription
        ``group`` when one is given."""
        # the service's defaults unless --ingest-env says
        settings = {**self.overrides, **({"VIBEWATCH_MQTT_GROUP": group} if group else {})}
        env = ingest_env(
            mqtt_port=self.broker.port,
            influx_url=self.influx.url,
            database=db,
            data_home=self.workdir / f"home-{name}",
            client_id=f"bench-ingest-{name}",
            topic_prefix=prefix,
            settings=settings,
        )
        return ServiceProcess(env, self.workdir, name=f"ingest-{name}", ready_timeout=60)

    def publisher(self, name: str, prefix: str, messages: int, rate: float = 0) -> LoadProcess:
        """Start a load-generator process (it builds its payloads at once)."""
        job = LoadJob(
            port=self.broker.port,
            devices=DEVICES,
            messages=messages,
            t0=self.base_ms,
            prefix=prefix,
            rate=rate,
            client_id=f"bench-{name}",
            protocol=mqtt.MQTTv311,
        )
        return LoadProcess(job, self.ctx)

    def server_pids(self) -> dict[str, int]:
        """Process ids of the broker and the database."""
        assert self.broker.pid is not None and self.influx.pid is not None
        return {"mosquitto": self.broker.pid, "influxd": self.influx.pid}


def phase_raw(bench: Bench, db: str) -> None:
    """Raw ceiling: pre-encoded 5,000-line bodies posted to ``/write`` on one connection."""
    progress(f"raw ceiling: encoding batches, then posting for {bench.plan.raw_seconds:g}s")
    bench.influx.create_database(db)
    # Enough for 120,000 points/s: here the clock, not the supply, ends the phase.
    batches = raw_batches(
        math.ceil(bench.plan.raw_seconds * 120_000 / RAW_BATCH_LINES), base_ms=bench.base_ms
    )
    conn = http.client.HTTPConnection(HOST, bench.influx.port, timeout=60)
    path = f"/write?db={db}&precision=ns"
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    written = 0
    assert bench.influx.pid is not None
    meter = CpuMeter({"influxd": bench.influx.pid, "bench": os.getpid()})
    meter.start()
    start = time.monotonic()
    for body in batches:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        detail = response.read()
        if response.status != 204:
            raise RuntimeError(f"raw write answered {response.status}: {detail[:300]!r}")
        written += RAW_BATCH_LINES
        if time.monotonic() - start >= bench.plan.raw_seconds:
            break
    elapsed = time.monotonic() - start
    bench.results.raw_cpu_percent = meter.stop()
    conn.close()
    bench.results.raw_runs_points_per_s.append(written / elapsed)
    counted = count_points(bench.influx, db)
    if counted != written:
        raise RuntimeError(f"raw ceiling: wrote {written} points, InfluxDB counts {counted}")
    progress(f"raw ceiling: {written:,} points in {elapsed:.2f}s = {written / elapsed:,.0f}/s")


def drive(
    bench: Bench,
    publisher: LoadProcess,
    meter: CpuMeter,
    db: str,
    total: int,
    alive: Callable[[], bool],
) -> tuple[float | None, int]:
    """Let a ready publisher go and wait for ``total`` points in ``db``, measuring CPU
    meanwhile (``meter.percent`` after); see :func:`wait_for_points` for the result."""
    meter.start()
    publisher.go()
    reached = wait_for_points(bench.influx, db, total, bench.plan.drain_timeout, alive)
    meter.stop()
    return reached


def phase_e2e(bench: Bench) -> None:
    """End to end: a flat-out publisher, one ingest process, points counted in InfluxDB."""
    plan, results = bench.plan, bench.results
    db, prefix = "bench_e2e", "bench/e2e/"
    total = plan.e2e_messages * READINGS_PER_MESSAGE
    progress(f"end to end: {plan.e2e_messages:,} messages ({total:,} points); starting ingest")
    publisher = bench.publisher("e2e", prefix, plan.e2e_messages)
    ingest = bench.ingest("e2e", db, prefix)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        ingest.start()
        publisher.wait_ready()
        meter = CpuMeter(
            {
                "ingest": ingest.pid,
                **bench.server_pids(),
                "publisher": publisher.pid,
                "bench": os.getpid(),
            }
        )
        if bench.py_spy is not None:
            profiler = start_py_spy(ingest.pid, bench.py_spy, bench.workdir / "py-spy.log")
        progress("end to end: publishing")
        reached, count = drive(bench, publisher, meter, db, total, lambda: ingest.running)
        results.cpu_percent = meter.percent
        stop_py_spy(profiler)
        sent = publisher.result(60)
        if reached is None:
            progress(f"end to end: count stopped at {count:,} of {total:,}\n{ingest.log_tail()}")
            reached = time.monotonic()
        results.e2e_seconds = reached - sent.first
        results.points_per_s = count / results.e2e_seconds if count > 0 else 0.0
        results.publish_msgs_per_s = sent.acked / max(1e-9, sent.acked_at - sent.first)
        progress("end to end: stopping ingest")
        stop_ingest(ingest)
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
            profiler.wait()
        ingest.close()
        publisher.close()
    counted = count_points(bench.influx, db)
    results.e2e_points = counted
    results.publish_failed = sent.failed
    # A failed publish is lost too: the load generator does not retry.
    results.lost = (sent.acked + sent.failed) * READINGS_PER_MESSAGE - counted
    results.peak_rss_mb = ingest.peak_rss_mb
    results.raw_schema_difference = schema_differences(bench.influx, "bench_raw_before", db)
    if results.raw_schema_difference:
        progress(f"WARNING: raw ceiling not comparable: {results.raw_schema_difference}")
    progress(
        f"end to end: {counted:,} points in {results.e2e_seconds:.2f}s = "
        f"{results.points_per_s:,.0f}/s; lost {results.lost}; peak RSS {ingest.peak_rss_mb:.1f} MiB"
    )


def phase_naive(bench: Bench) -> None:
    """Naive baseline: one synchronous HTTP write per message from ``on_message``."""
    plan, results = bench.plan, bench.results
    db, prefix = "bench_naive", "bench/naive/"
    total = plan.naive_messages * READINGS_PER_MESSAGE
    progress(f"naive: {plan.naive_messages:,} messages ({total:,} points)")
    bench.influx.create_database(db)
    publisher = bench.publisher("naive-pub", prefix, plan.naive_messages)
    conn, child = bench.ctx.Pipe()
    subscriber = bench.ctx.Process(
        target=naive_main,
        args=(child, bench.broker.port, bench.influx.port, db, prefix),
        name="bench-naive",
        daemon=True,
    )
    subscriber.start()
    child.close()
    try:
        if not conn.poll(60):
            raise RuntimeError("naive subscriber not ready in time")
        conn.recv()
        publisher.wait_ready()
        assert subscriber.pid is not None
        meter = CpuMeter(
            {"naive": subscriber.pid, **bench.server_pids(), "publisher": publisher.pid}
        )
        progress("naive: publishing")
        meter.start()
        publisher.go()
        reached, count = wait_for_points(
            bench.influx, db, total, plan.drain_timeout, subscriber.is_alive
        )
        results.naive_cpu_percent = meter.stop()
        sent = publisher.result(60)
        if reached is None:
            progress(f"naive: count stopped at {count:,} of {total:,}")
            reached = time.monotonic()
        results.naive_points_per_s = max(0, count) / (reached - sent.first)
        conn.send("stop")
        if conn.poll(30):
            results.naive_write_errors = conn.recv()["errors"]
    finally:
        publisher.close()
        if subscriber.is_alive():
            subscriber.terminate()
        subscriber.join(5)
    counted = count_points(bench.influx, db)
    results.naive_lost = sent.acked * READINGS_PER_MESSAGE - counted
    progress(f"naive: {counted:,} points at {results.naive_points_per_s:,.0f}/s")


def phase_outage(bench: Bench) -> None:
    """Outage: steady load while InfluxDB is stopped and started again; memory must stay bounded."""
    plan, results = bench.plan, bench.results
    db, prefix = "bench_outage", "bench/outage/"
    duration = plan.outage_before + plan.outage_seconds + plan.outage_after
    messages = int(plan.outage_rate * duration)
    total = messages * READINGS_PER_MESSAGE
    results.outage_seconds = plan.outage_seconds
    results.outage_points = total
    results.outage_rate_points_per_s = plan.outage_rate * READINGS_PER_MESSAGE
    progress(
        f"outage: {plan.outage_rate:,} messages/s for {duration:g}s; InfluxDB stopped "
        f"{plan.outage_seconds:g}s after {plan.outage_before:g}s"
    )
    publisher = bench.publisher("outage", prefix, messages, rate=plan.outage_rate)
    ingest = bench.ingest("outage", db, prefix)
    try:
        ingest.start()
        publisher.wait_ready()
        publisher.go()
        time.sleep(plan.outage_before)
        progress("outage: stopping influxd")
        bench.influx.stop()
        time.sleep(plan.outage_seconds)
        progress("outage: starting influxd again")
        bench.influx.start()
        back = time.monotonic()
        sent = publisher.result(duration + 120)
        reached, count = wait_for_points(
            bench.influx,
            db,
            total,
            plan.drain_timeout,
            lambda: ingest.running,
            use_counters=False,  # influxd's counters restarted with it
        )
        if reached is None:
            progress(f"outage: count stopped at {count:,} of {total:,}\n{ingest.log_tail()}")
        else:
            results.outage_recovery_s = reached - back
        progress("outage: stopping ingest")
        spooled, replayed = stop_ingest(ingest)
    finally:
        ingest.close()
        publisher.close()
    counted = count_points(bench.influx, db)
    results.outage_lost = (sent.acked + sent.failed) * READINGS_PER_MESSAGE - counted
    results.outage_peak_rss_mb = ingest.peak_rss_mb
    results.outage_spooled, results.outage_replayed = spooled, replayed
    progress(
        f"outage: lost {results.outage_lost}; peak RSS {ingest.peak_rss_mb:.1f} MiB; "
        f"all points in {_round(results.outage_recovery_s, 1)}s after influxd was back"
    )


@dataclass(frozen=True)
class GroupRun:
    """One size of the scale-out runs: ``members`` ingest processes in one group.

    Attributes:
        members: Ingest processes in the shared subscription group.
        points_per_s: Points counted in InfluxDB over the time from the first publish.
        lost: Published minus counted, after every member drained and stopped.
        cpu_percent: CPU of each member, the servers and the publisher, % of one core.
    """

    members: int
    points_per_s: float
    lost: int
    cpu_percent: dict[str, float]

    @property
    def messages_per_s(self) -> float:
        """Telemetry messages a second (each holds :data:`READINGS_PER_MESSAGE` points)."""
        return self.points_per_s / READINGS_PER_MESSAGE


def phase_group(bench: Bench, members: int) -> GroupRun:
    """Scale-out: ``members`` ingest processes in one shared subscription group take a
    flat-out publisher's load; points counted in InfluxDB."""
    plan = bench.plan
    db, prefix = f"bench_group_{members}", f"bench/group{members}/"
    total = plan.e2e_messages * READINGS_PER_MESSAGE
    progress(f"group of {members}: {plan.e2e_messages:,} messages ({total:,} points)")
    publisher = bench.publisher(f"group{members}", prefix, plan.e2e_messages)
    ingests = [
        bench.ingest(f"group{members}-{n}", db, prefix, group="bench")
        for n in range(1, members + 1)
    ]
    try:
        for ingest in ingests:
            ingest.start()
        publisher.wait_ready()
        pids = {ingest.name: ingest.pid for ingest in ingests}
        meter = CpuMeter({**pids, **bench.server_pids(), "publisher": publisher.pid})
        reached, count = drive(
            bench, publisher, meter, db, total, lambda: all(i.running for i in ingests)
        )
        cpu = meter.percent
        sent = publisher.result(60)
        if reached is None:
            progress(f"group of {members}: count stopped at {count:,} of {total:,}")
            reached = time.monotonic()
        for ingest in ingests:
            stop_ingest(ingest)
    finally:
        for ingest in ingests:
            ingest.close()
        publisher.close()
    counted = count_points(bench.influx, db)
    run = GroupRun(
        members=members,
        points_per_s=count / (reached - sent.first) if count > 0 else 0.0,
        lost=(sent.acked + sent.failed) * READINGS_PER_MESSAGE - counted,
        cpu_percent=cpu,
    )
    progress(f"group of {members}: {run.points_per_s:,.0f} points/s; lost {run.lost}")
    return run


def group_table(runs: list[GroupRun], raw_runs: list[float]) -> str:
    """The scale-out runs as a plain-text table, one column per group size."""
    rows: list[tuple[str, list[str]]] = [
        ("ingest processes in the group", [str(r.members) for r in runs]),
        ("messages/s, whole group", [f"{r.messages_per_s:,.0f}" for r in runs]),
        ("points/s, whole group", [f"{r.points_per_s:,.0f}" for r in runs]),
        ("messages/s per process", [f"{r.messages_per_s / r.members:,.0f}" for r in runs]),
        ("points/s per process", [f"{r.points_per_s / r.members:,.0f}" for r in runs]),
        ("lost (published - counted)", [str(r.lost) for r in runs]),
    ]
    for name in ("ingest", "mosquitto", "influxd", "publisher"):
        rows.append(
            (
                f"CPU % of one core, {name}",
                [
                    "/".join(f"{v:.0f}" for k, v in r.cpu_percent.items() if k.startswith(name))
                    for r in runs
                ],
            )
        )
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  " + "".join(f"{v:>10}" for v in values) for name, values in rows]
    ceiling = " / ".join(f"{run:,.0f}" for run in raw_runs)
    lines.append(f"{'raw InfluxDB ceiling, before / after':<{width}}  {ceiling} points/s")
    return "\n".join(lines)


def run_groups(sizes: list[int], plan: Plan, overrides: dict[str, str], as_json: bool) -> int:
    """The scale-out runs, between a raw-ceiling run before and one after; the exit status."""
    results = Results(quick=plan.quick, ingest_env=overrides)
    with servers(plan, results, overrides) as bench:
        phase_raw(bench, "bench_raw_before")
        runs = [phase_group(bench, size) for size in sizes]
        phase_raw(bench, "bench_raw_after")
    values = {
        "groups": [
            {
                "members": r.members,
                "messages_per_s": round(r.messages_per_s),
                "points_per_s": round(r.points_per_s),
                "lost": r.lost,
                "cpu_percent": r.cpu_percent,
            }
            for r in runs
        ],
        "raw_runs_points_per_s": [round(run) for run in results.raw_runs_points_per_s],
        "ingest_env": overrides,
        "quick": plan.quick,
    }
    bars = [(f"lost == 0, group of {r.members}", r.lost == 0, f"lost {r.lost}") for r in runs]
    text = group_table(runs, results.raw_runs_points_per_s)
    return finish(text, values, bars, as_json=as_json)


# --- output ------------------------------------------------------------------------------


def table(results: Results, plan: Plan) -> str:
    """Render the results as a plain-text table."""
    same = "different from ingest's!" if results.raw_schema_difference else "as ingest writes"
    rows: list[tuple[str, str]] = [
        ("raw InfluxDB write ceiling", f"{results.raw_ceiling_points_per_s:,.0f} points/s"),
        (
            "  runs before / after end to end",
            " / ".join(f"{run:,.0f}" for run in results.raw_runs_points_per_s),
        ),
        ("  reading tags, fields and types", same),
        (
            "  CPU, % of one core",
            ", ".join(f"{k} {v:.0f}" for k, v in results.raw_cpu_percent.items()),
        ),
        ("end to end through vibewatch ingest", f"{results.points_per_s:,.0f} points/s"),
        ("  points / seconds", f"{results.e2e_points:,} / {results.e2e_seconds:.2f}s"),
        (
            "  share of the raw ceiling",
            f"{_ratio(results.points_per_s, results.raw_ceiling_points_per_s)}",
        ),
        ("  lost (published - counted)", f"{results.lost}"),
        ("  ingest peak RSS", f"{results.peak_rss_mb:.1f} MiB"),
        ("  load generator publish rate", f"{results.publish_msgs_per_s:,.0f} messages/s"),
        (
            "  CPU, % of one core",
            ", ".join(f"{k} {v:.0f}" for k, v in results.cpu_percent.items()),
        ),
        ("naive on_message -> HTTP write", f"{results.naive_points_per_s:,.0f} points/s"),
        ("  ingest / naive", _ratio(results.points_per_s, results.naive_points_per_s)),
        (
            "  CPU, % of one core",
            ", ".join(f"{k} {v:.0f}" for k, v in results.naive_cpu_percent.items()),
        ),
        (
            "outage: InfluxDB stopped" + (" (quick: shortened from 30s)" if plan.quick else ""),
            f"{results.outage_seconds:g}s under {results.outage_rate_points_per_s:,.0f} points/s",
        ),
        ("  lost", f"{results.outage_lost} of {results.outage_points:,}"),
        (
            "  points spooled / replayed by ingest",
            f"{results.outage_spooled} / {results.outage_replayed}",
        ),
        ("  ingest peak RSS", f"{results.outage_peak_rss_mb:.1f} MiB"),
        ("  all points in, after influxd was back", f"{_round(results.outage_recovery_s, 1)}s"),
        (
            "ingest settings",
            " ".join(f"{k}={v}" for k, v in results.ingest_env.items()) or "defaults",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    for name, met, detail in results.bars():
        lines.append(f"{'ok  ' if met else 'MISS'}  {name:<34} {detail}")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


# --- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Bars (exit status 1 when any is missed; each missed bar is printed):\n"
            "  lost == 0 and outage_lost == 0   every acknowledged point lands in InfluxDB\n"
            f"  points_per_s >= {BAR_CEILING_SHARE} x raw_ceiling_points_per_s\n"
            "                                   ingest reaches half of what InfluxDB takes\n"
            f"  points_per_s >= {BAR_NAIVE_FACTOR:g} x naive_points_per_s\n"
            "                                   batching earns its complexity\n"
            f"  peak_rss_mb <= {BAR_PEAK_RSS_MB:g}, outage_peak_rss_mb <= {BAR_PEAK_RSS_MB:g}\n"
            "                                   memory stays bounded, also while InfluxDB is down\n"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller load and a 10 s outage: the whole run takes under a minute",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the table on stderr)"
    )
    parser.add_argument(
        "--ingest-env",
        action="append",
        default=[],
        metavar="VIBEWATCH_KEY=VALUE",
        help="configuration for the ingest processes (repeatable); reported with the results",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="record the ingest process with py-spy during the end-to-end phase into FILE "
        "(.svg flame graph, .txt collapsed stacks, .json speedscope); the profiler takes "
        "CPU from the run, so its figures are not comparable with an unprofiled run",
    )
    parser.add_argument(
        "--group-sizes",
        metavar="N,N,...",
        help="measure scale-out instead: for each N, N ingest processes in one shared "
        "subscription group against the end-to-end load (e.g. 1,2)",
    )
    parser.add_argument(
        "--skip-outage",
        action="store_true",
        help="leave out the outage phase (its bars are then missed)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    overrides = {}
    for item in args.ingest_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("VIBEWATCH_"):
            raise SystemExit(f"--ingest-env wants VIBEWATCH_KEY=VALUE, got {item!r}")
        overrides[key] = value
    plan = QUICK if args.quick else FULL
    if args.group_sizes:
        try:
            sizes = [int(size) for size in args.group_sizes.split(",")]
        except ValueError as exc:
            message = f"--group-sizes wants numbers like 1,2, got {args.group_sizes!r}"
            raise SystemExit(message) from exc
        if min(sizes) < 1:
            raise SystemExit("--group-sizes: at least one process per group")
        return run_groups(sizes, plan, overrides, args.json)
    began = time.monotonic()
    results = Results(quick=plan.quick, ingest_env=overrides)
    try:
        run(plan, results, overrides, args)
    except KeyboardInterrupt:
        progress("interrupted; servers and processes stopped")
        return 130
    progress(f"done in {time.monotonic() - began:.1f}s")
    return finish(table(results, plan), results.as_json(), results.bars(), as_json=args.json)


@contextlib.contextmanager
def servers(
    plan: Plan, results: Results, overrides: dict[str, str], py_spy: Path | None = None
) -> Iterator[Bench]:
    """The servers, started in a temporary directory, and the phases' shared settings;
    everything stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="vibewatch-bench-") as tmp:
        workdir = Path(tmp)
        progress(f"starting mosquitto and influxd in {workdir}")
        with local_servers(workdir) as (broker, influx):
            yield Bench(
                plan=plan,
                workdir=workdir,
                broker=broker,
                influx=influx,
                ctx=multiprocessing.get_context("spawn"),
                overrides=overrides,
                base_ms=int(time.time()) * 1000 - BASE_AGE_MS,
                results=results,
                py_spy=py_spy,
            )
            progress("stopping servers")


def run(plan: Plan, results: Results, overrides: dict[str, str], args: argparse.Namespace) -> None:
    """Run every phase."""
    py_spy = args.py_spy.absolute() if args.py_spy else None
    with servers(plan, results, overrides, py_spy) as bench:
        phase_raw(bench, "bench_raw_before")
        phase_e2e(bench)
        phase_raw(bench, "bench_raw_after")
        phase_naive(bench)
        if not args.skip_outage:
            phase_outage(bench)


if __name__ == "__main__":
    sys.exit(main())
