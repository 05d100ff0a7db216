"""``vibewatch demo``: the whole system on embedded defaults, as one story.

The servers: a broker and a database (Mosquitto and InfluxDB started from the system with
temporary data on free loopback ports, unless the configuration points at running ones),
``vibewatch serve`` as a process of its own, and a simulated fleet whose devices run the
firmware's C device layer. Then the chapters, in the order they happen:

1. **Baselines.** When the fleet has connected, the demo sends every device the
   ``calibrate`` command through the broker (:func:`~vibewatch.ota.commands.send_commands`,
   as ``vibewatch devices calibrate`` does): each learns its own threshold from its first
   :data:`CALIBRATE_WINDOWS` windows, before the faults appear, by the training job's
   tail rule and within its model's ceiling.
2. **Detection.** A few devices develop bearing faults; the report says which faults the
   back end stored anomaly events of, when, and which healthy devices raised false alarms,
   and whether every telemetry reading the devices published reached InfluxDB.
3. **Alerts.** ``serve``'s one webhook receiver is the demo's own, a real HTTP server on
   loopback (:class:`~vibewatch.testing.webhooks.LocalReceiver`) that knows the Standard
   Webhooks secret made for the run. The alerts service of ``serve`` makes
   ``DeviceAnomaly`` alerts of the devices' anomaly events and sends them grouped and
   signed; the receiver verifies each signature.
4. **Retraining.** When the detection span is over, ``vibewatch train`` runs as a process
   of its own on the feature vectors the fleet published to InfluxDB: the devices with no
   anomaly event are the healthy data, the vectors inside the others' anomaly events the
   faulty sets on which the quality gate compares the candidate with the champion (the
   factory model, registered signed with the demo's own key, which the devices trust).
5. **Rollout.** If the gate promoted the new model, it goes to the whole fleet through the
   OTA controller of ``serve`` -- canary first, then waves -- while the fleet runs on; the
   story says whether every device converged on it.

The report is read from InfluxDB, the webhook receiver and the rollout store, not from the
simulator: the back end's view. :mod:`vibewatch.demo.report` draws it as an HTML page.
Nothing is left running unless the caller keeps the stack up (``keep``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vibewatch.alerts.signing import new_secret
from vibewatch.config import Config, load_config
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.vwm import decode_header
from vibewatch.influx import schema
from vibewatch.influx.query import InfluxQL, quote_identifier, quote_string
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.models.registry import Registry
from vibewatch.ota.commands import CommandResult, send_commands
from vibewatch.ota.rollout import Phase, RolloutPlan
from vibewatch.ota.store import RolloutStore
from vibewatch.protocol import CommandName, CommandOutcome
from vibewatch.sim.fleet import SimClock
from vibewatch.sim.run import Progress, Simulation
from vibewatch.sim.scenario import FaultPlan, Scenario
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess, wait_for
from vibewatch.testing.models import factory_version
from vibewatch.testing.servers import local_servers
from vibewatch.testing.webhooks import LocalReceiver, Received
from vibewatch.train.factory import FACTORY_VERSION
from vibewatch.train.influx_source import iso_ms

__all__ = ["BEARING_FAULTS", "DemoPlan", "DemoReport", "DetectedFault", "TimelinePoint", "run_demo"]

log = logging.getLogger(__name__)

#: The faults chapter one injects, one device each.
BEARING_FAULTS: Final = ("outer_race", "inner_race", "ball")

#: Device ids of the demo's fleet start with this, so its points are told apart from
#: those of a real fleet on configured servers.
ID_PREFIX: Final = "demo-"


#: Chapter four, retraining: the devices publish a feature vector every so many windows
#: (often, so that a short run collects enough), and the longest (real seconds) the
#: training may take.
FEATURES_EVERY: Final = 2
TRAIN_LIMIT_S: Final = 240.0

#: Chapter five, the rollout: its canaries and waves, how long (real seconds) it may take,
#: and the devices' trial of a new model (simulated ms).
ROLLOUT_CANARY: Final = 2
ROLLOUT_WAVES: Final = (0.5, 1.0)
ROLLOUT_LIMIT_S: Final = 120.0
TRIAL_MS: Final = 60_000

#: The settings ``serve`` runs with in the demo: batches leave quickly, and the broker
#: forgets the demo's session soon after it ends.
SERVE_SETTINGS: Final[Mapping[str, str]] = {
    "VIBEWATCH_MQTT_CLIENT_ID": "vibewatch-demo",
    "VIBEWATCH_MQTT_SESSION_EXPIRY": "60",
    "VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.2",
    "VIBEWATCH_INGEST_STATS_INTERVAL": "5",
}

#: Chapter three, alerts: the name of the demo's receiver in ``serve``, the alerts schedule
#: (seconds a new group of alerts waits before it is sent, and between two looks at a
#: group), and how long (real seconds) the demo waits at its end for the faults' alerts.
ALERT_RECEIVER: Final = "demo"
ALERT_GROUP_WAIT_S: Final = 3.0
ALERT_GROUP_INTERVAL_S: Final = 5.0
ALERTS_LIMIT_S: Final = 20.0
#: The alert a device's anomaly events raise, and its label that names the device.
ANOMALY_ALERT: Final = "DeviceAnomaly"

#: Chapter one, baselines: the windows over which each device learns its own baseline
#: (simulated seconds, one window each), before the faults appear; and how long (real
#: seconds) after them the demo waits for the devices' replies at most.
CALIBRATE_WINDOWS: Final = 40
CALIBRATE_LIMIT_S: Final = 30.0


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs.

    Attributes:
        devices: Devices in the fleet.
        faulty: Devices that develop a bearing fault (at most one per kind in
            :data:`BEARING_FAULTS`, then the kinds again).
        duration_s: Simulated seconds.
        speedup: Simulated seconds per real second.
        onset_s: Simulated second at which the faults appear.
        growth_s: Seconds over which they grow to full severity.
        seed: Seed of the machines and of which devices become faulty.
    """

    devices: int = 50
    faulty: int = 3
    duration_s: float = 300.0
    speedup: float = 20.0
    onset_s: float = 60.0
    growth_s: float = 120.0
    seed: int = 0

    def problems(self) -> list[str]:
        """What is wrong with the plan (empty when it can run)."""
        out = []
        if self.devices < 1:
            out.append(f"devices must be >= 1, not {self.devices}")
        if not 0 <= self.faulty <= self.devices:
            out.append(f"faulty must be between 0 and devices ({self.devices}), not {self.faulty}")
        if not self.duration_s > 0:
            out.append(f"duration must be > 0 simulated seconds, not {self.duration_s:g}")
        if not self.speedup > 0:
            out.append(f"speedup must be > 0, not {self.speedup:g}")
        if not CALIBRATE_WINDOWS <= self.onset_s < self.duration_s:
            out.append(
                f"onset must be in [{CALIBRATE_WINDOWS}, duration = {self.duration_s:g}) s "
                f"(the devices learn their baseline over their first {CALIBRATE_WINDOWS} "
                f"windows), not {self.onset_s:g}"
            )
        if self.growth_s < 0:
            out.append(f"growth must be >= 0 s, not {self.growth_s:g}")
        return out

    def scenario(self) -> Scenario:
        """The simulator's scenario: the fleet, and the faults on devices the seed picks."""
        base = Scenario(
            devices=self.devices,
            id_prefix=ID_PREFIX,
            seed=self.seed,
            speedup=self.speedup,
            duration_s=self.duration_s,
        )
        chosen = sorted(random.Random(self.seed).sample(base.device_ids(), self.faulty))
        faults = tuple(
            FaultPlan(
                kind=BEARING_FAULTS[index % len(BEARING_FAULTS)],
                devices=(device_id,),
                onset_s=self.onset_s,
                growth_s=self.growth_s,
                severity=1.0,
            )
            for index, device_id in enumerate(chosen)
        )
        return dataclasses.replace(base, faults=faults)


