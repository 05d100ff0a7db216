"""Training benchmark: how long the factory autoencoder takes to train, and how well it detects.

Four parts, on this machine's CPU:

* **training time**: the autoencoder with the factory architecture (the defaults of
  ``TrainSettings``: hidden layers (32, 8), at most 200 epochs, batches of 64, early
  stopping) fitted on 50,000 feature vectors of the vibration generator
  (``generator_data``, 48 kHz, ``FeatureSpec.default(48000)``). Only
  ``AutoencoderDetector.fit`` is timed: normalisation, training and threshold calibration.
  Generating the vectors and importing TensorFlow happen before the clock starts.
* **CWRU bearing data** (``tests/data/cwru/``, 48 kHz, drive-end channel, windows
  every 256 samples): for every split point s in 2.0, 2.5, 3.0 and 3.5 s,
  ``vibewatch.train.job.train`` trains, exports to int8 and signs a package from the
  healthy recording's ``[0, s)``; the C engine then scores, with that package's int8
  model, the healthy recording's ``[s + 0.1, end)`` (never trained or calibrated on) and
  each of the three fault recordings (inner race, ball, outer race; 0.007 in, the
  smallest faults). Each split runs twice: on raw windows, and on amplitude-normalised
  windows (each divided by its own RMS, so that the spectral shape has to carry the
  decision). The isolation forest and PCA baselines, fitted on the same healthy part
  with the same threshold rule and false-alarm target, are scored on the same data.
* **factory model against the baselines**: the generator data of the factory package
  (``models/factory/package``) is made again from its manifest (seed, windows) and split as
  the training job split it; the C engine scores the held-out healthy windows and each
  fault class at severity 0.5 with the package's int8 model (the AUCs must equal the
  manifest's), and the isolation forest and PCA baselines, fitted on the same training
  rows at the same false-alarm target, score the same windows.
* **soak** (``vibewatch.sim.soak``): the factory model package devices ship with
  (``models/factory/package/model.vwm``, its own threshold) on simulated devices, every
  window through the C device layer (features, int8 engine, the k-of-n anomaly state of the
  default ``DeviceSettings``). 50 healthy devices run 2 simulated days each (100
  device-days), each with its own seed and machine (``varied_machine``) and speed and load
  changing within the factory's trained range; for each of the six fault kinds, 3 devices
  run 30 healthy minutes and then the fault at a steady severity 0.5, until it is reported
  or 2 simulated hours pass (a miss). The isolation forest and PCA baselines, fitted on the
  generator's healthy feature vectors (``generator_data`` with the factory manifest's seed
  and size) at the manifest's false-alarm target, judge the same windows: the C DSP
  (``features_batch``), the baseline's score, and the C anomaly state machine
  (``vw_anomaly``, the device layer's) at the baseline's threshold. Devices run on one
  process per CPU; with 4,096-sample windows the soak takes about 55 minutes of two CPUs
  alone (0.7 ms a window, most of it generating the signal), and 93 minutes on a busy
  machine. ``--quick``: 4 healthy devices of 0.25 days and 1 device per fault kind (a few
  minutes).

Reported: ``train_seconds``; over every split and both variants, ``far_max_over_splits``
(the largest false-alarm rate on the unseen healthy windows at the package's threshold),
``detected_min_over_splits`` (the smallest share of a fault recording's windows above
it) and ``auc_int8_min`` (the smallest int8 AUC), and the same three for each baseline
(no bar); ``tflite_bytes`` and ``vwm_bytes`` of the first package;
``auc_float_int8_gap_max`` (the largest |float AUC - int8 AUC|) (no bar); from the soak,
``false_events_per_100_device_days`` (anomaly events started on healthy running, per 100
simulated device-days of it) and ``fault_report_delay_max_s`` (the longest time from a
fault's onset to the first event after it; null when a fault was not reported), the same two
for each baseline under ``baselines`` (no bar), and under ``soak`` the details: device-days,
events by device, delays by fault kind, windows per second; ``factory_auc_margin_min``
(over the six fault classes: the factory model's int8 AUC minus the better baseline's),
and under ``factory`` every class's AUCs and margin.

Bars (exit status 1 when one is missed): ``train_seconds <= 120``,
``auc_int8_min >= 0.99``, ``far_max_over_splits <= 0.02``,
``detected_min_over_splits >= 0.95``, ``false_events_per_100_device_days <= 1``,
``fault_report_delay_max_s <= 3600``, ``factory_auc_margin_min >= 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from vibewatch.edge import FeatureSpec, Model
from vibewatch.edge.tf_export import tensorflow
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.sim.soak import DEVICE, DeviceRun, SoakPlan, fit_baselines, soak
from vibewatch.train.detectors import Detector, IsolationForestDetector, PCADetector, Progress
from vibewatch.train.factory import SAMPLE_RATE_HZ, generator_data
from vibewatch.train.gate import HeldOut, Scores
from vibewatch.train.job import (
    TrainingData,
    TrainSettings,
    detector_scores,
    split_held_out,
    train,
)
from vibewatch.train.recordings import Normalise, recording_features

CWRU: Final = Path(__file__).resolve().parents[1] / "tests" / "data" / "cwru"
HEALTHY_FILE: Final = "normal_0_97.mat"
FAULT_FILES: Final = (
    "48k_Drive_End_IR007_0_109.mat",
    "48k_Drive_End_B007_0_122.mat",
    "48k_Drive_End_OR007at6_0_135.mat",
)
CHANNEL: Final = "*_DE_time"
#: Ends of the training part of the healthy recording (of its 5.08 s); the test part
#: starts 0.1 s later.
SPLITS_S: Final = (2.0, 2.5, 3.0, 3.5)
GAP_S: Final = 0.1
HOP: Final = 256
#: The two variants: raw windows, and windows divided by their own RMS.
VARIANTS: Final[dict[str, Normalise | None]] = {"raw": None, "rms": "rms"}

FULL_VECTORS: Final = 50_000
QUICK_VECTORS: Final = 10_000

FACTORY_PACKAGE: Final = Path(__file__).resolve().parents[1] / "models" / "factory" / "package"
SOAK_FULL: Final = SoakPlan(devices=50, days=2.0, fault_devices=3)
SOAK_QUICK: Final = SoakPlan(devices=4, days=0.25, fault_devices=1)

BAR_TRAIN_SECONDS: Final = 120.0
BAR_AUC: Final = 0.99
BAR_FAR: Final = 0.02
BAR_DETECTED: Final = 0.95
BAR_FALSE_EVENTS: Final = 1.0
BAR_REPORT_DELAY_S: Final = 3600.0
BAR_AUC_MARGIN: Final = 0.0


def progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def epoch_progress(what: str) -> Progress:
    """A fit progress callback that reports every 25th epoch."""

    def report(done: int, total: int) -> None:
        if done % 25 == 0 and done < total:
            progress(f"{what}: epoch {done} of at most {total}")

    return report


def phase_progress(variant: str) -> Callable[[str], Progress]:
    """The ``phases`` callback of ``train``: names each phase, epochs during the fit."""

    def phase(name: str) -> Progress:
        progress(f"cwru {variant}: {name}")
        return epoch_progress(f"cwru {variant} fit") if name == "fit" else lambda d, t: None

    return phase


def measure_training_time(vectors: int, settings: TrainSettings) -> dict[str, Any]:
    """Fit the factory autoencoder on ``vectors`` generator rows; time the fit alone."""
    progress(f"generating {vectors:,} feature vectors (not timed)")
    data = generator_data(seed=settings.random_state, windows=vectors, faulty_windows=1)
    rows = data.healthy[:vectors]
    tensorflow()  # imported before the clock starts
    progress(f"fitting the autoencoder on {len(rows):,} vectors (timed)")
    detector = settings.autoencoder()
    began = time.perf_counter()
    detector.fit(rows, progress=epoch_progress("timed fit"))
    seconds = time.perf_counter() - began
    epochs_run = detector.epochs_run_
    progress(f"fit took {seconds:.1f}s ({epochs_run} epochs)")
    return {
        "train_seconds": round(seconds, 2),
        "train_vectors": len(rows),
        "train_epochs_run": epochs_run,
        "train_seconds_per_epoch": round(seconds / epochs_run, 3),
    }


def _judged(scores: Scores) -> dict[str, Any]:
    """False-alarm rate, detected shares and AUCs of scores at their threshold."""
    return {"far": scores.far, "detected": scores.detected(), "auc": scores.auc()}


def _baselines(healthy: Any, test: HeldOut, seed: int, target: float) -> dict[str, Any]:
    """The isolation forest and PCA baselines fitted on ``healthy`` for the false-alarm
    ``target``, each judged on ``test`` at its own threshold."""
    detectors: dict[str, Detector] = {
        "iforest": IsolationForestDetector(random_state=seed, false_alarm_rate=target),
        "pca": PCADetector(random_state=seed, false_alarm_rate=target),
    }
    judged = {}
    for name, detector in detectors.items():
        fitted = detector.fit(healthy)
        judged[name] = _judged(Scores.by(fitted.anomaly_score, fitted.threshold_, test))
    return judged


def cwru_run(
    split: float,
    variant: str,
    normalise: Normalise | None,
    settings: TrainSettings,
    workdir: Path,
) -> dict[str, Any]:
    """Train on the healthy recording's ``[0, split)``; score the rest and the fault files."""
    spec = FeatureSpec.default(SAMPLE_RATE_HZ)

    def features(name: str, span: str = "") -> Any:
        text = f"{CWRU / name}@{CHANNEL}{span}"
        return recording_features(
            text, spec, sample_rate_hz=SAMPLE_RATE_HZ, hop=HOP, normalise=normalise
        )

    name = f"{split:g} s {variant}"
    progress(f"cwru {name}: reading the recordings")
    healthy_train = features(HEALTHY_FILE, f":0-{split:g}")
    test = HeldOut(
        features(HEALTHY_FILE, f":{split + GAP_S:g}-"),
        {name: features(name) for name in FAULT_FILES},
    )
    source = {"source": "cwru", "recording": f"{HEALTHY_FILE}@{CHANNEL}:0-{split:g}"}
    private_key = load_private_key(workdir / "key.pem")
    trained = train(
        TrainingData(healthy_train, spec, source),
        settings,
        version=1,
        private_key=private_key,
        out_dir=workdir / f"{split:g}-{variant}",
        phases=phase_progress(name),
    )
    int8 = Scores.of(trained.engine, test)
    floats = detector_scores(trained.detector, test).auc()
    progress(f"cwru {name}: baselines")
    seed, target = settings.random_state, settings.false_alarm_rate
    return {
        "split_s": split,
        "variant": variant,
        "healthy_train_windows": len(healthy_train),
        "healthy_test_windows": len(test.healthy),
        "epochs_run": trained.metrics["training"]["epochs_run"],
        "threshold": int8.threshold,
        "threshold_method": trained.tail.method,
        "int8": _judged(int8),
        "auc_float": floats,
        "auc_gap_max": max(abs(floats[name] - value) for name, value in int8.auc().items()),
        "healthy_max_over_threshold": float(int8.healthy.max()) / int8.threshold,
        "fault_min_over_threshold": {
            name: float(scores.min()) / int8.threshold for name, scores in int8.faulty.items()
        },
        **_baselines(healthy_train, test, seed, target),
        "tflite_bytes": len(trained.package.tflite),
        "vwm_bytes": len(trained.package.vwm),
    }


