"""Alerts benchmark: anomaly events over real Mosquitto to signed webhooks at a loopback receiver.

One run starts a real Mosquitto broker on loopback (in a temporary directory) and, for
each of its three phases, a webhook receiver of this process
(:class:`~vibewatch.testing.webhooks.LocalReceiver`: a real HTTP server that verifies
every request's Standard Webhooks signature, and answers 401 to one that does not
verify) and ``python -m vibewatch alerts serve`` as a process of its own, with a data
home (its state database, the outbox) and an MQTT client id of its own. Its config
file turns grouping off: ``group_by = "..."`` (every alert is its own group, so every
alert is one notification), ``group_wait = 0`` and a small ``group_interval``
(``--group-interval``, default 1 s: each group, its alert firing, is looked at again
that often); the other keys keep their defaults (the rules, the retry policy, the
receiver's timeout and concurrency). This process publishes the events as devices do:
an anomaly ``start`` event (``docs/protocol/``) on ``<prefix>/<device>/event``, QoS 1,
one for each of a phase's devices, whose ids are new in every phase. The rules make a
``DeviceAnomaly`` alert of each. It measures:

* ``alerts_per_s`` (phase *throughput*): ``--events`` (default 3,000) events published
  as fast as the broker acknowledges them, then the events over the real seconds from
  the first publish until the receiver accepted the last device's notification;
* ``p99_delivery_ms`` (phase *latency*): ``--latency-events`` (default 1,000) events,
  ``--latency-rate`` a second (default 100), each published once the last was
  acknowledged; for each, the time from just before its publish until the receiver got
  the first request it accepted listing the device's alert (its arrival, before the
  signature is checked), the 99th percentile (nearest rank). The receiver is healthy and
  the group wait 0, so no wait of configuration is in it;
* ``lost`` and ``duplicated`` (phase *outage*): the receiver answers 503 to everything
  for ``--outage`` seconds (default 30) while ``--outage-events`` (default 600) events
  are published evenly over them; halfway, the alerts process is killed with SIGKILL
  (the notifications pending in its outbox then are counted) and started again at once
  (same data home, same MQTT session: what the broker held for it meanwhile comes then).
  The receiver then answers 200 again, and the phase waits until every device's alert
  was accepted (at most ``--drain`` seconds, default 120), and then 5 s more for what
  would come twice. ``lost``: devices whose event the broker acknowledged but whose
  alert no accepted notification lists as firing. ``duplicated``: acceptances of an
  alert beyond its first, by alert identity: for each fingerprint, the accepted
  notifications (distinct ``webhook-id``) that list it firing, minus one. A request with
  a ``webhook-id`` the receiver accepted already is answered 200 and not accepted again
  (the receiver deduplicates, as Standard Webhooks intends): such ``redelivered``
  requests are reported but are not duplicates.

Also reported: events and notifications of each phase, wall seconds, requests the
receiver refused or could not verify, the 50th percentile and the largest delivery
time, the seconds from the outage's end until the last alert was accepted, CPU time
(user + system, ``/proc/<pid>/stat``) of the alerts process, the broker and this process
(the publisher and the receiver) during the throughput phase in % of one core, and the
alerts process's peak RSS (``VmHWM``, read just before it is stopped with SIGTERM).

Bars (exit status 1 when one is missed): ``alerts_per_s >= 500``, ``p99_delivery_ms <=
500``, ``lost == 0``, ``duplicated == 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from outcome import finish, progress  # benchmarks/outcome.py, beside this script
from sim import CpuMeter  # benchmarks/sim.py, beside this script
from vibewatch.alerts.outbox import Outbox, State
from vibewatch.alerts.signing import new_secret
from vibewatch.protocol import DEFAULT_PREFIX, AnomalyEvent, EventKind, Kind, topic_for
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.load import LoadGenerator
from vibewatch.testing.servers import LocalMosquitto
from vibewatch.testing.webhooks import LocalReceiver, Received, Reply

EVENTS: Final = 3000
LATENCY_EVENTS: Final = 1000
#: Events a second of the latency phase.
LATENCY_RATE: Final = 100.0
#: Seconds the receiver is down in the outage phase.
OUTAGE_S: Final = 30.0
OUTAGE_EVENTS: Final = 600
#: Longest wait, after the outage, for every alert to be accepted.
DRAIN_S: Final = 120.0
#: Longest wait for the notifications of the throughput and latency phases.
DELIVERY_TIMEOUT_S: Final = 120.0
#: Seconds the outage phase goes on after the last alert was accepted (for duplicates).
SETTLE_S: Final = 5.0
#: ``[alerts] group_interval`` of the runs.
GROUP_INTERVAL_S: Final = 1.0
#: Seconds between two progress lines of the outage phase.
PROGRESS_S: Final = 5.0
#: Requests the receiver answers 503 at most during the outage (it is un-scripted after).
OUTAGE_REPLIES: Final = 1_000_000
RECEIVER: Final = "bench"
MODEL_ID: Final = "vibewatch-ae"

BAR_ALERTS_PER_S: Final = 500.0
BAR_P99_MS: Final = 500.0


class BenchError(RuntimeError):
    """The benchmark cannot go on (the broker did not acknowledge the events)."""


# --- events and what the receiver got ---------------------------------------------------------


def anomaly_start(prefix: str, device: str, seq: int, t_ms: int) -> tuple[str, bytes]:
    """The topic and payload of a device's anomaly ``start`` event, as the firmware sends
    it (a score three times its threshold)."""
    event = AnomalyEvent(
        device=device,
        seq=seq,
        t=t_ms,
        kind=EventKind.START,
        score=0.75,
        threshold=0.25,
        model_id=MODEL_ID,
        model_version=1,
    )
    return topic_for(prefix, device, Kind.EVENT), event.encode()


def device_ids(phase: str, count: int) -> list[str]:
    """The ids of a phase's devices, ``bench-<phase>-00042``."""
    return [f"bench-{phase}-{i:05d}" for i in range(count)]


