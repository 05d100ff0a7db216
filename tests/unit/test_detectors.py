"""One conformance suite for every detector, plus the threshold and metric helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from vibewatch.errors import DataError
from vibewatch.train.detectors import (
    RESIDUAL_FLOOR,
    AutoencoderDetector,
    Detector,
    IsolationForestDetector,
    PCADetector,
)
from vibewatch.train.metrics import alarm_rate, auc, calibrate_threshold
from vibewatch.train.tail import tail_threshold

N_FEATURES = 12


def healthy_rows(n: int, seed: int = 0) -> np.ndarray:
    """Rows on a 3-dimensional subspace plus noise, with features of very different scales."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    mixing = np.random.default_rng(99).normal(size=(3, N_FEATURES))
    scales = np.geomspace(1e-3, 1e3, N_FEATURES)
    rows = (latent @ mixing + 0.05 * rng.normal(size=(n, N_FEATURES))) * scales + 5 * scales
    return rows.astype(np.float32)


def faulty_rows(n: int, seed: int = 1) -> np.ndarray:
    """Healthy rows with a few features pushed off the healthy subspace."""
    rows = healthy_rows(n, seed).astype(np.float64)
    scales = np.geomspace(1e-3, 1e3, N_FEATURES)
    rows[:, 2] += 6.0 * scales[2]
    rows[:, 7] -= 6.0 * scales[7]
    return rows.astype(np.float32)


DETECTORS: list[Detector] = [
    AutoencoderDetector(hidden=(8, 3), epochs=60, batch_size=32, patience=8),
    PCADetector(n_components=3),
    IsolationForestDetector(n_estimators=50),
]
IDS = [type(d).__name__ for d in DETECTORS]


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return healthy_rows(960)  # 480 to fit on, the newest 480 to calibrate on


@pytest.fixture(scope="module", params=DETECTORS, ids=IDS)
def fitted(request: pytest.FixtureRequest, train: np.ndarray) -> Detector:
    detector: Detector = clone(request.param)
    return detector.fit(train)


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_init_stores_hyperparameters_and_learns_nothing(detector: Detector) -> None:
    params = detector.get_params()
    fresh = type(detector)(**params)
    assert fresh.get_params() == params
    assert not [k for k in vars(fresh) if k.endswith("_")]
    with pytest.raises(DataError, match="not fitted"):
        fresh.anomaly_score(healthy_rows(4))


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_fit_returns_self_and_learns_state_ending_in_underscore(
    detector: Detector, train: np.ndarray
) -> None:
    mine = clone(detector)
    assert mine.fit(train) is mine
    learned = {k for k in vars(mine) if k.endswith("_")}
    assert {"mean_", "std_", "threshold_", "n_features_in_", "calibration_scores_"} <= learned
    assert mine.n_features_in_ == N_FEATURES
    assert np.all(mine.std_ > 0)


def test_normalisation_is_learned_on_the_training_part(fitted: Detector, train: np.ndarray) -> None:
    part, _ = fitted.split(train)
    np.testing.assert_allclose(fitted.mean_, part.mean(axis=0, dtype=np.float64), rtol=1e-6)
    z = fitted.normalise(part)
    np.testing.assert_allclose(z, (part - fitted.mean_) / fitted.std_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    if not getattr(fitted, "residual_weighting", False):
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)


def test_residual_weighting_evens_out_the_reconstruction_errors() -> None:
    """Six features follow two latent factors, six are pure noise (like single-bin bands):
    unweighted, the noise dominates the residual; weighted, far less."""
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(1500, 2))
    structured = latent @ rng.normal(size=(2, 6)) + 0.05 * rng.normal(size=(1500, 6))
    rows = np.hstack([structured, rng.normal(size=(1500, 6))]).astype(np.float32)

    def spread(detector: AutoencoderDetector) -> np.ndarray:
        part, _ = detector.split(rows)
        z = detector.normalise(part)
        return np.std(z - detector.model_(z, training=False).numpy(), axis=0)

    kw: dict[str, Any] = {"hidden": (8, 2), "epochs": 60, "calibration_fraction": 0.2}
    plain = AutoencoderDetector(residual_weighting=False, **kw).fit(rows)
    weighted = AutoencoderDetector(**kw).fit(rows)
    part, _ = plain.split(rows)
    np.testing.assert_allclose(plain.std_, part.std(axis=0, dtype=np.float64), rtol=1e-5)
    assert np.all(weighted.std_ / plain.std_ >= RESIDUAL_FLOOR * (1 - 1e-6))
    before, after = spread(plain), spread(weighted)
    assert before[6:].min() > 2 * before[:6].max()  # noise drowns the structure...
    # ...much less so once each feature is weighed by its residual
    assert after.max() / after.min() < 0.6 * before.max() / before.min()


def test_threshold_is_calibrated_on_held_out_rows(fitted: Detector, train: np.ndarray) -> None:
    _, held_out = fitted.split(train)
    scores = fitted.anomaly_score(held_out)
    np.testing.assert_array_equal(scores, fitted.calibration_scores_)
    assert fitted.tail_ == tail_threshold(scores, fitted.false_alarm_rate)
    assert fitted.threshold_ == fitted.tail_.threshold
    assert alarm_rate(scores, fitted.threshold_) <= fitted.false_alarm_rate