def measure_factory() -> dict[str, Any]:
    """The factory package against both baselines on its own held-out generator data.

    The data is made again from the manifest (seed, windows, faulty windows per class) and
    split as the training job split it; the baselines are fitted on the same training rows
    at the manifest's false-alarm target. The int8 AUCs must equal the manifest's.
    """
    manifest = json.loads((FACTORY_PACKAGE / "manifest.json").read_text())
    source, metrics = manifest["training_data"], manifest["metrics"]
    seed, target = int(source["seed"]), float(manifest["false_alarm_target"])
    per_class = set(metrics["faulty_windows"].values())
    progress(f"factory: generating {source['windows']:,} healthy windows (seed {seed})")
    data = generator_data(seed=seed, windows=source["windows"], faulty_windows=per_class.pop())
    train_rows, test_rows = split_held_out(data.healthy, TrainSettings(random_state=seed))
    held_out = HeldOut(test_rows, data.faulty)
    ours = Scores.of(Model((FACTORY_PACKAGE / "model.vwm").read_bytes()), held_out).auc()
    if ours != metrics["auc"]:
        raise SystemExit(f"factory: the AUCs {ours} are not the manifest's {metrics['auc']}")
    progress("factory: fitting the baselines on the same rows")
    theirs = {
        name: judged["auc"]
        for name, judged in _baselines(train_rows, held_out, seed, target).items()
    }
    margins = {
        kind: auc - max(aucs[kind] for aucs in theirs.values()) for kind, auc in ours.items()
    }
    return {
        "factory_auc_margin_min": min(margins.values()),
        "factory": {"auc_int8": ours, "auc_margin": margins, "baselines": theirs},
    }


