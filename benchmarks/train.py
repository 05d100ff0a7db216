"""Training benchmark: how long the factory autoencoder takes to train, and how well it detects.

Two parts, on this machine's CPU:

* **training time**: the autoencoder with the factory architecture (the defaults of
  ``TrainSettings``: hidden layers (32, 8), at most 200 epochs, batches of 64, early
  stopping) fitted on 50,000 feature vectors of the vibration generator
  (``generator_data``, 48 kHz, ``FeatureSpec.default(48000)``). Only
  ``AutoencoderDetector.fit`` is timed: normalisation, training and threshold calibration.
  Generating the vectors and importing TensorFlow happen before the clock starts.
* **CWRU bearing data** (``tests/data/cwru/``, 48 kHz, drive-end channel, windows
  every 256 samples): ``vibewatch.train.job.train`` trains, exports to int8 and signs a
  package from the first 60 % of the healthy recording (0-3.05 s); the C engine then
  scores, with that package's int8 model, the rest of the healthy recording (3.05 s to
  the end, never trained or calibrated on) and each of the three fault recordings (inner
  race, ball, outer race; 0.007 in, the smallest faults). This runs twice: on raw windows,
  and on amplitude-normalised windows (each divided by its own RMS, so that the spectral
  shape has to carry the decision). An isolation forest fitted on the same healthy part
  and scored on the same data is the baseline.

Reported: ``train_seconds``; ``auc_int8_min``, the smallest int8 AUC over fault files and
both variants; ``far_at_threshold``, the largest false-alarm rate on the held-out healthy
windows at the package's threshold over both variants; ``tflite_bytes`` and ``vwm_bytes``
of the raw-variant package; ``baseline_auc_iforest_min`` and ``auc_float_int8_gap_max``
(the largest |float AUC - int8 AUC| on the test data) (no bar).

Bars (exit status 1 when one is missed): ``train_seconds <= 120``,
``auc_int8_min >= 0.99``, ``far_at_threshold <= 0.02``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from vibewatch.edge import FeatureSpec
from vibewatch.edge.tf_export import tensorflow
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.train.detectors import IsolationForestDetector, Progress
from vibewatch.train.factory import SAMPLE_RATE_HZ, generator_data
from vibewatch.train.gate import HeldOut, Scores
from vibewatch.train.job import TrainingData, TrainSettings, detector_scores, train
from vibewatch.train.recordings import Normalise, recording_features

CWRU: Final = Path(__file__).resolve().parents[1] / "tests" / "data" / "cwru"
HEALTHY_FILE: Final = "normal_0_97.mat"
FAULT_FILES: Final = (
    "48k_Drive_End_IR007_0_109.mat",
    "48k_Drive_End_B007_0_122.mat",
    "48k_Drive_End_OR007at6_0_135.mat",
)
CHANNEL: Final = "*_DE_time"
#: End of the training part of the healthy recording: 60 % of its 5.08 s.
SPLIT_S: Final = 3.05
HOP: Final = 256
#: The two variants: raw windows, and windows divided by their own RMS.
VARIANTS: Final[dict[str, Normalise | None]] = {"raw": None, "rms": "rms"}

FULL_VECTORS: Final = 50_000
QUICK_VECTORS: Final = 10_000

BAR_TRAIN_SECONDS: Final = 120.0
BAR_AUC: Final = 0.99
BAR_FAR: Final = 0.02


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


def cwru_variant(
    variant: str, normalise: Normalise | None, settings: TrainSettings, workdir: Path
) -> dict[str, Any]:
    """Train on the healthy recording's first part; score the rest and the fault files."""
    spec = FeatureSpec.default(SAMPLE_RATE_HZ)

    def features(name: str, span: str = "") -> Any:
        text = f"{CWRU / name}@{CHANNEL}{span}"
        return recording_features(
            text, spec, sample_rate_hz=SAMPLE_RATE_HZ, hop=HOP, normalise=normalise
        )

    progress(f"cwru {variant}: reading the recordings")
    healthy_train = features(HEALTHY_FILE, f":0-{SPLIT_S:g}")
    test = HeldOut(
        features(HEALTHY_FILE, f":{SPLIT_S:g}-"), {name: features(name) for name in FAULT_FILES}
    )
    source = {"source": "cwru", "recording": f"{HEALTHY_FILE}@{CHANNEL}:0-{SPLIT_S:g}"}
    private_key = load_private_key(workdir / "key.pem")
    trained = train(
        TrainingData(healthy_train, spec, source),
        settings,
        version=1,
        private_key=private_key,
        out_dir=workdir / variant,
        phases=phase_progress(variant),
    )
    int8 = Scores.of(trained.engine, test)
    floats = detector_scores(trained.detector, test).auc()
    progress(f"cwru {variant}: isolation forest baseline")
    forest = IsolationForestDetector(random_state=settings.random_state).fit(healthy_train)
    baseline = Scores(
        forest.anomaly_score(test.healthy),
        {name: forest.anomaly_score(rows) for name, rows in test.faulty.items()},
        forest.threshold_,
    )
    return {
        "healthy_train_windows": len(healthy_train),
        "healthy_test_windows": len(test.healthy),
        "fault_windows": {name: len(rows) for name, rows in test.faulty.items()},
        "epochs_run": trained.metrics["training"]["epochs_run"],
        "threshold": int8.threshold,
        "far": int8.far,
        "auc_int8": int8.auc(),
        "auc_float": floats,
        "auc_gap_max": max(abs(floats[name] - value) for name, value in int8.auc().items()),
        "detected": int8.detected(),
        # With every AUC at 1, how far the windows lie from the threshold shows the headroom.
        "healthy_max_over_threshold": float(int8.healthy.max()) / int8.threshold,
        "fault_min_over_threshold": {
            name: float(scores.min()) / int8.threshold for name, scores in int8.faulty.items()
        },
        "auc_iforest": baseline.auc(),
        "far_iforest": baseline.far,
        "tflite_bytes": len(trained.package.tflite),
        "vwm_bytes": len(trained.package.vwm),
    }


