"""The retraining job: healthy feature vectors to a signed, evaluated int8 model package.

Phases (each reports progress):

1. **split** — the newest ``held_out_fraction`` of the healthy rows (in time order) is kept
   for evaluation; the detector never sees it. Fewer healthy rows than
   ``min_healthy_windows`` in all: training is refused.
2. **fit** — the autoencoder learns on the rest; it holds back its own newest rows to
   calibrate the threshold (:mod:`vibewatch.train.detectors`).
3. **export** — int8 ``.tflite`` and ``.vwm``, threshold calibrated again on the int8
   scores of the C engine (:mod:`vibewatch.train.export`).
4. **evaluate** — int8 and float scores of the held-out healthy rows and of every faulty
   set: AUC, false-alarm rate, detected share; the PCA and isolation-forest baselines on the
   same split for comparison.
5. **package** — ``model.tflite``, ``model.vwm``, ``manifest.json``, ``manifest.sig``,
   ``device.sig`` in ``OUT/package``, and the model card next to it
   (:mod:`vibewatch.train.card`).

:func:`register` then files the package in the registry as a candidate and lets the
quality gate (:mod:`vibewatch.train.gate`) promote or reject it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import FeatureSpec, Model
from vibewatch.errors import DataError
from vibewatch.models.package import ModelPackage, blob_fields, golden_vectors, write_package
from vibewatch.models.registry import Registry, RegistryEntry
from vibewatch.train.detectors import (
    AutoencoderDetector,
    Detector,
    IsolationForestDetector,
    PCADetector,
    Progress,
    as_features,
)
from vibewatch.train.export import export_int8
from vibewatch.train.gate import Decision, DeviceLimits, HeldOut, Scores, decide
from vibewatch.train.tail import TailEstimate

#: Opens a phase: called with its name, returns the phase's progress callback.
Phases = Callable[[str], Progress]
PHASES = ("split", "fit", "export", "evaluate", "package")
PACKAGE_DIR = "package"


def _quiet(_name: str) -> Progress:
    return lambda done, total: None


@dataclass(frozen=True)
class TrainingData:
    """What a model is trained and judged on.

    Attributes:
        healthy: Healthy feature rows, oldest first.
        spec: Their feature spec.
        source: Where they came from (the manifest's ``training_data``; plain JSON).
        faulty: Named sets of faulty rows of the same spec, for evaluation only.
    """

    healthy: npt.NDArray[np.float32]
    spec: FeatureSpec
    source: Mapping[str, Any]
    faulty: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train (defaults: the factory architecture).

    Attributes:
        model_id: Id of the model.
        hidden: Autoencoder hidden layer sizes down to the bottleneck.
        epochs: Most training epochs (early stopping usually ends sooner).
        batch_size: Rows per training step.
        random_state: Seed of every random choice.
        false_alarm_rate: Target share of healthy windows above the threshold.
        held_out_fraction: Newest share of the healthy rows kept for evaluation.
        min_healthy_windows: Fewer healthy rows than this: training is refused.
        auc_margin: The gate's allowed AUC loss against the champion.
        limits: What the devices can run.
    """

    model_id: str = "vibewatch-ae"
    hidden: tuple[int, ...] = (32, 8)
    epochs: int = 200
    batch_size: int = 64
    random_state: int = 0
    false_alarm_rate: float = 0.001
    held_out_fraction: float = 0.2
    min_healthy_windows: int = 256
    auc_margin: float = 0.005
    limits: DeviceLimits = field(default_factory=DeviceLimits)

    def autoencoder(self) -> AutoencoderDetector:
        """The unfitted detector these settings describe."""
        return AutoencoderDetector(
            hidden=self.hidden,
            epochs=self.epochs,
            batch_size=self.batch_size,
            false_alarm_rate=self.false_alarm_rate,
            random_state=self.random_state,
        )


@dataclass(frozen=True)
class TrainedModel:
    """The outcome of :func:`train`.

    Attributes:
        package: The signed package written to ``OUT/package``.
        engine: Its blob bound to the C engine.
        held_out: The evaluation data.
        int8: int8 scores on the evaluation data.
        float_scores: Float scores of the same rows (healthy, then each faulty set).
        metrics: The manifest's ``metrics``.
        detector: The fitted float autoencoder (its ``history_`` holds the loss per epoch).
        tail: How the int8 threshold was estimated.
        seconds_per_calibration_window: Seconds of healthy recording that one calibration
            window stands for (None: the source does not say).
    """

    package: ModelPackage
    engine: Model
    held_out: HeldOut
    int8: Scores
    float_scores: Scores
    metrics: dict[str, Any]
    detector: AutoencoderDetector
    tail: TailEstimate
    seconds_per_calibration_window: float | None = None


def split_held_out(
    healthy: npt.ArrayLike, settings: TrainSettings
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The training rows and the newest ``held_out_fraction`` kept for evaluation.

    Raises:
        DataError: Fewer healthy rows than ``min_healthy_windows`` (the message has the
            count), or a fraction outside (0, 1).
    """
    rows = as_features(healthy)
    if len(rows) < settings.min_healthy_windows:
        raise DataError(
            f"only {len(rows)} healthy windows available; training needs at least "
            f"{settings.min_healthy_windows} (train.min_healthy_windows)"
        )
    if not 0.0 < settings.held_out_fraction < 1.0:
        raise DataError(f"held-out fraction {settings.held_out_fraction} is not in (0, 1)")
    n_test = max(1, round(len(rows) * settings.held_out_fraction))
    return rows[:-n_test], rows[-n_test:]


def toolchain() -> dict[str, str]:
    """Versions of the libraries a package's bytes depend on."""
    from vibewatch import __version__
    from vibewatch.edge.tf_export import tensorflow

    return {
        "vibewatch": __version__,
        "tensorflow": tensorflow().__version__,
        "numpy": np.__version__,
    }


def detector_scores(detector: Detector, data: HeldOut) -> Scores:
    """Float scores of a fitted detector on ``data``, at its own threshold."""
    return Scores.by(detector.anomaly_score, detector.threshold_, data)


def _baselines(train: npt.NDArray[np.float32], data: HeldOut, seed: int) -> dict[str, Any]:
    """AUC, false-alarm rate and detected shares of the baseline detectors on the same
    split, each at its own threshold for the same target."""
    found: dict[str, Any] = {}
    baselines: dict[str, Detector] = {
        "pca": PCADetector(random_state=seed),
        "isolation_forest": IsolationForestDetector(random_state=seed),
    }
    for name, detector in baselines.items():
        scores = detector_scores(detector.fit(train), data)
        found[name] = {"far": scores.far, "detected": scores.detected(), **_auc_summary(scores)}
    return found


def _auc_summary(scores: Scores) -> dict[str, Any]:
    aucs = scores.auc()
    return {"auc": aucs, "auc_min": min(aucs.values()) if aucs else None}


def train(
    data: TrainingData,
    settings: TrainSettings,
    *,
    version: int,
    private_key: Ed25519PrivateKey,
    out_dir: Path,
    phases: Phases = _quiet,
) -> TrainedModel:
    """Train, export, evaluate and sign a model; write the package to ``out_dir/package``.

    Raises:
        DataError: Too few healthy windows, or rows that do not match the spec.
        PackageError: The package cannot be written (``out_dir/package`` is not empty...).
    """
    step = phases("split")
    train_rows, test_rows = split_held_out(data.healthy, settings)
    n = data.spec.n_features
    if train_rows.shape[1] != n:
        raise DataError(f"healthy rows have {train_rows.shape[1]} features, the spec {n}")
    held_out = HeldOut(
        test_rows, {name: as_features(rows, n) for name, rows in data.faulty.items()}
    )
    step(1, 1)

    detector = settings.autoencoder().fit(train_rows, progress=phases("fit"))

    step = phases("export")
    int8 = export_int8(detector, train_rows, data.spec, model_id=settings.model_id, version=version)
    step(1, 1)

    step = phases("evaluate")
    engine = int8.engine
    int8_scores = Scores.of(engine, held_out)
    float_scores = detector_scores(detector, held_out)
    fit_rows, calibration_rows = detector.split(train_rows)
    metrics: dict[str, Any] = {
        "held_out_healthy_windows": len(test_rows),
        "faulty_windows": {name: len(rows) for name, rows in held_out.faulty.items()},
        "far": int8_scores.far,
        "far_float": float_scores.far,
        "threshold_float": detector.threshold_,
        "tail": int8.tail.as_json(),
        "detected": int8_scores.detected(),
        **_auc_summary(int8_scores),
        "auc_float": float_scores.auc(),
        "baselines": _baselines(train_rows, held_out, settings.random_state),
        "training": {
            "fit_windows": len(fit_rows),
            "calibration_windows": len(calibration_rows),
            "epochs_run": detector.epochs_run_,
            "best_val_loss": min(detector.history_["val_loss"]),
        },
    }
    step(1, 1)

    step = phases("package")
    manifest = {
        **blob_fields(engine),
        "architecture": {"kind": "dense_autoencoder", "dims": detector.dims()},
        "false_alarm_target": settings.false_alarm_rate,
        "metrics": metrics,
        "training_data": {**data.source, "windows": len(data.healthy)},
        "toolchain": toolchain(),
        "golden": golden_vectors(engine, int8.golden_inputs),
    }
    package = write_package(
        out_dir / PACKAGE_DIR,
        tflite=int8.tflite,
        vwm=int8.vwm,
        manifest=manifest,
        private_key=private_key,
    )
    step(1, 1)
    per = _recorded_seconds(data.source)
    return TrainedModel(
        package=package,
        engine=engine,
        held_out=held_out,
        int8=int8_scores,
        float_scores=float_scores,
        metrics=metrics,
        detector=detector,
        tail=int8.tail,
        seconds_per_calibration_window=None
        if per is None
        else per * len(data.healthy) / len(calibration_rows),
    )


def _recorded_seconds(source: Mapping[str, Any]) -> float | None:
    """Seconds of recording per window of a source of recordings (None: another source)."""
    entries = source.get("recordings") if source.get("source") == "recordings" else None
    if not entries:
        return None
    windows = sum(int(e["windows"]) for e in entries)
    seconds = sum(int(e["windows"]) * int(e["hop"]) / int(e["sample_rate_hz"]) for e in entries)
    return seconds / windows if windows else None


def register(
    trained: TrainedModel, registry: Registry, settings: TrainSettings
) -> tuple[RegistryEntry, Decision]:
    """File the package as a candidate; promote or reject it by the quality gate.

    The champion, if any, is scored on the candidate's held-out data.
    """
    entry = registry.register(trained.package.path)
    current = registry.champion(entry.model_id)
    champion = Model(registry.load(current.model_id, current.version).vwm) if current else None
    decision = decide(
        trained.engine,
        champion,
        trained.held_out,
        false_alarm_rate=settings.false_alarm_rate,
        auc_margin=settings.auc_margin,
        limits=settings.limits,
        tail=trained.tail,
        seconds_per_window=trained.seconds_per_calibration_window,
    )
    reason = "; ".join(decision.reasons)
    if decision.promote:
        entry = registry.promote(entry.model_id, entry.version, reason)
    else:
        entry = registry.reject(entry.model_id, entry.version, reason)
    return entry, decision


def evaluate(
    engine: Model, healthy: npt.ArrayLike, faulty: Mapping[str, npt.ArrayLike]
) -> dict[str, Any]:
    """int8 false-alarm rate on ``healthy`` and, per faulty set, AUC and detected share.

    Returns:
        ``{"far": ..., "threshold": ..., "healthy_windows": ..., "files": [{"path",
        "auc", "detected", "windows"}, ...]}``.
    """
    n = engine.n_features
    data = HeldOut(
        as_features(healthy, n), {name: as_features(rows, n) for name, rows in faulty.items()}
    )
    scores = Scores.of(engine, data)
    aucs, detected = scores.auc(), scores.detected()
    files = [
        {"path": name, "auc": aucs[name], "detected": detected[name], "windows": len(rows)}
        for name, rows in scores.faulty.items()
    ]
    return {
        "far": scores.far,
        "threshold": engine.threshold,
        "healthy_windows": len(scores.healthy),
        "files": files,
    }