def factory_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The factory comparison's lines of the report."""
    factory = result["factory"]
    rows = [("factory model, generator faults at 0.5: class", "int8 AUC  iforest   pca     margin")]
    for kind, auc in factory["auc_int8"].items():
        forest, pca = (factory["baselines"][name][kind] for name in ("iforest", "pca"))
        rows.append(
            (
                f"  {kind}",
                f"{auc:.5f}   {forest:.5f}  {pca:.5f} {factory['auc_margin'][kind]:+.5f}",
            )
        )
    rows.append(("factory_auc_margin_min", f"{result['factory_auc_margin_min']:+.6f}"))
    return rows


def _over_runs(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    """The worst false-alarm rate, detection and AUC over the runs of ``key`` (``int8``,
    or a baseline)."""
    parts = [run[key] for run in runs]
    return {
        "far_max_over_splits": max(p["far"] for p in parts),
        "detected_min_over_splits": min(min(p["detected"].values()) for p in parts),
        "auc_min": min(min(p["auc"].values()) for p in parts),
    }


def measure_cwru(settings: TrainSettings) -> dict[str, Any]:
    """Every split and both variants of the CWRU test, packages in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="vw-train-bench-") as tmp:
        workdir = Path(tmp)
        # A throwaway key: the packages are signed as the job always signs, then deleted.
        generate_keypair(workdir / "key.pem", workdir / "key.pub.pem")
        runs = [
            cwru_run(split, variant, normalise, settings, workdir)
            for split in SPLITS_S
            for variant, normalise in VARIANTS.items()
        ]
    ours = _over_runs(runs, "int8")
    return {
        "far_max_over_splits": ours["far_max_over_splits"],
        "detected_min_over_splits": ours["detected_min_over_splits"],
        "auc_int8_min": ours["auc_min"],
        "baselines": {name: _over_runs(runs, name) for name in ("iforest", "pca")},
        "tflite_bytes": runs[0]["tflite_bytes"],
        "vwm_bytes": runs[0]["vwm_bytes"],
        "auc_float_int8_gap_max": max(run["auc_gap_max"] for run in runs),
        "cwru": runs,
    }


def measure_soak(quick: bool) -> dict[str, Any]:
    """The factory package on a soak of simulated devices, the baselines on the same windows."""
    blob = (FACTORY_PACKAGE / "model.vwm").read_bytes()
    manifest = json.loads((FACTORY_PACKAGE / "manifest.json").read_text())
    target = float(manifest["false_alarm_target"])
    data = manifest["training_data"]
    progress(f"soak: fitting the baselines on {data['windows']:,} generator vectors")
    baselines = fit_baselines(target, seed=int(data["seed"]), windows=int(data["windows"]))
    plan = SOAK_QUICK if quick else SOAK_FULL

    def report(done: int, total: int, run: DeviceRun) -> None:
        events = {name: len(starts) for name, starts in run.starts_s.items()}
        progress(
            f"soak: {done}/{total} devices, {run.device_id} "
            f"({run.simulated_s / 3600:.1f} simulated h in {run.seconds:.0f} s): events {events}"
        )

    progress(f"soak: {len(plan.tasks())} devices, {plan.devices} healthy for {plan.days:g} days")
    result = soak(plan, blob, baselines=baselines, progress=report)
    figures = {name: dataclasses.asdict(f) for name, f in result.figures.items()}
    ours = figures[DEVICE]
    progress(f"soak: done in {result.seconds:.0f}s")
    return {
        "false_events_per_100_device_days": ours["false_events_per_100_device_days"],
        "fault_report_delay_max_s": ours["fault_report_delay_max_s"],
        "soak_baselines": {
            name: {
                "false_events_per_100_device_days": f["false_events_per_100_device_days"],
                "fault_report_delay_max_s": f["fault_report_delay_max_s"],
            }
            for name, f in figures.items()
            if name != DEVICE
        },
        "soak": {
            **result.as_json(),
            "model": {"threshold": manifest["threshold"], "false_alarm_target": target},
            "events_by_device": {
                run.device_id: {name: list(starts) for name, starts in run.starts_s.items()}
                for run in result.runs
                if any(run.starts_s.values())
            },
        },
    }


def soak_misses(result: dict[str, Any]) -> list[str]:
    """The soak's bars ``result`` misses, one line each."""
    out = []
    rate = result["false_events_per_100_device_days"]
    if rate is None or rate > BAR_FALSE_EVENTS:
        out.append(f"false_events_per_100_device_days {rate} > {BAR_FALSE_EVENTS:g}")
    delay = result["fault_report_delay_max_s"]
    if delay is None:
        out.append("fault_report_delay_max_s: a fault was not reported within the soak")
    elif delay > BAR_REPORT_DELAY_S:
        out.append(f"fault_report_delay_max_s {delay:g} > {BAR_REPORT_DELAY_S:g}")
    return out


def misses(result: dict[str, Any]) -> list[str]:
    """The bars ``result`` misses, one line each (of the parts that ran)."""
    out = []
    if "train_seconds" in result and result["train_seconds"] > BAR_TRAIN_SECONDS:
        out.append(f"train_seconds {result['train_seconds']} > {BAR_TRAIN_SECONDS:g}")
    if "auc_int8_min" in result:
        if result["auc_int8_min"] < BAR_AUC:
            out.append(f"auc_int8_min {result['auc_int8_min']:.4f} < {BAR_AUC}")
        if result["far_max_over_splits"] > BAR_FAR:
            out.append(f"far_max_over_splits {result['far_max_over_splits']:.4f} > {BAR_FAR}")
        if result["detected_min_over_splits"] < BAR_DETECTED:
            detected = result["detected_min_over_splits"]
            out.append(f"detected_min_over_splits {detected:.4f} < {BAR_DETECTED}")
    if "false_events_per_100_device_days" in result:
        out += soak_misses(result)
    if "factory_auc_margin_min" in result and result["factory_auc_margin_min"] < BAR_AUC_MARGIN:
        margin = result["factory_auc_margin_min"]
        out.append(f"factory_auc_margin_min {margin:.6f} < {BAR_AUC_MARGIN:g}")
    return out


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delay(value: float | None) -> str:
    return "not reported" if value is None else f"{value:.0f} s"


def soak_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The soak's lines of the report."""
    soaked = result["soak"]
    plan = soaked["plan"]
    quick = "quick: " if result["quick"] else ""
    rows = [
        (
            f"soak ({quick}factory package, threshold {soaked['model']['threshold']:.4g})",
            f"{plan['devices']} healthy devices x {plan['days']:g} days, "
            f"{plan['fault_devices']} per fault kind at severity {plan['severity']:g}; "
            f"{soaked['device_days']:.1f} device-days, {soaked['windows']:,} windows in "
            f"{soaked['seconds']:.0f} s ({soaked['windows_per_s']:,.0f}/s on "
            f"{soaked['workers']} processes, {soaked['windows_per_cpu_s']:,.0f} per CPU s)",
        ),
        ("  detector", "false events / healthy device-days (devices)  per 100  delay max"),
    ]
    for name, f in soaked["detectors"].items():
        rate = _rate(f["false_events_per_100_device_days"])
        rows.append(
            (
                f"  {name}",
                f"{f['false_events']} / {f['healthy_device_days']:.1f} "
                f"({f['devices_with_false_events']})  {rate}"
                f"  {_delay(f['fault_report_delay_max_s'])}"
                + (
                    f" ({f['open_at_onset']} with a false event open at the onset)"
                    if f.get("open_at_onset")
                    else ""
                ),
            )
        )
        for kind, delays in f["report_delay_s"].items():
            rows.append((f"    {kind}", ", ".join(_delay(d) for d in delays)))
    rows += [
        ("", ""),
        ("false_events_per_100_device_days", _rate(result["false_events_per_100_device_days"])),
        ("fault_report_delay_max_s", _delay(result["fault_report_delay_max_s"])),
    ]
    for name, figures in result["baselines"].items():
        if "fault_report_delay_max_s" in figures:
            rows.append(
                (
                    f"baseline {name}: false events per 100 device-days / delay max",
                    f"{_rate(figures['false_events_per_100_device_days'])} / "
                    f"{_delay(figures['fault_report_delay_max_s'])}",
                )
            )
    return rows


def training_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The training time's and the CWRU test's lines of the report."""
    quick = "quick: " if result["quick"] else ""
    rows: list[tuple[str, str]] = [
        (
            f"training time ({quick}{result['train_vectors']:,} generator vectors)",
            f"{result['train_seconds']:.1f} s",
        ),
        ("  timed", "AutoencoderDetector.fit alone (not data generation, not TF import)"),
        ("  epochs run", f"{result['train_epochs_run']}"),
        ("  seconds per epoch", f"{result['train_seconds_per_epoch']:.3f}"),
        ("  CPUs", f"{result['cpu_count']}"),
        ("", ""),
        (
            f"CWRU (48 kHz, drive end, hop {HOP}): split, variant",
            "windows train/test  threshold   FAR    detected min  AUC min  iforest FAR/det  "
            "pca FAR/det",
        ),
    ]
    for run in result["cwru"]:
        ours, forest, pca = run["int8"], run["iforest"], run["pca"]
        rows.append(
            (
                f"  {run['split_s']:g} s, {run['variant']}",
                f"{run['healthy_train_windows']:>5} / {run['healthy_test_windows']:<5}      "
                f"{run['threshold']:>8.4g} {run['threshold_method']:<9} {ours['far']:.4f}  "
                f"{min(ours['detected'].values()):.4f}        {min(ours['auc'].values()):.4f}   "
                f"{forest['far']:.4f}/{min(forest['detected'].values()):.4f}  "
                f"{pca['far']:.4f}/{min(pca['detected'].values()):.4f}",
            )
        )
    rows += [
        (
            "  .tflite / .vwm bytes (first)",
            f"{result['tflite_bytes']:,} / {result['vwm_bytes']:,}",
        ),
        ("", ""),
        ("train_seconds", f"{result['train_seconds']:.1f}"),
        ("far_max_over_splits", f"{result['far_max_over_splits']:.4f}"),
        ("detected_min_over_splits", f"{result['detected_min_over_splits']:.4f}"),
        ("auc_int8_min", f"{result['auc_int8_min']:.4f}"),
        ("auc_float_int8_gap_max", f"{result['auc_float_int8_gap_max']:.4f}"),
    ]
    for name, figures in result["baselines"].items():
        rows.append(
            (
                f"baseline {name}: far_max / detected_min / auc_min",
                f"{figures['far_max_over_splits']:.4f} / "
                f"{figures['detected_min_over_splits']:.4f} / {figures['auc_min']:.4f}",
            )
        )
    return rows


def table(result: dict[str, Any]) -> str:
    """The human-readable report (of the parts that ran)."""
    rows: list[tuple[str, str]] = []
    if "train_seconds" in result:
        rows += training_rows(result)
    if "factory" in result:
        rows += [("", "")] if rows else []
        rows += factory_rows(result)
    if "soak" in result:
        rows += [("", "")] if rows else []
        rows += soak_rows(result)
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}".rstrip() for name, value in rows]
    lines.append("")
    bars = []
    if "train_seconds" in result:
        bars += [
            (
                f"train_seconds <= {BAR_TRAIN_SECONDS:g}"
                + (f" (quick: {result['train_vectors']:,} vectors)" if result["quick"] else ""),
                result["train_seconds"] <= BAR_TRAIN_SECONDS,
            ),
            (f"auc_int8_min >= {BAR_AUC}", result["auc_int8_min"] >= BAR_AUC),
            (f"far_max_over_splits <= {BAR_FAR}", result["far_max_over_splits"] <= BAR_FAR),
            (
                f"detected_min_over_splits >= {BAR_DETECTED}",
                result["detected_min_over_splits"] >= BAR_DETECTED,
            ),
        ]
    if "factory" in result:
        bars.append(
            (
                f"factory_auc_margin_min >= {BAR_AUC_MARGIN:g}",
                result["factory_auc_margin_min"] >= BAR_AUC_MARGIN,
            )
        )
    if "soak" in result:
        missed = soak_misses(result)
        quick = " (quick: a short soak)" if result["quick"] else ""
        bars += [
            (
                f"false_events_per_100_device_days <= {BAR_FALSE_EVENTS:g}{quick}",
                not any(m.startswith("false_events") for m in missed),
            ),
            (
                f"fault_report_delay_max_s <= {BAR_REPORT_DELAY_S:g}{quick}",
                not any(m.startswith("fault_report") for m in missed),
            ),
        ]
    for name, met in bars:
        lines.append(f"{'ok  ' if met else 'MISS'}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"time the fit on {QUICK_VECTORS:,} vectors instead of {FULL_VECTORS:,} "
        "(train_seconds is then not comparable with its bar), and run a short soak "
        f"({SOAK_QUICK.devices} healthy devices of {SOAK_QUICK.days:g} days, "
        f"{SOAK_QUICK.fault_devices} per fault kind)",
    )
    parser.add_argument(
        "--soak-only",
        action="store_true",
        help="run the soak alone (no training, no CWRU test, no TensorFlow)",
    )
    args = parser.parse_args(argv)
    missing = [name for name in (HEALTHY_FILE, *FAULT_FILES) if not (CWRU / name).is_file()]
    if missing and not args.soak_only:
        print(f"error: CWRU recordings not found in {CWRU}: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = TrainSettings()
    began = time.monotonic()
    result: dict[str, Any] = {"quick": args.quick, "cpu_count": os.cpu_count(), "baselines": {}}
    if not args.soak_only:
        result |= measure_training_time(QUICK_VECTORS if args.quick else FULL_VECTORS, settings)
        result |= measure_cwru(settings)
    result |= measure_factory()
    soaked = measure_soak(args.quick)
    for name, figures in soaked.pop("soak_baselines").items():
        result["baselines"].setdefault(name, {}).update(figures)
    result |= soaked
    progress(f"done in {time.monotonic() - began:.0f}s")
    missed = misses(result)
    result["missed"] = missed
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result))
        print("all bars met" if not missed else f"{len(missed)} bar(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