@dataclass(frozen=True)
class DetectedFault:
    """An injected fault and what the back end stored about it.

    Attributes:
        device: The device.
        kind: The fault.
        onset_s: Simulated second the fault appeared.
        detected_s: Simulated second of the device's first anomaly event in InfluxDB
            (``None``: not detected).
        alerted: The device's ``DeviceAnomaly`` alert arrived at the demo's webhook
            receiver in a notification whose signature verified.
    """

    device: str
    kind: str
    onset_s: float
    detected_s: float | None
    alerted: bool = False


@dataclass(frozen=True)
class DemoReport:
    """How the story ended (``vibewatch demo --json`` prints it).

    Attributes:
        devices: Devices in the fleet.
        simulated_s: Simulated seconds run.
        seconds: Real seconds the fleet ran.
        servers: ``local`` (started by the demo) or ``configured``.
        faults_injected: Faults injected.
        faults: Every injected fault, with its detection.
        faults_detected: Injected faults with an anomaly event after their onset.
        false_alarm_devices: Healthy devices with an anomaly event.
        events: Anomaly events stored (starts).
        windows: Windows the devices scored.
        readings_published: Telemetry readings the devices' messages carried.
        readings_stored: Telemetry readings in InfluxDB.
        lost: Readings published but not stored.
        training: Chapter four: ``healthy_devices`` and ``faulty_devices`` (how many were
            trained and evaluated on), ``seconds``, and the ``vibewatch train --json``
            summary (``version``, ``status``, ``threshold``, ``auc``, ``gate`` ...), or
            ``error`` when it did not run through.
        model_promoted: The gate promoted the retrained model to champion.
        rollout: Chapter five: ``id``, ``version``, ``phase``, ``reason``, ``counts``
            (devices in each state), ``seconds`` (real seconds from its start to its end).
        rollout_converged: Every device confirmed the new version.
        webhooks_received: Chapter three: notifications (requests, retries included) the
            demo's webhook receiver got.
        webhooks_verified: Those whose signature verified with the run's secret.
        alerted_devices: Devices named in a ``DeviceAnomaly`` alert of a verified
            notification (faulty ones, and healthy ones that raised a false alarm).
        faults_alerted: Injected faults whose device's alert arrived so.
        model_threshold: The factory model's threshold.
        thresholds: Chapter one: each device's threshold after its calibration, by
            device (devices whose calibration did not answer done are missing).
        capped: Devices whose calibrated threshold the model's ceiling capped (a model
            without a ceiling lets a device lower its threshold, never raise it).
        false_alarms: Anomaly events of each device that raised a false alarm.
        report: Path of the HTML report (empty when none was written).
        ok: Nothing in :meth:`problems`: every fault detected and its alert arrived
            verified, no false alarm, nothing lost, the retrained model promoted and
            converged on, every webhook verified, every device calibrated.
    """

    devices: int
    simulated_s: float
    seconds: float
    servers: str
    faults_injected: int
    faults: list[DetectedFault]
    faults_detected: int
    false_alarm_devices: list[str]
    events: int
    windows: int
    readings_published: int
    readings_stored: int
    lost: int
    training: dict[str, Any]
    model_promoted: bool
    rollout: dict[str, Any]
    rollout_converged: bool
    webhooks_received: int
    webhooks_verified: int
    alerted_devices: list[str]
    faults_alerted: int
    model_threshold: float
    thresholds: dict[str, float]
    capped: list[str]
    false_alarms: dict[str, int]
    report: str = ""
    ok: bool = False

    def problems(self) -> list[str]:
        """What went wrong (empty: the story ended well), from the other fields."""
        out = []
        faults = self.faults_injected
        if self.faults_detected < faults:
            out.append(f"{faults - self.faults_detected} of {faults} faults not detected")
        if self.false_alarm_devices:
            out.append(f"false alarms on {len(self.false_alarm_devices)} healthy devices")
        if self.lost:
            out.append(f"{self.lost} readings lost")
        if not self.model_promoted:
            out.append("the retrained model was not promoted")
        elif not self.rollout_converged:
            out.append("the rollout did not converge")
        if self.faults_alerted < faults:
            out.append(f"{faults - self.faults_alerted} of {faults} faults' alerts did not arrive")
        if self.webhooks_verified < self.webhooks_received:
            unverified = self.webhooks_received - self.webhooks_verified
            out.append(f"{unverified} of {self.webhooks_received} webhooks did not verify")
        if len(self.thresholds) < self.devices:
            missing = self.devices - len(self.thresholds)
            out.append(f"{missing} of {self.devices} devices did not calibrate")
        return out

    def summary(self) -> list[tuple[str, str]]:
        """The summary table: ``(what, value)`` rows of the figures a reader looks at first."""
        alarms = ", ".join(self.false_alarm_devices) or "none"
        rows = [
            ("devices", str(self.devices)),
            ("faults injected", str(self.faults_injected)),
            ("faults detected", str(self.faults_detected)),
            ("faults alerted", str(self.faults_alerted)),
            ("false alarm devices", alarms),
            ("readings lost", f"{self.lost} of {self.readings_published}"),
            ("webhooks received", str(self.webhooks_received)),
            ("webhooks verified", str(self.webhooks_verified)),
            ("model promoted", "yes" if self.model_promoted else "no"),
            ("rollout converged", "yes" if self.rollout_converged else "no"),
        ]
        return rows + ([("report", self.report)] if self.report else [])

    def lines(self) -> list[str]:
        """The report as text, one line each: the story, the summary table, what went wrong."""
        width = max(len(what) for what, _ in self.summary())
        out = [*self.story(), ""] + [f"{what:<{width}}  {value}" for what, value in self.summary()]
        problems = self.problems()
        if problems:
            out.append("NOT ok: " + "; ".join(problems))
        return out

    def story(self) -> list[str]:
        """What happened, chapter by chapter, one line each."""
        out = [
            f"{self.devices} devices, {self.simulated_s:.0f} simulated s in {self.seconds:.0f} s "
            f"({self.servers} servers): {self.windows} windows scored on the devices",
            f"baselines: {len(self.thresholds)} of {self.devices} devices calibrated over "
            f"{CALIBRATE_WINDOWS} windows (the model's threshold {self.model_threshold:.3g}); "
            f"{len(self.capped)} capped at its ceiling",
            f"faults injected {self.faults_injected}, detected {self.faults_detected}:",
        ]
        for fault in self.faults:
            when = (
                f"detected at {fault.detected_s:.0f} s, {fault.detected_s - fault.onset_s:.0f} s "
                "after its onset"
                if fault.detected_s is not None
                else "NOT detected"
            )
            alert = "alert arrived" if fault.alerted else "NO alert"
            out.append(
                f"  {fault.device}  {fault.kind:<10}  onset {fault.onset_s:.0f} s, {when}; {alert}"
            )
        alarms = ", ".join(
            f"{device} ({self.false_alarms.get(device, 0)})" for device in self.false_alarm_devices
        )
        out.append(f"false alarms on healthy devices: {alarms or 'none'}")
        out.append(
            f"telemetry: {self.readings_published} readings published, {self.readings_stored} "
            f"in InfluxDB, {self.lost} lost; {self.events} anomaly events stored"
        )
        devices = ", ".join(self.alerted_devices) or "no device"
        out.append(
            f"webhooks: {self.webhooks_received} received by the demo's receiver, "
            f"{self.webhooks_verified} verified; {ANOMALY_ALERT} alerts for {devices} "
            f"({self.faults_alerted} of {self.faults_injected} faults)"
        )
        out.append(_training_line(self.training))
        if self.model_promoted:
            counts = ", ".join(
                f"{n} {state}" for state, n in sorted(self.rollout["counts"].items())
            )
            reason = f" ({self.rollout['reason']})" if self.rollout["reason"] else ""
            out.append(
                f"rollout {self.rollout['id']} of version {self.rollout['version']}: "
                f"{self.rollout['phase']}{reason} in {self.rollout['seconds']:.0f} s; {counts}; "
                f"{'converged' if self.rollout_converged else 'NOT converged'}"
            )
        return out