@dataclass(frozen=True)
class Delivery:
    """What the receiver's requests say about the alerts of a set of devices.

    Attributes:
        requests: Requests the receiver got.
        refused: Requests it answered with other than a 2xx (its scripted 503s, a 401).
        unverified: Requests whose signature did not verify.
        notifications: Notifications it accepted (distinct ``webhook-id``).
        first_accepted: For each device whose alert an accepted notification lists as
            firing, when the first such request arrived (``time.time()``).
        lost: Devices fired whose alert no accepted notification lists as firing.
        duplicated: Acceptances of an alert beyond its first: for each fingerprint, the
            accepted notifications that list it firing, minus one.
        redelivered: Requests answered 2xx for a ``webhook-id`` accepted before (the
            receiver dropped them: not duplicates).
        unexpected: Firing alerts accepted for devices that were not fired.
    """

    requests: int
    refused: int
    unverified: int
    notifications: int
    first_accepted: dict[str, float]
    lost: tuple[str, ...]
    duplicated: int
    redelivered: int
    unexpected: int


def firing_alerts(body: bytes) -> list[tuple[str, str]]:
    """``(fingerprint, device)`` of each firing alert of an Alertmanager webhook body (the
    device ``""`` for an alert without a ``device`` label)."""
    notification = json.loads(body)
    return [
        (str(alert["fingerprint"]), str(alert["labels"].get("device", "")))
        for alert in notification["alerts"]
        if alert["status"] == "firing"
    ]