def test_separates_faulty_from_healthy(fitted: Detector) -> None:
    healthy = fitted.anomaly_score(healthy_rows(300, seed=5))
    faulty = fitted.anomaly_score(faulty_rows(300))
    # The isolation forest is the weakest here: points beyond the training range all
    # isolate at the same depth, however far out they are.
    assert auc(healthy, faulty) > 0.85
    assert alarm_rate(healthy, fitted.threshold_) <= 0.05
    rows = faulty_rows(300)
    np.testing.assert_array_equal(
        fitted.predict(rows), fitted.anomaly_score(rows) > fitted.threshold_
    )


def test_scores_are_float32_rows(fitted: Detector) -> None:
    scores = fitted.anomaly_score(healthy_rows(7))
    assert scores.shape == (7,)
    assert scores.dtype == np.float32


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_same_random_state_same_fit(detector: Detector, train: np.ndarray) -> None:
    probe = faulty_rows(50)
    a = clone(detector).fit(train).anomaly_score(probe)
    b = clone(detector).fit(train).anomaly_score(probe)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.zeros((5, N_FEATURES)), "at least 16"),
        (np.zeros(40), "2-D"),
        (np.full((40, N_FEATURES), np.nan), r"row 0, column 0 is not finite: nan"),
        ([["a"] * N_FEATURES] * 40, "not numeric"),
    ],
)
@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_fit_refuses_bad_rows(detector: Detector, rows: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        clone(detector).fit(rows)


def test_scoring_refuses_other_widths_and_nan(fitted: Detector) -> None:
    with pytest.raises(DataError, match=f"expected rows of {N_FEATURES} features"):
        fitted.anomaly_score(np.zeros((3, N_FEATURES + 1)))
    rows = healthy_rows(3)
    rows[1, 4] = np.inf
    with pytest.raises(DataError, match="row 1, column 4 is not finite: inf"):
        fitted.anomaly_score(rows)


def test_constant_feature_is_not_blown_up(train: np.ndarray) -> None:
    rows = train.copy()
    rows[:, 0] = 1.0  # like the RMS of amplitude-normalised windows
    detector = PCADetector(n_components=3).fit(rows)
    probe = healthy_rows(20, seed=3)
    probe[:, 0] = 1.0 + 1e-6
    assert np.all(np.abs(detector.normalise(probe)[:, 0]) < 1.0)


def test_autoencoder_history_and_dims(train: np.ndarray) -> None:
    detector = AutoencoderDetector(hidden=(8, 3), epochs=5, patience=100).fit(train)
    assert detector.dims() == [N_FEATURES, 8, 3, 8, N_FEATURES]
    assert len(detector.history_["loss"]) == 5
    assert len(detector.history_["val_loss"]) == 5
    assert detector.epochs_run_ == 5 + 1  # and a quarter of them (at least 1) to weigh features


def test_autoencoder_early_stopping_keeps_the_best_epoch(train: np.ndarray) -> None:
    detector = AutoencoderDetector(hidden=(8, 3), epochs=400, patience=3, learning_rate=0.05)
    steps: list[tuple[int, int]] = []
    detector.fit(train, progress=lambda done, total: steps.append((done, total)))
    losses = detector.history_["val_loss"]
    assert len(losses) < 400
    best = int(np.argmin(losses))
    assert best == len(losses) - 1 - 3
    assert steps[-1] == (400 + 100, 400 + 100)  # a quarter of the epochs to weigh features
    part, _ = detector.split(train)
    z = detector.normalise(part[-max(1, round(len(part) * 0.15)) :])
    mse = float(np.mean((z - detector.model_.predict_on_batch(z)) ** 2))
    assert mse == pytest.approx(losses[best], rel=1e-4)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden": ()}, "hidden layer sizes"),
        ({"hidden": (4, 0)}, "hidden layer sizes"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"calibration_fraction": 0.0}, "calibration_fraction"),
        ({"false_alarm_rate": 0.0}, "false-alarm rate"),
    ],
)
def test_autoencoder_refuses_bad_hyperparameters(
    params: dict[str, Any], message: str, train: np.ndarray
) -> None:
    with pytest.raises(DataError, match=message):
        AutoencoderDetector(epochs=1, **params).fit(train)


def test_calibrate_threshold_keeps_the_target() -> None:
    scores = np.arange(1000, dtype=np.float64)
    assert calibrate_threshold(scores, 0.005) == 994.0  # 5 scores above
    assert calibrate_threshold(scores[:100], 0.005) == 99.0  # too few: the largest
    assert calibrate_threshold(scores[:100], 0.02) == 97.0
    for rate in (0.001, 0.01, 0.1, 0.3):
        assert alarm_rate(scores, calibrate_threshold(scores, rate)) <= rate


def test_metrics_refuse_empty_and_nan() -> None:
    with pytest.raises(DataError, match="no healthy scores"):
        calibrate_threshold([], 0.01)
    with pytest.raises(DataError, match="faulty score 1 is not finite: nan"):
        auc([0.0, 1.0], [1.0, np.nan])


def test_auc_counts_ties_half() -> None:
    assert auc([0, 1], [2, 3]) == 1.0
    assert auc([2, 3], [0, 1]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5