def _training_line(training: Mapping[str, Any]) -> str:
    """Chapter four in one line."""
    if "error" in training:
        return f"retraining failed: {training['error']}"
    auc = ", ".join(f"{name} {value:.3f}" for name, value in training["auc"].items())
    return (
        f"retrained on {training['healthy_devices']} healthy devices' feature vectors in "
        f"{training['seconds']:.0f} s: version {training['version']}, threshold "
        f"{training['threshold']:.3g}, AUC on the faults {auc or 'not measured'}; "
        f"{'promoted' if training['status'] == 'champion' else 'NOT promoted'} by the gate"
    )


@contextlib.contextmanager
def _local_servers(workdir: Path, say: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """Mosquitto and InfluxDB in ``workdir``; yields the settings that point at them."""
    with local_servers(workdir) as (broker, influxdb):
        say(f"Mosquitto on {broker.host}:{broker.port}")
        say(f"InfluxDB on {influxdb.url}")
        yield {
            "VIBEWATCH_MQTT_HOST": broker.host,
            "VIBEWATCH_MQTT_PORT": str(broker.port),
            "VIBEWATCH_MQTT_USERNAME": "",
            "VIBEWATCH_MQTT_TLS_CA_FILE": "",
            "VIBEWATCH_INFLUX_API": "v1",
            "VIBEWATCH_INFLUX_URL": influxdb.url,
            "VIBEWATCH_INFLUX_USERNAME": "",
        }


@dataclass(frozen=True)
class _Stored:
    readings: dict[str, int]  # telemetry readings per device
    events_ms: dict[str, list[int]]  # the times of anomaly starts per device, wall ms


def _stored(config: Config, since_ms: int) -> _Stored:
    """What InfluxDB holds of the demo's devices since ``since_ms``."""
    client = InfluxQL.from_config(config.influx)
    device = quote_identifier(schema.DEVICE)
    where = f"time >= {since_ms}ms AND {device} =~ /^{ID_PREFIX}/"
    starts = f"{where} AND {quote_identifier(schema.KIND)} = {quote_string('start')}"
    reading, anomaly = quote_identifier(schema.READING), quote_identifier(schema.ANOMALY)
    seq, score = quote_identifier(schema.SEQ), quote_identifier(schema.SCORE)
    # quoted names; the prefix and the time are the demo's own
    statements = (
        f"SELECT count({seq}) AS readings FROM {reading} WHERE {where} GROUP BY {device}; "  # noqa: S608
        f"SELECT {score} FROM {anomaly} WHERE {starts} GROUP BY {device}"
    )
    stored = _Stored({}, {})
    for series in client.query(statements):
        name = series.tags[schema.DEVICE]
        if series.columns[1] == "readings":
            stored.readings[name] = int(series.values[0][1])
        else:
            stored.events_ms[name] = sorted(int(row[0]) for row in series.values)
    return stored


@dataclass(frozen=True)
class TimelinePoint:
    """The rollout as the demo saw it at one moment (the report's rollout timeline).

    Attributes:
        seconds: Real seconds since the rollout started.
        wave: The wave that started last.
        counts: Devices in each state.
    """

    seconds: float
    wave: int
    counts: dict[str, int]


class _ModelChapters:
    """Chapters four and five: a model trained on what the fleet published, then rolled
    out to the fleet through the controller of ``serve``."""

    def __init__(
        self, config: Config, environ: Mapping[str, str], workdir: Path, plan: DemoPlan
    ) -> None:
        """Make the demo's signing key (the devices trust its public half) and register the
        factory model, signed with it, as the champion the new model must not fall behind."""
        train = config.train
        generate_keypair(train.signing_key, train.verify_key)
        key = load_private_key(train.signing_key)
        self.public_key = key.public_key()
        factory_version(workdir / "factory", key, FACTORY_VERSION)
        with Registry(train.registry_dir, config.state_db, self.public_key) as registry:
            entry = registry.register(workdir / "factory")
            registry.promote(entry.model_id, entry.version, "the model the devices ship with")
        self.model_id = entry.model_id
        self.training: dict[str, Any] = {"error": "did not start"}
        self.timeline: list[TimelinePoint] = []
        #: When each device reported the new model active (``time.time()``).
        self.activated: dict[str, float] = {}
        self._config, self._environ, self._workdir, self._plan = config, environ, workdir, plan
        self._devices = plan.scenario().device_ids()
        self._trainer: subprocess.Popen[bytes] | None = None
        self._db: sqlite3.Connection | None = None
        self._rollout_id = ""
        self._version = 0
        self._began = self._ended = self._looked = 0.0

    def ended(self, say: Callable[[str], None], since_ms: int, clock: SimClock) -> bool:
        """Take the next step; whether the chapters ended (or ran out of time)."""
        if self._trainer is None:
            self._start_training(say, since_ms, clock)
            return False
        if self._db is None:
            return self._training_ended(say)
        return self._rollout_ended()

    def _start_training(self, say: Callable[[str], None], since_ms: int, clock: SimClock) -> None:
        """``vibewatch train`` on the vectors of the span so far: every device without an
        anomaly event is healthy data, the others' anomalies the faulty sets."""
        end_ms = int(clock.wall_ms()) - 5_000  # what the devices sent last may be in flight
        anomalous = sorted(_stored(self._config, since_ms).events_ms)
        healthy = [device for device in self._devices if device not in anomalous]
        out = self._workdir / "train"
        command = [
            sys.executable, "-m", "vibewatch", "train", "--json", "--out", str(out),
            "--model-id", self.model_id, "--seed", str(self._plan.seed),
            "--start", iso_ms(since_ms), "--end", iso_ms(end_ms),
            *[arg for device in healthy for arg in ("--device", device)],
            *[arg for device in anomalous for arg in ("--faulty-device", device)],
        ]  # fmt: skip
        self.training = {
            "healthy_devices": len(healthy),
            "faulty_devices": len(anomalous),
            "seconds": 0.0,
            "error": "did not finish",
        }
        with (self._workdir / "train.log").open("wb") as log_file:
            self._trainer = subprocess.Popen(
                command, env=dict(self._environ), stdout=subprocess.PIPE, stderr=log_file
            )
        self._began = time.monotonic()
        say(
            f"chapter four: vibewatch train on the feature vectors of {len(healthy)} healthy "
            f"devices in InfluxDB; the gate judges it on the anomalies of {len(anomalous)}"
        )

    def _training_ended(self, say: Callable[[str], None]) -> bool:
        assert self._trainer is not None
        seconds = time.monotonic() - self._began
        if self._trainer.poll() is None:
            if seconds <= TRAIN_LIMIT_S:
                return False
            self._trainer.kill()
            self._trainer.wait()
            self.training["error"] = f"vibewatch train took more than {TRAIN_LIMIT_S:g} s"
            return True
        assert self._trainer.stdout is not None
        output = self._trainer.stdout.read()
        self.training["seconds"] = round(seconds, 1)
        if self._trainer.returncode != 0:
            tail = (self._workdir / "train.log").read_text(errors="replace").strip()
            self.training["error"] = f"vibewatch train exited {self._trainer.returncode}: " + (
                tail.splitlines()[-1] if tail else "no message"
            )
            return True
        del self.training["error"]
        summary = json.loads(output)
        for gone in ("package", "card"):  # in the run's temporary directory
            summary.pop(gone, None)
        self.training.update(summary)
        if self.training["status"] != "champion":
            say(f"version {self.training['version']} NOT promoted: the gate refused it")
            return True
        self._version = int(self.training["version"])
        say(
            f"version {self._version} promoted by the gate in {seconds:.0f} s "
            f"(threshold {self.training['threshold']:.3g})"
        )
        self._db = open_state_db(self._config.state_db)
        plan = RolloutPlan(
            self.model_id,
            self._version,
            tuple(self._devices),
            canary=ROLLOUT_CANARY,
            waves=ROLLOUT_WAVES,
            timeout_s=ROLLOUT_LIMIT_S,
        )
        self._rollout_id = RolloutStore(self._db).create(plan).rollout_id
        self._began = time.monotonic()
        sizes = " + ".join(str(len(w)) for w in plan.wave_members())
        say(f"chapter five: {self._rollout_id}, version {self._version} in waves of {sizes}")
        return False

    def _rollout_ended(self) -> bool:
        assert self._db is not None
        now = time.monotonic()
        if now - self._looked < 0.5:
            return False
        self._looked = now
        rollout = RolloutStore(self._db).load(self._rollout_id)
        self.timeline.append(
            TimelinePoint(round(now - self._began, 2), rollout.wave, rollout.counts())
        )
        if rollout.phase in (Phase.COMPLETED, Phase.ABORTED) or now - self._began > ROLLOUT_LIMIT_S:
            self._ended = now
            return True
        return False

    def promoted(self) -> bool:
        """Whether the gate promoted the retrained model."""
        return self.training.get("status") == "champion"

    def result(self) -> tuple[dict[str, Any], bool]:
        """The rollout as the store has it, and whether it converged."""
        if self._trainer is not None and self._trainer.poll() is None:  # stopped early
            self._trainer.kill()
            self._trainer.wait()
        if self._db is None:
            shown = {"id": "", "version": 0, "phase": "not started", "reason": "", "counts": {}}
            return {**shown, "seconds": 0}, False
        rollout = RolloutStore(self._db).load(self._rollout_id)
        self._db.close()
        self.activated = {
            device: progress.activated_s
            for device, progress in rollout.devices.items()
            if progress.activated_s is not None
        }
        seconds = round((self._ended or time.monotonic()) - self._began, 1)
        shown = {
            "id": rollout.rollout_id,
            "version": self._version,
            "phase": rollout.phase.value,
            "reason": rollout.reason,
            "counts": rollout.counts(),
            "seconds": seconds,
        }
        return shown, rollout.converged


class _AlertsChapter:
    """Chapter three: the demo's webhook receiver, ``serve``'s only one, with a secret of
    the run's own (listening from construction to :meth:`close`)."""

    def __init__(self) -> None:
        secret = new_secret()
        self.receiver = LocalReceiver([secret])
        table = {ALERT_RECEIVER: {"url": self.receiver.url, "secrets": [secret], "timeout": 5}}
        #: The settings that make ``serve`` notify the receiver, soon: they replace the
        #: configured receivers, and an Alertmanager the configuration names.
        self.settings: dict[str, str] = {
            "VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table),
            "VIBEWATCH_ALERTS_ALERTMANAGER_URL": "",
            "VIBEWATCH_ALERTS_GROUP_WAIT": f"{ALERT_GROUP_WAIT_S:g}",
            "VIBEWATCH_ALERTS_GROUP_INTERVAL": f"{ALERT_GROUP_INTERVAL_S:g}",
        }

    def requests(self) -> list[Received]:
        """The requests the receiver got so far."""
        return list(self.receiver.requests)

    def alerted(self) -> set[str]:
        """The devices named in a ``DeviceAnomaly`` alert of a verified notification."""
        out: set[str] = set()
        for request in self.requests():
            if request.verified:
                out |= {device for device, _ in anomaly_alerts(request.body)}
        return out

    def close(self) -> None:
        """Stop listening."""
        self.receiver.close()


def anomaly_alerts(body: bytes) -> list[tuple[str, str]]:
    """``(device label, startsAt)`` of each ``DeviceAnomaly`` alert in a webhook body (the
    Alertmanager version 4 body; firing and resolved alike; ``startsAt`` as sent, empty
    when missing)."""
    try:
        alerts = json.loads(body).get("alerts")
    except (ValueError, AttributeError):  # not JSON, or not an object
        return []
    out = []
    for alert in alerts if isinstance(alerts, list) else []:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        if isinstance(labels, dict) and labels.get("alertname") == ANOMALY_ALERT:
            device = labels.get("device")
            if isinstance(device, str):
                out.append((device, str(alert.get("startsAt", ""))))
    return out


def run_demo(
    plan: DemoPlan,
    *,
    config_path: Path | None = None,
    servers: Mapping[str, str] | None = None,
    report_dir: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
    on_progress: Callable[[Progress], None] = lambda _: None,
    stop: threading.Event | None = None,
    keep: Callable[[Mapping[str, str], int], None] | None = None,
) -> DemoReport:
    """Run the chapters (see the module documentation) and report what the back end stored.

    Args:
        plan: What to run.
        config_path: Configuration file of ``serve`` and the fleet (``None``: defaults and
            the environment).
        servers: ``VIBEWATCH_*`` settings naming running servers; ``None`` starts local
            ones with temporary data.
        report_dir: Where the HTML report and its plots go (``None``: no report).
        say: Receives a line for each step (servers up, the webhook receiver, serve
            ready, fleet connected, training, rollout started).
        on_progress: Receives the fleet's progress every second.
        stop: Ends the run early (Ctrl-C); the report covers what ran.
        keep: Called at the end, before anything stops, with the ``VIBEWATCH_*``
            settings that point at the stack and the first millisecond of the fleet's
            points; everything stops when it returns.

    Raises:
        LocalServerError: A local server or ``serve`` could not start.
        MqttError: The broker refused the fleet.
        QueryError: InfluxDB could not be queried.
    """
    from vibewatch.demo.report import collect, write_report  # matplotlib: only when needed

    stop = stop if stop is not None else threading.Event()
    scenario = plan.scenario()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vibewatch-demo-")))
        if servers is None:
            servers = stack.enter_context(_local_servers(workdir, say))
            where = "local"
        else:
            where = "configured"
        alerts = _AlertsChapter()
        stack.callback(alerts.close)
        say(f"webhook receiver on {alerts.receiver.url}")
        settings = {
            **servers,
            **SERVE_SETTINGS,
            **alerts.settings,
            "VIBEWATCH_DATA_HOME": str(workdir / "home"),
        }
        environ = {**os.environ, **settings}
        if config_path is not None:
            environ["VIBEWATCH_CONFIG"] = str(config_path)
        config = load_config(config_path, environ)
        chapters = _ModelChapters(config, environ, workdir, plan)
        serve = ServiceProcess(environ, workdir, command="serve", ready_timeout=60)
        stack.callback(serve.close)
        serve.start()
        say(f"vibewatch serve ready (pid {serve.pid}), ingesting into {config.influx.url}")
        # the simulated clocks end in the past, however long training and rollout take
        span_s = plan.duration_s + (TRAIN_LIMIT_S + ROLLOUT_LIMIT_S) * plan.speedup
        since_ms = int(time.time() * 1000 - span_s * 1000)
        clock = SimClock(plan.speedup, start_wall_ms=since_ms)
        started = time.time()
        factory = FACTORY_MODEL.read_bytes()
        simulation = Simulation.from_config(
            dataclasses.replace(scenario, duration_s=0.0),  # the chapters say when it ends
            factory,
            chapters.public_key,
            config.mqtt,
            clock=clock,
            settings=DeviceSettings(
                trial_ms=TRIAL_MS,
                calibrate_windows=CALIBRATE_WINDOWS,
                features_every=FEATURES_EVERY,
            ),
        )

        def done() -> bool:
            if stop.is_set():
                return True
            return clock.now_s() >= plan.duration_s and chapters.ended(say, since_ms, clock)

        calibrations: list[CommandResult] = []
        wait_s = CALIBRATE_WINDOWS / plan.speedup + CALIBRATE_LIMIT_S
        calibrate = threading.Thread(
            target=lambda: calibrations.extend(
                send_commands(config, scenario.device_ids(), CommandName.CALIBRATE, wait_s=wait_s)
            ),
            name="vibewatch-demo-calibrate",
            daemon=True,
        )
        try:
            simulation.start()
            say(f"{plan.devices} devices connected; {plan.faulty} develop bearing faults")
            calibrate.start()
            say(f"chapter one: every device learns its baseline over {CALIBRATE_WINDOWS} windows")
            simulation.run(done, on_progress)
        finally:
            simulation.close()
            if calibrate.is_alive():
                calibrate.join(wait_s)
        summary = simulation.summary()  # every PUBACK in
        rollout, converged = chapters.result()

        def all_stored() -> bool:
            return sum(_stored(config, since_ms).readings.values()) >= summary.readings_published

        with contextlib.suppress(TimeoutError):  # what is missing then is reported as lost
            wait_for(all_stored, 30, "the readings in InfluxDB")
        faulty = scenario.faulty_devices()
        expected = {device_id for device_id, plans in faulty.items() if plans}

        def all_alerted() -> bool:  # a fault alerted after this is reported as missing
            return stop.is_set() or expected <= alerts.alerted()

        with contextlib.suppress(TimeoutError):
            wait_for(all_alerted, ALERTS_LIMIT_S, "the faults' alerts")
        stored = _stored(config, since_ms)
        requests, alerted = alerts.requests(), alerts.alerted()
        report = _report(
            plan, summary, where, stored, since_ms, calibrations, chapters, rollout, converged,
            requests, alerted,
        )  # fmt: skip
        if report_dir is not None:
            installed = {  # the simulated second each device reported the new model active
                device: (at - started) * plan.speedup for device, at in chapters.activated.items()
            }
            data = collect(config, report, since_ms, requests, chapters.timeline, installed)
            page = write_report(report_dir, report, data)
            report = dataclasses.replace(report, report=str(page))
            say(f"report written: {page}")
        if keep is not None:
            keep(settings, since_ms)
        if serve.stop() != 0:
            log.warning("vibewatch serve did not stop clean:\n%s", serve.log_tail())
    return report


def _report(
    plan: DemoPlan,
    summary: Any,
    where: str,
    stored: _Stored,
    since_ms: int,
    calibrations: list[CommandResult],
    chapters: _ModelChapters,
    rollout: dict[str, Any],
    converged: bool,
    requests: list[Received],
    alerted: set[str],
) -> DemoReport:
    """The report of a run from what the back end stored and the chapters saw."""
    faulty = plan.scenario().faulty_devices()
    injected = [
        DetectedFault(
            device=device_id,
            kind=fault.kind,
            onset_s=fault.onset_s,
            detected_s=_detected_s(stored, device_id, since_ms, fault.onset_s),
            alerted=device_id in alerted,
        )
        for device_id, plans in sorted(faulty.items())
        for fault in plans
    ]
    onsets = {device_id: min(f.onset_s for f in plans) for device_id, plans in faulty.items()}
    alarms = sorted(  # events on healthy devices, and on faulty ones before the fault
        device_id
        for device_id, times in stored.events_ms.items()
        if (times[0] - since_ms) / 1000 < onsets.get(device_id, math.inf)
    )
    readings = sum(stored.readings.values())
    report = DemoReport(
        devices=summary.devices,
        simulated_s=summary.simulated_s,
        seconds=summary.seconds,
        servers=where,
        faults_injected=len(injected),
        faults=injected,
        faults_detected=sum(fault.detected_s is not None for fault in injected),
        false_alarm_devices=alarms,
        events=sum(map(len, stored.events_ms.values())),
        windows=summary.windows,
        readings_published=summary.readings_published,
        readings_stored=readings,
        lost=max(0, summary.readings_published - readings),
        training=chapters.training,
        model_promoted=chapters.promoted(),
        rollout=rollout,
        rollout_converged=converged,
        webhooks_received=len(requests),
        webhooks_verified=sum(request.verified for request in requests),
        alerted_devices=sorted(alerted),
        faults_alerted=sum(fault.alerted for fault in injected),
        model_threshold=decode_header(FACTORY_MODEL.read_bytes()).threshold,
        thresholds={
            r.device: r.reply.threshold
            for r in calibrations
            if r.reply is not None
            and r.reply.outcome is CommandOutcome.DONE
            and r.reply.threshold is not None
        },
        capped=sorted(
            r.device for r in calibrations if r.reply is not None and r.reply.detail == "ceiling"
        ),
        false_alarms={
            device_id: sum(
                (ms - since_ms) / 1000 < onsets.get(device_id, math.inf)
                for ms in stored.events_ms[device_id]
            )
            for device_id in alarms
        },
    )
    return dataclasses.replace(report, ok=not report.problems())


def _detected_s(stored: _Stored, device: str, since_ms: int, onset_s: float) -> float | None:
    """Simulated second of the device's first anomaly event at or after ``onset_s``."""
    after = [
        (ms - since_ms) / 1000
        for ms in stored.events_ms.get(device, [])
        if (ms - since_ms) / 1000 >= onset_s
    ]
    return round(after[0], 1) if after else None
