"""The soak: healthy and faulty simulated devices over many simulated days, at accelerated time.

Can the fleet trust its anomaly events? :func:`soak` runs simulated devices
(:class:`~vibewatch.sim.fleet.SimDevice`: the firmware's C device layer, every window of
them) for a simulated span far longer than real time allows, and counts

* the **false events**: anomaly events started on healthy machines, per 100 device-days of
  healthy running;
* the **report delay** of each fault: from its onset to the first anomaly event the device
  starts at or after it (a fault not reported within the simulated span is a miss).

What runs where::

    main process   plan ─► one task per device ─► ProcessPoolExecutor ─► figures
    each worker    SimDevice: next_block (one generate call, BLOCK_WINDOWS windows)
                     └─► feed, window after window: the C device layer (features, int8
                         engine, k-of-n anomaly state) publishes its events
                   baselines (when given): the same windows through the C DSP
                     (features_batch), scored CHUNK_WINDOWS at a time, each score through
                     the C anomaly state machine (vw_anomaly) at the baseline's threshold

**Healthy devices** each have a seed and a machine of their own
(:func:`~vibewatch.signals.varied_machine`, within :data:`~vibewatch.signals.MACHINE_SPREAD`
of the default, as the factory model's training machines are), run for ``days``: a new
operating point (shaft speed within :data:`~vibewatch.train.factory.SPEED_RANGE_HZ`, load
within :data:`~vibewatch.train.factory.LOAD_RANGE`, the factory model's trained range) every
5 to 60 simulated minutes, reached over 10 to 60 s, or over 2 to 10 minutes for one change in
four (run-ups and run-downs) (:func:`operation`). **Faulty devices** are the same, each with
one fault of a kind in ``fault_kinds`` at a steady ``severity`` from ``onset_s`` on (no
growth: the fault is at its moderate severity from the first faulty window, so the delay is
the detector's, not the fault's); a faulty device stops once every detector has reported its
fault (the chunk of windows in hand is finished) or ``fault_span_s`` after the onset. Its
windows before the onset count as healthy running, their events as false.

Speed: generating one window costs about 0.25 ms a call, most of it the call's fixed cost;
at 50 windows a call about 0.1 ms a window, and beyond that the cost per sample stays flat
(measured on the 2-core development machine from 8 to 1,024 windows a call), so blocks are
:data:`BLOCK_WINDOWS` long, the factory model's training segments'. The C device layer takes
about 0.02 ms a window. See :meth:`~vibewatch.sim.fleet.SimDevice.next_block` for why a block
is statistically the same as windows taken one period apart.

The devices' settings are the device layer's defaults for the anomaly state (``k``, ``n``,
``m``, ``release_ratio``); telemetry goes out in batches of 100 readings and no feature
vectors, which changes what is published, not what is detected.

    result = soak(SoakPlan(devices=50, days=2), blob, baselines={"pca": fitted_pca})
    result.figures["int8"].false_events_per_100_device_days

From the command line: ``python -m vibewatch.sim.soak --help``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
import numpy.typing as npt
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.cliutil import JsonOption, ProgressLine, exits, fail
from vibewatch.edge import features_batch
from vibewatch.edge.anomaly import AnomalyState
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import DataError
from vibewatch.signals import FAULT_KINDS, FaultKind, varied_machine
from vibewatch.sim.fleet import ManualClock, Operation, SimDevice
from vibewatch.sim.scenario import FaultPlan
from vibewatch.train.factory import LOAD_RANGE, SPEED_RANGE_HZ

__all__ = [
    "DEVICE",
    "DetectorFigures",
    "DeviceRun",
    "Scorer",
    "SoakPlan",
    "SoakResult",
    "device_seed",
    "fit_baselines",
    "operation",
    "run_device",
    "soak",
    "soak_command",
]

#: Windows per :func:`~vibewatch.signals.generate` call.
BLOCK_WINDOWS = 50
#: Windows whose features a baseline scores in one call (an isolation forest's call costs
#: about 10 ms however few rows it scores).
CHUNK_WINDOWS = 1800
#: The name of the device's own detector (the model it runs, int8) in the results.
DEVICE = "int8"
#: Seconds in a day.
DAY_S = 86_400.0


class Scorer(Protocol):
    """What a baseline is to the soak: anomaly scores of feature rows and a threshold (the
    :class:`~vibewatch.train.detectors.Detector` interface, fitted)."""

    threshold_: float

    def anomaly_score(self, rows: npt.ArrayLike, /) -> npt.NDArray[np.float32]:
        """Scores of feature rows, higher is more anomalous."""
        ...


# ---- the plan ----


def operation(rng: np.random.Generator, span_s: float) -> Operation:
    """A machine's operation over ``span_s`` simulated seconds within the factory model's
    trained range: a new operating point (speed and load drawn uniformly from
    :data:`SPEED_RANGE_HZ` and :data:`LOAD_RANGE`) every 5 to 60 minutes, reached over 10 to
    60 s, or over 2 to 10 minutes for one change in four (a run-up or run-down)."""
    times, speeds, loads = [0.0], [rng.uniform(*SPEED_RANGE_HZ)], [rng.uniform(*LOAD_RANGE)]
    t = 0.0
    while t < span_s:
        t += rng.uniform(300.0, 3600.0)
        ramp = rng.uniform(120.0, 600.0) if rng.random() < 0.25 else rng.uniform(10.0, 60.0)
        times += [t, t + ramp]
        speeds += [speeds[-1], rng.uniform(*SPEED_RANGE_HZ)]
        loads += [loads[-1], rng.uniform(*LOAD_RANGE)]
        t += ramp
    return Operation(tuple(times), tuple(speeds), tuple(loads))


@dataclass(frozen=True, kw_only=True)
class SoakPlan:
    """What a soak simulates.

    Attributes:
        devices: Healthy devices.
        days: Simulated days each healthy device runs.
        fault_devices: Devices per fault kind.
        fault_kinds: The kinds of fault.
        severity: Severity of every fault, steady from its onset.
        onset_s: Simulated seconds of healthy running before a fault appears.
        fault_span_s: Simulated seconds after the onset within which a fault must be
            reported; the device stops there.
        seed: Seed of machines, operation and signals.
        window_period_s: Simulated seconds between two windows of a device.
        settings: The device layer's settings (its defaults when None); telemetry batches
            and feature vectors are turned down (see the module documentation).
        threshold: A threshold each device is given by a ``set_threshold`` command before
            its first window, for experiments and tests; None (the soak's figures) runs the
            model's own.
    """

    devices: int = 50
    days: float = 2.0
    fault_devices: int = 3
    fault_kinds: tuple[FaultKind, ...] = FAULT_KINDS
    severity: float = 0.5
    onset_s: float = 1800.0
    fault_span_s: float = 7200.0
    seed: int = 0
    window_period_s: float = 1.0
    settings: DeviceSettings | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.devices < 0 or self.fault_devices < 0:
            problems.append("devices and fault_devices must be >= 0")
        if not self.days >= 0:
            problems.append(f"days {self.days} is not >= 0")
        if not 0 < self.severity <= 1:
            problems.append(f"severity {self.severity} is not in (0, 1]")
        if not (self.onset_s >= 0 and self.fault_span_s > 0 and self.window_period_s > 0):
            problems.append("onset_s must be >= 0, fault_span_s and window_period_s > 0")
        unknown = [kind for kind in self.fault_kinds if kind not in FAULT_KINDS]
        if unknown:
            problems.append(f"unknown fault kinds {unknown}")
        if problems:
            raise DataError("soak plan: " + "; ".join(problems))

    def device_settings(self) -> DeviceSettings:
        """The settings the devices run: the anomaly state as given, quiet telemetry."""
        return dataclasses.replace(
            self.settings or DeviceSettings(), batch_windows=100, batch_ms=0, features_every=0
        )

    def tasks(self) -> list[tuple[str, FaultKind | None]]:
        """Every device: its id and fault kind (None: healthy)."""
        out: list[tuple[str, FaultKind | None]] = [
            (f"soak-{i + 1:04d}", None) for i in range(self.devices)
        ]
        for kind in self.fault_kinds:
            out += [(f"soak-{kind}-{j + 1}", kind) for j in range(self.fault_devices)]
        return out


# ---- one device ----


@dataclass(frozen=True)
class DeviceRun:
    """What one device did in a soak.

    Attributes:
        device_id: Its id.
        fault: Its fault kind; None for a healthy device.
        onset_s: When its fault appeared (None when healthy).
        simulated_s: Simulated seconds it ran (its last window's time).
        windows: Windows it scored.
        starts_s: By detector (:data:`DEVICE`, then the baselines'), the simulated times of
            the windows that started an anomaly.
        seconds: Real seconds it took.
        cpu_seconds: CPU seconds its process spent on it (the measure of cost on a machine
            that other work shares).
        ends_s: By detector, the simulated times of the windows that ended an anomaly.
    """

    device_id: str
    fault: FaultKind | None
    onset_s: float | None
    simulated_s: float
    windows: int
    starts_s: dict[str, tuple[float, ...]]
    seconds: float
    cpu_seconds: float
    ends_s: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def healthy_s(self) -> float:
        """Simulated seconds of healthy running: all of it, or the time before the onset."""
        return self.simulated_s if self.onset_s is None else min(self.onset_s, self.simulated_s)

    def false_events(self, detector: str) -> int:
        """Anomalies ``detector`` started while the machine was healthy."""
        return sum(1 for t in self.starts_s[detector] if self.onset_s is None or t < self.onset_s)

    def open_at_onset(self, detector: str) -> bool:
        """Whether ``detector`` had an anomaly open when the fault appeared (a false event
        that had not ended): it starts no new one for the fault until that one ends."""
        if self.onset_s is None:
            return False
        onset = self.onset_s
        began = [t for t in self.starts_s[detector] if t < onset]
        ended = [t for t in self.ends_s.get(detector, ()) if t < onset]
        return bool(began) and (not ended or ended[-1] < began[-1])

    def report_delay_s(self, detector: str) -> float | None:
        """Seconds from the onset to ``detector``'s first anomaly at or after it (None when
        healthy; ``inf`` when it reported none)."""
        if self.onset_s is None:
            return None
        onset = self.onset_s
        after = [t - onset for t in self.starts_s[detector] if t >= onset]
        return after[0] if after else math.inf


def device_seed(seed: int, device_id: str) -> int:
    """A device's seed: from the plan's seed and the device's id, whatever else is run."""
    digest = int.from_bytes(device_id.encode(), "big") % (2**31 - 1)
    return (seed * 1_000_003 + digest) % 2**31


def run_device(
    plan: SoakPlan,
    blob: bytes,
    device_id: str,
    fault: FaultKind | None,
    baselines: Mapping[str, Scorer] | None = None,
) -> DeviceRun:
    """Run one device of a soak: every window through the C device layer and, for each
    baseline, through the C DSP, the baseline and the C anomaly state machine.

    Args:
        plan: The soak.
        blob: The model the device runs (its threshold is the device's).
        device_id: Its id (with ``plan.seed``, its seed).
        fault: Its fault kind, or None for a healthy device.
        baselines: Fitted baselines, by name.
    """
    began, cpu_began = time.perf_counter(), time.process_time()
    baselines = baselines or {}
    seed = device_seed(plan.seed, device_id)
    spec = decode_header(blob).spec
    clock = ManualClock()
    starts: dict[str, list[float]] = {DEVICE: [], **{name: [] for name in baselines}}

    ends: dict[str, list[float]] = {name: [] for name in starts}
    replies: list[bytes] = []

    def publish(suffix: str, payload: bytes) -> bool:
        if suffix == "event":
            kind = json.loads(payload).get("kind")
            (starts if kind == "start" else ends)[DEVICE].append(clock.now_s())
        elif suffix == "cmd/reply":
            replies.append(payload)
        return True

    faults: tuple[FaultPlan, ...] = ()
    onset: float | None = None
    if fault is None:
        span_s = plan.days * DAY_S
    else:
        span_s, onset = plan.onset_s + plan.fault_span_s, plan.onset_s
        faults = (FaultPlan(fault, devices=(device_id,), onset_s=onset, severity=plan.severity),)
    settings = plan.device_settings()
    device = SimDevice(
        device_id,
        blob,
        Ed25519PrivateKey.generate().public_key(),  # provisioning checks no signature
        publish=publish,
        clock=clock,
        machine=varied_machine(random.Random(seed)),
        faults=faults,
        seed=seed,
        settings=settings,
        window_period_s=plan.window_period_s,
        operation=operation(np.random.default_rng(seed), span_s),
    )
    device.device.connected()
    if plan.threshold is not None:
        command = {"id": "soak", "t": clock.wall_ms(), "cmd": "set_threshold"}
        device.device.command(json.dumps({**command, "threshold": plan.threshold}).encode())
        reply = json.loads(replies[-1]) if replies else {}
        if reply.get("outcome") != "done":
            raise DataError(f"the device refused the threshold {plan.threshold}: {reply}")
    states = {name: AnomalyState(settings) for name in baselines}
    total = int(span_s / plan.window_period_s + 1e-9)
    done = 0
    while done < total:
        chunk = min(CHUNK_WINDOWS, total - done)
        first_s = device.next_s
        rows = []
        for start in range(0, chunk, BLOCK_WINDOWS):
            block = device.next_block(min(BLOCK_WINDOWS, chunk - start))
            if baselines:
                rows.append(features_batch(block, spec))
            for samples in block:
                clock.advance(device.next_s - clock.now_s())
                device.feed(samples)
        done += chunk
        if baselines:
            features = np.concatenate(rows)
            for name, baseline in baselines.items():
                scores = baseline.anomaly_score(features)
                opened, closed = states[name].events(scores, float(baseline.threshold_))
                starts[name] += [first_s + i * plan.window_period_s for i in opened]
                ends[name] += [first_s + i * plan.window_period_s for i in closed]
        if onset is not None and all(any(t >= onset for t in ts) for ts in starts.values()):
            break
    return DeviceRun(
        device_id,
        fault,
        onset,
        done * plan.window_period_s,
        done,
        {name: tuple(ts) for name, ts in starts.items()},
        time.perf_counter() - began,
        time.process_time() - cpu_began,
        {name: tuple(ts) for name, ts in ends.items()},
    )


# ---- the figures ----


@dataclass(frozen=True)
class DetectorFigures:
    """One detector's figures over a soak.

    Attributes:
        healthy_device_days: Simulated days of healthy running, over every device.
        false_events: Anomalies started on healthy running.
        false_events_per_100_device_days: ``false_events`` per 100 ``healthy_device_days``
            (None when there were none).
        devices_with_false_events: Devices that raised at least one false event.
        report_delay_s: By fault kind, each faulty device's report delay (None: not
            reported within ``fault_span_s``).
        fault_report_delay_max_s: The largest delay; None when a fault was not reported
            (or no device was faulty).
        missed: Faulty devices whose fault was not reported.
        open_at_onset: Faulty devices on which the detector had an anomaly open when the
            fault appeared (a false event not ended yet): the fault's report is a new
            anomaly after that one ends, a miss when it never does.
    """

    healthy_device_days: float
    false_events: int
    false_events_per_100_device_days: float | None
    devices_with_false_events: int
    report_delay_s: dict[str, list[float | None]]
    fault_report_delay_max_s: float | None
    missed: int
    open_at_onset: int

    @classmethod
    def of(cls, runs: Sequence[DeviceRun], detector: str) -> DetectorFigures:
        """The figures of ``detector`` over ``runs``."""
        days = sum(run.healthy_s for run in runs) / DAY_S
        false = [run.false_events(detector) for run in runs]
        delays: dict[str, list[float | None]] = {}
        for run in runs:
            delay = run.report_delay_s(detector)
            if run.fault is not None and delay is not None:
                delays.setdefault(run.fault, []).append(None if math.isinf(delay) else delay)
        every = [d for ds in delays.values() for d in ds]
        missed = sum(1 for d in every if d is None)
        return cls(
            healthy_device_days=days,
            false_events=sum(false),
            false_events_per_100_device_days=100 * sum(false) / days if days > 0 else None,
            devices_with_false_events=sum(1 for n in false if n),
            report_delay_s=delays,
            fault_report_delay_max_s=(
                max(d for d in every if d is not None) if every and not missed else None
            ),
            missed=missed,
            open_at_onset=sum(1 for run in runs if run.open_at_onset(detector)),
        )


@dataclass(frozen=True)
class SoakResult:
    """What a soak measured.

    Attributes:
        plan: The plan.
        runs: Every device's run.
        figures: By detector (:data:`DEVICE`, then the baselines), its figures.
        seconds: Real seconds of the whole soak.
        workers: Processes that ran the devices.
    """

    plan: SoakPlan
    runs: list[DeviceRun]
    figures: dict[str, DetectorFigures]
    seconds: float
    workers: int

    @property
    def windows(self) -> int:
        """Windows scored, over every device."""
        return sum(run.windows for run in self.runs)

    @property
    def device_days(self) -> float:
        """Simulated days, over every device (healthy and faulty running)."""
        return sum(run.simulated_s for run in self.runs) / DAY_S

    @property
    def windows_per_s(self) -> float:
        """Windows scored per real second, over every worker."""
        return self.windows / self.seconds if self.seconds > 0 else 0.0

    @property
    def windows_per_cpu_s(self) -> float:
        """Windows scored per CPU second of the devices' processes (one core's rate)."""
        cpu = sum(run.cpu_seconds for run in self.runs)
        return self.windows / cpu if cpu > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data (a fault not reported has the delay null)."""
        plan = dataclasses.asdict(self.plan)
        plan["settings"] = dataclasses.asdict(self.plan.device_settings())
        return {
            "plan": plan,
            "device_days": self.device_days,
            "windows": self.windows,
            "seconds": self.seconds,
            "windows_per_s": self.windows_per_s,
            "windows_per_cpu_s": self.windows_per_cpu_s,
            "workers": self.workers,
            "detectors": {
                name: dataclasses.asdict(figures) for name, figures in self.figures.items()
            },
        }


# ---- the soak ----

_WORKER: dict[str, Any] = {}


def _init_worker(blob: bytes, baselines: Mapping[str, Scorer]) -> None:
    _WORKER["blob"], _WORKER["baselines"] = blob, baselines


def _run_task(plan: SoakPlan, device_id: str, fault: FaultKind | None) -> DeviceRun:
    return run_device(plan, _WORKER["blob"], device_id, fault, _WORKER["baselines"])


#: Called as devices finish: ``(devices done, devices, the run that finished)``.
SoakProgress = Callable[[int, int, DeviceRun], None]


def soak(
    plan: SoakPlan,
    blob: bytes,
    *,
    baselines: Mapping[str, Scorer] | None = None,
    workers: int | None = None,
    progress: SoakProgress | None = None,
) -> SoakResult:
    """Run every device of ``plan`` and compute each detector's figures.

    Args:
        plan: What to simulate.
        blob: The model every device runs.
        baselines: Fitted baselines by name, judged on the same windows.
        workers: Processes; None: one per CPU; 1 runs the devices in this process.
        progress: Called as each device finishes.
    """
    began = time.perf_counter()
    baselines = dict(baselines or {})
    tasks = plan.tasks()
    workers = max(1, min(workers or multiprocessing.cpu_count(), len(tasks) or 1))
    report = progress or (lambda done, total, run: None)
    runs: list[DeviceRun] = []
    if workers == 1:
        for device_id, fault in tasks:
            runs.append(run_device(plan, blob, device_id, fault, baselines))
            report(len(runs), len(tasks), runs[-1])
    else:
        # spawn, not fork: the caller may hold threads (TensorFlow's, a progress thread)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(blob, baselines)
        ) as pool:
            # the longest first, so that no worker is left with a long device at the end
            ordered = sorted(tasks, key=lambda task: task[1] is not None)
            if plan.days * DAY_S < plan.onset_s + plan.fault_span_s:
                ordered.reverse()
            futures = [pool.submit(_run_task, plan, *task) for task in ordered]
            for future in concurrent.futures.as_completed(futures):
                runs.append(future.result())
                report(len(runs), len(tasks), runs[-1])
        order = {device_id: i for i, (device_id, _) in enumerate(tasks)}
        runs.sort(key=lambda run: order[run.device_id])
    figures = {name: DetectorFigures.of(runs, name) for name in (DEVICE, *baselines)}
    return SoakResult(plan, runs, figures, time.perf_counter() - began, workers)


def fit_baselines(
    false_alarm_rate: float, *, seed: int = 0, windows: int = 20_000
) -> dict[str, Scorer]:
    """The isolation forest and PCA baselines fitted on the generator's healthy feature
    vectors (:func:`~vibewatch.train.factory.generator_data`, as the factory model was),
    each with its threshold for ``false_alarm_rate``."""
    from vibewatch.train.detectors import IsolationForestDetector, PCADetector
    from vibewatch.train.factory import generator_data

    healthy = generator_data(seed=seed, windows=windows, faulty_windows=1).healthy
    return {
        "iforest": IsolationForestDetector(
            random_state=seed, false_alarm_rate=false_alarm_rate
        ).fit(healthy),
        "pca": PCADetector(random_state=seed, false_alarm_rate=false_alarm_rate).fit(healthy),
    }


# ---- the command ----


def _summary(result: SoakResult) -> str:
    lines = [
        f"{len(result.runs)} devices, {result.device_days:.2f} device-days "
        f"({result.windows:,} windows) in {result.seconds:.0f} s on {result.workers} "
        f"process(es): {result.windows_per_s:,.0f} windows/s "
        f"({result.windows_per_cpu_s:,.0f} per CPU second)"
    ]
    for name, f in result.figures.items():
        rate = f.false_events_per_100_device_days
        delay = f.fault_report_delay_max_s
        worst = "missed" if f.missed else "-" if delay is None else f"{delay:.0f} s"
        lines.append(
            f"  {name}: {f.false_events} false events in {f.healthy_device_days:.2f} healthy "
            f"device-days ({'-' if rate is None else f'{rate:.2f}'} per 100, on "
            f"{f.devices_with_false_events} devices); fault report delay max "
            f"{worst}"
            + (f" ({f.open_at_onset} with an anomaly open at the onset)" if f.open_at_onset else "")
        )
        for kind, delays in f.report_delay_s.items():
            shown = ", ".join("missed" if d is None else f"{d:.0f} s" for d in delays)
            lines.append(f"    {kind}: {shown}")
    return "\n".join(lines)


def soak_command(
    devices: Annotated[int, typer.Option("--devices", help="Healthy devices.")] = 50,
    days: Annotated[
        float, typer.Option("--days", help="Simulated days each healthy device runs.")
    ] = 2.0,
    fault_devices: Annotated[
        int, typer.Option("--fault-devices", help="Devices per fault kind (every kind).")
    ] = 1,
    severity: Annotated[float, typer.Option("--severity", help="Severity of the faults.")] = 0.5,
    onset: Annotated[
        float, typer.Option("--onset", help="Simulated seconds before a fault appears.")
    ] = 1800.0,
    fault_span: Annotated[
        float,
        typer.Option(
            "--fault-span", help="Simulated seconds after the onset to report a fault within."
        ),
    ] = 7200.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of machines, operation and signals.")
    ] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Processes (0: one per CPU).")] = 0,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="The model (.vwm), a manifest.json beside it for --baselines [default: the "
            "factory model].",
            show_default=False,
        ),
    ] = None,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines",
            help="Judge the isolation forest and PCA baselines on the same windows, fitted "
            "on the generator's healthy vectors at the model manifest's false-alarm target.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Soak simulated devices over many simulated days at accelerated time: the false
    anomaly events of healthy machines per 100 device-days, and how long after its onset
    each fault is reported.

    Healthy devices (each its own machine and seed, speed and load changing within the
    factory model's trained range) run --days each; for every fault kind, --fault-devices
    devices run healthy for --onset seconds, then with the fault at --severity until every
    detector reported it or --fault-span seconds passed (a miss). Every window goes through
    the C device layer. Progress goes to standard error, the summary to standard output.
    """
    with exits(DataError):
        plan = SoakPlan(
            devices=devices,
            days=days,
            fault_devices=fault_devices,
            severity=severity,
            onset_s=onset,
            fault_span_s=fault_span,
            seed=seed,
        )
    if model is None:
        from vibewatch.edge.m4 import FACTORY_MODEL

        model = FACTORY_MODEL
    try:
        blob = model.read_bytes()
    except OSError as exc:
        fail(f"cannot read the model {model}: {exc.strerror}", 2)
    scorers: dict[str, Scorer] = {}
    line = ProgressLine()
    if baselines:
        try:
            target = float(
                json.loads((model.parent / "manifest.json").read_text())["false_alarm_target"]
            )
        except (OSError, ValueError, KeyError) as exc:
            fail(f"no false-alarm target in a manifest.json beside {model}: {exc}", 2)
        line.say(f"fitting the baselines at the false-alarm target {target:g}")
        scorers = fit_baselines(target)

    def show(done: int, total: int, run: DeviceRun) -> None:
        line.show(f"soak: {done}/{total} devices done ({run.device_id} in {run.seconds:.0f} s)")

    result = soak(plan, blob, baselines=scorers, workers=workers or None, progress=show)
    line.end()
    typer.echo(json.dumps(result.as_json()) if as_json else _summary(result))