def tally(fired: Collection[str], requests: Sequence[Received]) -> Delivery:
    """What ``requests`` (a receiver's, in their order) delivered of the alerts of the
    ``fired`` devices (see :class:`Delivery`)."""
    accepted_ids: set[str] = set()
    ids_by_fingerprint: dict[str, set[str]] = {}
    first: dict[str, float] = {}
    unexpected: set[str] = set()
    refused = unverified = redelivered = 0
    for request in requests:
        unverified += not request.verified
        if not 200 <= request.status < 300:
            refused += 1
            continue
        msg_id = request.headers.get("webhook-id", "")
        if msg_id in accepted_ids:
            redelivered += 1
            continue
        accepted_ids.add(msg_id)
        for fingerprint, device in firing_alerts(request.body):
            ids_by_fingerprint.setdefault(fingerprint, set()).add(msg_id)
            if device not in fired:
                unexpected.add(fingerprint)
            elif device not in first:
                first[device] = request.at
    return Delivery(
        requests=len(requests),
        refused=refused,
        unverified=unverified,
        notifications=len(accepted_ids),
        first_accepted=first,
        lost=tuple(device for device in fired if device not in first),
        duplicated=sum(len(ids) - 1 for ids in ids_by_fingerprint.values()),
        redelivered=redelivered,
        unexpected=len(unexpected),
    )


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` (0 to 1) of
    ``values`` at or below it; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# --- results ----------------------------------------------------------------------------------


@dataclass
class Phase:
    """The figures of one phase.

    Attributes:
        events: Events published (each acknowledged by the broker).
        notifications: Notifications the receiver accepted.
        requests: Requests it got.
        refused: Requests it answered with other than a 2xx.
        unverified: Requests whose signature did not verify.
        redelivered: Requests for a ``webhook-id`` it had accepted already.
        delivered: Devices whose alert was accepted.
        wall_s: Seconds from the first publish until the last alert was accepted (or the
            phase gave up waiting).
        peak_rss_mb: The alerts process's peak RSS, MiB (0 when it was not stopped
            cleanly).
    """

    events: int = 0
    notifications: int = 0
    requests: int = 0
    refused: int = 0
    unverified: int = 0
    redelivered: int = 0
    delivered: int = 0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0

    def take(self, delivery: Delivery) -> None:
        """Copy the receiver's figures."""
        self.notifications = delivery.notifications
        self.requests = delivery.requests
        self.refused = delivery.refused
        self.unverified = delivery.unverified
        self.redelivered = delivery.redelivered
        self.delivered = len(delivery.first_accepted)


@dataclass
class Results:
    """Everything the run measured, printed as the table and the JSON object."""

    throughput: Phase = field(default_factory=Phase)
    latency: Phase = field(default_factory=Phase)
    outage: Phase = field(default_factory=Phase)
    alerts_per_s: float = 0.0
    cpu_percent: dict[str, float] = field(default_factory=dict)
    latency_rate: float = LATENCY_RATE
    delivery_ms: list[float] = field(default_factory=list)
    outage_s: float = OUTAGE_S
    group_interval_s: float = GROUP_INTERVAL_S
    killed_at_s: float | None = None
    pending_at_kill: int = 0
    restart_s: float | None = None
    lost: int | None = None
    duplicated: int | None = None
    unexpected: int = 0
    drained_s: float | None = None
    wall_seconds: float = 0.0

    @property
    def alerts_peak_rss_mb(self) -> float:
        """The largest peak RSS of the phases' alerts processes, MiB."""
        return max(self.throughput.peak_rss_mb, self.latency.peak_rss_mb, self.outage.peak_rss_mb)

    @property
    def p99_delivery_ms(self) -> float | None:
        """The 99th percentile of the delivery times; None before any."""
        return percentile(self.delivery_ms, 0.99) if self.delivery_ms else None

    def bars(self) -> list[tuple[str, bool, str]]:
        """Return ``(name, met, explanation)`` for every bar."""
        p99 = self.p99_delivery_ms
        return [
            (
                f"alerts_per_s >= {BAR_ALERTS_PER_S:g}",
                self.alerts_per_s >= BAR_ALERTS_PER_S,
                f"{self.alerts_per_s:,.0f}",
            ),
            (
                f"p99_delivery_ms <= {BAR_P99_MS:g}",
                p99 is not None and p99 <= BAR_P99_MS,
                "not measured" if p99 is None else f"{p99:.1f}",
            ),
            ("lost == 0", self.lost == 0, "not measured" if self.lost is None else f"{self.lost}"),
            (
                "duplicated == 0",
                self.duplicated == 0,
                "not measured" if self.duplicated is None else f"{self.duplicated}",
            ),
        ]

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``."""
        p99 = self.p99_delivery_ms
        p50 = percentile(self.delivery_ms, 0.5) if self.delivery_ms else None
        return {
            "alerts_per_s": round(self.alerts_per_s, 1),
            "p99_delivery_ms": None if p99 is None else round(p99, 1),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "events": self.throughput.events + self.latency.events + self.outage.events,
            "notifications": (
                self.throughput.notifications
                + self.latency.notifications
                + self.outage.notifications
            ),
            "wall_seconds": round(self.wall_seconds, 1),
            "alerts_peak_rss_mb": round(self.alerts_peak_rss_mb, 1),
            "p50_delivery_ms": None if p50 is None else round(p50, 1),
            "max_delivery_ms": round(max(self.delivery_ms), 1) if self.delivery_ms else None,
            "group_interval_s": self.group_interval_s,
            "latency_rate": self.latency_rate,
            "outage_s": self.outage_s,
            "killed_at_s": None if self.killed_at_s is None else round(self.killed_at_s, 1),
            "pending_at_kill": self.pending_at_kill,
            "restart_s": None if self.restart_s is None else round(self.restart_s, 2),
            "drained_s": None if self.drained_s is None else round(self.drained_s, 1),
            "unexpected": self.unexpected,
            "cpu_percent": self.cpu_percent,
            "phases": {
                name: {k: round(v, 2) if isinstance(v, float) else v for k, v in vars(p).items()}
                for name, p in (
                    ("throughput", self.throughput),
                    ("latency", self.latency),
                    ("outage", self.outage),
                )
            },
            "bars_met": all(met for _, met, _ in self.bars()),
        }


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Bench:
    """The broker, the secret and where the phases keep their files."""

    broker: LocalMosquitto
    workdir: Path
    group_interval_s: float = GROUP_INTERVAL_S
    secret: str = field(default_factory=new_secret)
    prefix: str = DEFAULT_PREFIX

    def state_db(self, phase: str) -> Path:
        """The state database of a phase's alerts process."""
        return self.workdir / phase / "home" / "state.db"

    def alerts_process(self, phase: str, receiver: LocalReceiver) -> ServiceProcess:
        """``vibewatch alerts serve`` for a phase (not started): its config file, data home
        and MQTT client id, grouping off, ``receiver`` its only receiver."""
        directory = self.workdir / phase
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "vibewatch.toml"
        config.write_text(
            f"data_home = {json.dumps(str(directory / 'home'))}\n"
            "[mqtt]\n"
            f"port = {self.broker.port}\n"
            f'client_id = "bench-alerts-{phase}"\n'
            f"topic_prefix = {json.dumps(self.prefix)}\n"
            "[alerts]\n"
            'group_by = "..."\n'
            "group_wait = 0\n"
            f"group_interval = {self.group_interval_s}\n"
            f"[alerts.receivers.{RECEIVER}]\n"
            f"url = {json.dumps(receiver.url)}\n"
            f"secrets = [{json.dumps(self.secret)}]\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
        return ServiceProcess(
            env, directory, ("serve", "--config", str(config)), command="alerts", name="alerts"
        )

    def events(self, devices: Sequence[str]) -> list[tuple[str, bytes]]:
        """An anomaly start event of each device, stamped now."""
        t_ms = int(time.time() * 1000)
        return [
            anomaly_start(self.prefix, device, 1000 + i, t_ms) for i, device in enumerate(devices)
        ]

    def publisher(self, phase: str) -> LoadGenerator:
        """A QoS 1 publisher for a phase's events (not connected)."""
        return LoadGenerator(self.broker.port, client_id=f"bench-devices-{phase}")


@contextlib.contextmanager
def running(process: ServiceProcess, phase: Phase) -> Iterator[ServiceProcess]:
    """Start ``process``; on the way out stop it with SIGTERM (its peak RSS into ``phase``)."""
    process.start()
    try:
        yield process
    finally:
        if process.running:
            with contextlib.suppress(Exception):
                process.stop(30)
                phase.peak_rss_mb = process.peak_rss_mb
        process.close()


def wait_delivered(receiver: LocalReceiver, devices: Collection[str], timeout: float) -> Delivery:
    """Wait until the receiver accepted every device's alert, at most ``timeout`` seconds;
    what it got then.

    Each missing alert needs one more accepted notification at least, so the requests
    are only looked through again once that many came (or the time is up): the receiver
    shares this process, and reading every body again at each new one would slow it.
    """
    deadline = time.monotonic() + timeout
    while True:
        delivery = tally(devices, receiver.requests)
        left = deadline - time.monotonic()
        if not delivery.lost or left <= 0:
            return delivery
        with contextlib.suppress(TimeoutError):
            receiver.wait_accepted(delivery.notifications + len(delivery.lost), left)


def pending_notifications(state_db: Path) -> int:
    """Notifications the outbox of ``state_db`` holds pending (0 while there is none)."""
    if not state_db.exists():
        return 0
    db = open_state_db(state_db)
    try:
        return len(Outbox(db).notifications(state=State.PENDING, limit=1_000_000))
    finally:
        db.close()


def publish_acked(load: LoadGenerator, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish ``messages`` as fast as the broker acknowledges them.

    Raises:
        BenchError: Some message was not acknowledged.
    """
    report = load.run(messages)
    if report.failed:
        raise BenchError(f"{report.failed} of {report.messages} events not acknowledged")


def measure_throughput(bench: Bench, results: Results, events: int) -> None:
    """Phase *throughput*: ``alerts_per_s`` (module documentation)."""
    phase = results.throughput
    devices = device_ids("tp", events)
    messages = bench.events(devices)
    progress(f"throughput: {events:,} events as fast as the broker takes them")
    with LocalReceiver([bench.secret]) as receiver:
        process = bench.alerts_process("throughput", receiver)
        with running(process, phase), bench.publisher("throughput") as load:
            pids = {"alerts": process.pid, "bench": os.getpid()}
            if bench.broker.pid is not None:
                pids["mosquitto"] = bench.broker.pid
            meter = CpuMeter(pids)
            meter.start()
            began = time.time()
            publish_acked(load, messages)
            phase.events = events
            progress(f"throughput: published in {time.time() - began:.2f}s")
            delivery = wait_delivered(receiver, devices, DELIVERY_TIMEOUT_S)
            results.cpu_percent = meter.stop()
    phase.take(delivery)
    last = max(delivery.first_accepted.values(), default=time.time())
    phase.wall_s = last - began
    results.alerts_per_s = phase.delivered / phase.wall_s if phase.wall_s > 0 else 0.0
    progress(
        f"throughput: {phase.delivered:,} alerts accepted in {phase.wall_s:.2f}s "
        f"({results.alerts_per_s:,.0f}/s)"
    )


def measure_latency(bench: Bench, results: Results, events: int, rate: float) -> None:
    """Phase *latency*: ``p99_delivery_ms`` (module documentation)."""
    phase = results.latency
    devices = device_ids("lat", events)
    messages = bench.events(devices)
    progress(f"latency: {events:,} events at {rate:g}/s")
    sent: dict[str, float] = {}
    with LocalReceiver([bench.secret]) as receiver:
        process = bench.alerts_process("latency", receiver)
        with running(process, phase), bench.publisher("latency") as load:
            began = time.monotonic()
            for index, (device, (topic, payload)) in enumerate(zip(devices, messages, strict=True)):
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent[device] = time.time()
                load.publish(topic, payload)
            phase.events = events
            delivery = wait_delivered(receiver, devices, DELIVERY_TIMEOUT_S)
    phase.take(delivery)
    first_sent = min(sent.values())
    phase.wall_s = max(delivery.first_accepted.values(), default=first_sent) - first_sent
    results.delivery_ms = [
        1000 * (at - sent[device]) for device, at in delivery.first_accepted.items()
    ]
    progress(
        f"latency: {phase.delivered:,} alerts accepted; p99 "
        f"{results.p99_delivery_ms or math.nan:.1f} ms"
    )


def measure_outage(
    bench: Bench, results: Results, events: int, outage_s: float, drain_s: float
) -> None:
    """Phase *outage*: ``lost`` and ``duplicated`` (module documentation)."""
    phase = results.outage
    devices = device_ids("out", events)
    messages = bench.events(devices)
    rate = events / outage_s
    progress(
        f"outage: the receiver down (503) for {outage_s:g}s, {events:,} events at {rate:g}/s, "
        f"the alerts process killed at {outage_s / 2:g}s"
    )
    with LocalReceiver([bench.secret]) as receiver:
        process = bench.alerts_process("outage", receiver)
        with running(process, phase), bench.publisher("outage") as load:
            receiver.script([Reply(503)] * OUTAGE_REPLIES)
            began = time.monotonic()
            began_wall = time.time()
            publishing = load.start(messages, rate=rate)
            next_line = began + PROGRESS_S
            while (now := time.monotonic()) < began + outage_s:
                if results.killed_at_s is None and now >= began + outage_s / 2:
                    process.kill()
                    results.killed_at_s = now - began
                    results.pending_at_kill = pending_notifications(bench.state_db("outage"))
                    process.start()
                    results.restart_s = time.monotonic() - now
                    progress(
                        f"outage: t={results.killed_at_s:.1f}s killed (SIGKILL) with "
                        f"{results.pending_at_kill:,} notifications pending, ready again "
                        f"{results.restart_s:.2f}s later"
                    )
                if now >= next_line:
                    next_line += PROGRESS_S
                    progress(
                        f"outage: t={now - began:4.1f}s, {len(receiver.requests):,} requests "
                        "refused (503)"
                    )
                time.sleep(0.05)
            receiver.unscript()
            up = time.time()
            progress("outage: the receiver answers 200 again")
            report = publishing.result(DELIVERY_TIMEOUT_S)
            if report.failed:
                raise BenchError(f"{report.failed} of {report.messages} events not acknowledged")
            phase.events = events
            delivery = wait_delivered(receiver, devices, drain_s)
            if not delivery.lost:
                results.drained_s = max(delivery.first_accepted.values()) - up
                time.sleep(SETTLE_S)  # what would come twice
            delivery = tally(devices, receiver.requests)
    phase.take(delivery)
    phase.wall_s = max(delivery.first_accepted.values(), default=time.time()) - began_wall
    results.lost = len(delivery.lost)
    results.duplicated = delivery.duplicated
    results.unexpected = delivery.unexpected
    progress(
        f"outage: {phase.delivered:,} of {events:,} alerts accepted, lost {results.lost}"
        f"{' (' + ', '.join(delivery.lost[:5]) + ')' if delivery.lost else ''}, "
        f"duplicated {results.duplicated}"
    )


def run(results: Results, args: argparse.Namespace) -> None:
    """Start the broker and run the phases, filling in ``results``."""
    with tempfile.TemporaryDirectory(prefix="vibewatch-bench-alerts-") as tmp:
        workdir = Path(tmp)
        with LocalMosquitto(workdir=workdir / "mosquitto") as broker:
            progress(f"mosquitto on 127.0.0.1:{broker.port}")
            bench = Bench(broker, workdir, group_interval_s=args.group_interval)
            measure_throughput(bench, results, args.events)
            measure_latency(bench, results, args.latency_events, args.latency_rate)
            measure_outage(bench, results, args.outage_events, args.outage, args.drain)


# --- output -----------------------------------------------------------------------------------


def _phase_line(phase: Phase) -> str:
    return (
        f"{phase.events:,} events, {phase.notifications:,} notifications, "
        f"{phase.requests:,} requests ({phase.refused:,} refused, {phase.unverified:,} "
        f"unverified, {phase.redelivered:,} redelivered), {phase.wall_s:.1f}s"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f} ms"


def table(results: Results) -> str:
    """Render the results as a plain-text table."""
    delays = results.delivery_ms
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in results.cpu_percent.items())
    rss = results.alerts_peak_rss_mb
    killed = (
        "-"
        if results.killed_at_s is None or results.restart_s is None
        else f"at {results.killed_at_s:.1f}s with {results.pending_at_kill:,} notifications "
        f"pending, ready again {results.restart_s:.2f}s later"
    )
    rows: list[tuple[str, str]] = [
        (
            "grouping",
            f'off: group_by "...", group_wait 0, group_interval {results.group_interval_s:g}s',
        ),
        ("throughput", _phase_line(results.throughput)),
        ("  alerts_per_s", f"{results.alerts_per_s:,.0f}"),
        ("  CPU, % of one core", cpu or "-"),
        ("latency", f"{_phase_line(results.latency)}; {results.latency_rate:g} events/s"),
        (
            "  delivery time",
            f"p50 {_ms(percentile(delays, 0.5))}, p99 {_ms(results.p99_delivery_ms)}, "
            f"max {_ms(max(delays) if delays else None)}",
        ),
        ("outage", f"{_phase_line(results.outage)}; receiver down {results.outage_s:g}s"),
        ("  alerts process killed", killed),
        (
            "  all accepted",
            "-" if results.drained_s is None else f"{results.drained_s:.1f}s after the outage",
        ),
        (
            "  lost / duplicated",
            f"{'-' if results.lost is None else results.lost} / "
            f"{'-' if results.duplicated is None else results.duplicated}"
            f" ({results.unexpected} unexpected alerts)",
        ),
        ("alerts peak RSS", f"{rss:.1f} MiB" if rss else "-"),
        ("wall seconds", f"{results.wall_seconds:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    for name, met, detail in results.bars():
        lines.append(f"{'ok  ' if met else 'MISS'}  {name:<24} {detail}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events",
        type=int,
        default=EVENTS,
        help=f"events of the throughput phase (default {EVENTS:,})",
    )
    parser.add_argument(
        "--latency-events",
        type=int,
        default=LATENCY_EVENTS,
        help=f"events of the latency phase (default {LATENCY_EVENTS:,})",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=LATENCY_RATE,
        help=f"events a second of the latency phase (default {LATENCY_RATE:g})",
    )
    parser.add_argument(
        "--outage-events",
        type=int,
        default=OUTAGE_EVENTS,
        help=f"events of the outage phase (default {OUTAGE_EVENTS:,})",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=OUTAGE_S,
        help=f"seconds the receiver is down (default {OUTAGE_S:g})",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=DRAIN_S,
        help=f"seconds to wait for every alert after the outage (default {DRAIN_S:g})",
    )
    parser.add_argument(
        "--group-interval",
        type=float,
        default=GROUP_INTERVAL_S,
        help=f"[alerts] group_interval of the runs, seconds (default {GROUP_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the table on stderr)"
    )
    args = parser.parse_args(argv)
    for name in ("events", "latency_events", "outage_events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("latency_rate", "outage", "drain", "group_interval"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    results = Results(
        latency_rate=args.latency_rate, outage_s=args.outage, group_interval_s=args.group_interval
    )
    began = time.monotonic()
    try:
        run(results, args)
    except KeyboardInterrupt:
        progress("interrupted; servers and processes stopped")
        return 130
    except BenchError as exc:
        progress(f"stopped: {exc}")
    results.wall_seconds = time.monotonic() - began
    progress(f"done in {results.wall_seconds:.1f}s")
    return finish(table(results), results.as_json(), results.bars(), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