def measure_cwru(settings: TrainSettings) -> dict[str, Any]:
    """Both variants of the CWRU test, packages in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="vw-train-bench-") as tmp:
        workdir = Path(tmp)
        # A throwaway key: the packages are signed as the job always signs, then deleted.
        generate_keypair(workdir / "key.pem", workdir / "key.pub.pem")
        variants = {
            variant: cwru_variant(variant, normalise, settings, workdir)
            for variant, normalise in VARIANTS.items()
        }
    raw = variants["raw"]
    return {
        "auc_int8_min": min(min(v["auc_int8"].values()) for v in variants.values()),
        "far_at_threshold": max(v["far"] for v in variants.values()),
        "tflite_bytes": raw["tflite_bytes"],
        "vwm_bytes": raw["vwm_bytes"],
        "baseline_auc_iforest_min": min(min(v["auc_iforest"].values()) for v in variants.values()),
        "auc_float_int8_gap_max": max(v["auc_gap_max"] for v in variants.values()),
        "cwru": variants,
    }


def misses(result: dict[str, Any]) -> list[str]:
    """The bars ``result`` misses, one line each."""
    out = []
    if result["train_seconds"] > BAR_TRAIN_SECONDS:
        out.append(f"train_seconds {result['train_seconds']} > {BAR_TRAIN_SECONDS:g}")
    if result["auc_int8_min"] < BAR_AUC:
        out.append(f"auc_int8_min {result['auc_int8_min']:.4f} < {BAR_AUC}")
    if result["far_at_threshold"] > BAR_FAR:
        out.append(f"far_at_threshold {result['far_at_threshold']:.4f} > {BAR_FAR}")
    return out


def _short(name: str) -> str:
    """``48k_Drive_End_IR007_0_109.mat`` -> ``IR007``."""
    return name.removeprefix("48k_Drive_End_").split("_")[0].removesuffix("at6")


def table(result: dict[str, Any]) -> str:
    """The human-readable report."""
    variants = (result["cwru"]["raw"], result["cwru"]["rms"])

    def cells(cell: Callable[[dict[str, Any]], str]) -> str:
        return "  ".join(f"{cell(v):>11}" for v in variants)

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
        (f"CWRU (48 kHz, drive end, hop {HOP})", f"{'raw':>11}  {'rms-norm':>11}"),
        (
            "  healthy windows: train / test",
            cells(lambda v: f"{v['healthy_train_windows']} / {v['healthy_test_windows']}"),
        ),
        ("  epochs run", cells(lambda v: f"{v['epochs_run']}")),
        ("  false-alarm rate at threshold", cells(lambda v: f"{v['far']:.4f}")),
    ]
    rows.append(
        (
            "  highest healthy score / threshold",
            cells(lambda v: f"{v['healthy_max_over_threshold']:.3f}"),
        )
    )
    for what, key in (
        ("int8 AUC", "auc_int8"),
        ("float AUC", "auc_float"),
        ("detected at threshold", "detected"),
        ("lowest score / threshold", "fault_min_over_threshold"),
        ("isolation forest AUC", "auc_iforest"),
    ):
        for name in FAULT_FILES:
            values = "  ".join(f"{v[key][name]:>11.4f}" for v in variants)
            rows.append((f"  {what}, {_short(name)}", values))
    rows += [
        (
            "  .tflite / .vwm bytes (raw)",
            f"{result['tflite_bytes']:,} / {result['vwm_bytes']:,}",
        ),
        ("", ""),
        ("train_seconds", f"{result['train_seconds']:.1f}"),
        ("auc_int8_min", f"{result['auc_int8_min']:.4f}"),
        ("far_at_threshold", f"{result['far_at_threshold']:.4f}"),
        ("baseline_auc_iforest_min", f"{result['baseline_auc_iforest_min']:.4f}"),
        ("auc_float_int8_gap_max", f"{result['auc_float_int8_gap_max']:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}".rstrip() for name, value in rows]
    lines.append("")
    bars = [
        (
            f"train_seconds <= {BAR_TRAIN_SECONDS:g}"
            + (f" (quick: {result['train_vectors']:,} vectors)" if result["quick"] else ""),
            result["train_seconds"] <= BAR_TRAIN_SECONDS,
        ),
        (f"auc_int8_min >= {BAR_AUC}", result["auc_int8_min"] >= BAR_AUC),
        (f"far_at_threshold <= {BAR_FAR}", result["far_at_threshold"] <= BAR_FAR),
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
        "(train_seconds is then not comparable with its bar)",
    )
    args = parser.parse_args(argv)
    missing = [name for name in (HEALTHY_FILE, *FAULT_FILES) if not (CWRU / name).is_file()]
    if missing:
        print(f"error: CWRU recordings not found in {CWRU}: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = TrainSettings()
    began = time.monotonic()
    result: dict[str, Any] = {
        **measure_training_time(QUICK_VECTORS if args.quick else FULL_VECTORS, settings),
        **measure_cwru(settings),
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
    }
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
