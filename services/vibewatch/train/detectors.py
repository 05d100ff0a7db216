"""Anomaly detectors trained on healthy feature vectors, in the scikit-learn estimator style.

Every detector follows one contract (checked by one conformance suite):

* ``__init__`` stores its keyword hyperparameters unchanged (``get_params``/``clone`` work);
* :meth:`Detector.fit` learns from healthy rows in time order and returns ``self``; learned
  state ends in ``_``;
* the per-feature normalisation (``mean_``, ``std_``) and the score threshold
  (``threshold_``) are learned in ``fit`` and belong to the detector;
* the same ``random_state`` gives the same fit.

``fit`` keeps the newest ``calibration_fraction`` of the rows (half, by default) out of
training and sets the threshold on their scores for the target ``false_alarm_rate`` from
the fitted upper tail (:func:`~vibewatch.train.tail.tail_threshold`): the threshold meets
windows recorded after those the detector learned from, as on a device, and
``docs/training.md`` says why. Scores are higher for more anomalous windows; a window is
anomalous when its score is above the threshold.

Implementations: :class:`AutoencoderDetector` (the model the devices run; Keras, exported
to int8 by :mod:`vibewatch.train.export`), and two baselines, :class:`PCADetector` and
:class:`IsolationForestDetector`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from vibewatch.errors import DataError
from vibewatch.train.tail import TailEstimate, tail_threshold

#: Progress of a fit: ``(steps done, steps in total)``.
Progress = Callable[[int, int], None]

#: Fewest rows ``fit`` accepts: enough for a training part and a calibration part.
MIN_ROWS = 16
#: A feature's standard deviation is taken as at least this share of its mean magnitude (and
#: at least :data:`STD_FLOOR_ABSOLUTE`), so a feature that is constant in training, such as the
#: RMS of amplitude-normalised windows, is not blown up into rounding noise.
STD_FLOOR_RELATIVE = 1e-3
STD_FLOOR_ABSOLUTE = 1e-6
#: Smallest residual standard deviation a feature is scaled by (in normalised units), so a
#: feature the first network reconstructs almost perfectly is not magnified without bound.
RESIDUAL_FLOOR = 0.05
Array = npt.NDArray[np.float32]


def as_features(values: npt.ArrayLike, n_features: int | None = None) -> Array:
    """Feature rows as a C-contiguous float32 ``[n, f]`` array, refused if not finite.

    Raises:
        DataError: Not two-dimensional, wrong width, or a value that is not finite (the
            message names row, column and value).
    """
    try:
        rows = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"feature rows are not numeric: {exc}") from exc
    if rows.ndim != 2:
        raise DataError(f"feature rows must be a 2-D array, got shape {rows.shape}")
    if n_features is not None and rows.shape[1] != n_features:
        raise DataError(f"expected rows of {n_features} features, got shape {rows.shape}")
    bad = np.argwhere(~np.isfinite(rows))
    if len(bad):
        r, c = (int(v) for v in bad[0])
        raise DataError(f"feature row {r}, column {c} is not finite: {rows[r, c]}")
    return rows


class Detector(BaseEstimator, ABC):  # type: ignore[misc]
    """The interface of every detector (see the module docstring).

    Attributes (after ``fit``):
        n_features_in_: Width of the rows.
        mean_: Per-feature mean of the training rows.
        std_: Per-feature scale of the normalisation: the standard deviation of the
            training rows (floored, > 0), which a detector may refine.
        threshold_: Score threshold for ``false_alarm_rate``.
        tail_: How the threshold was estimated.
        calibration_scores_: Scores of the held-out calibration rows.
    """

    false_alarm_rate: float
    calibration_fraction: float
    random_state: int

    n_features_in_: int
    mean_: npt.NDArray[np.float64]
    std_: npt.NDArray[np.float64]
    threshold_: float
    tail_: TailEstimate
    calibration_scores_: Array

    def split(self, values: npt.ArrayLike) -> tuple[Array, Array]:
        """The rows ``fit`` trains on and the newest rows it calibrates the threshold on."""
        rows = as_features(values)
        if not 0.0 < self.calibration_fraction < 1.0:
            raise DataError(f"calibration_fraction {self.calibration_fraction} is not in (0, 1)")
        if len(rows) < MIN_ROWS:
            raise DataError(f"{len(rows)} feature rows; a detector needs at least {MIN_ROWS}")
        n_cal = max(1, round(len(rows) * self.calibration_fraction))
        return rows[:-n_cal], rows[-n_cal:]

    def fit(self, X: npt.ArrayLike, y: object = None, *, progress: Progress | None = None) -> Self:
        """Learn normalisation, model and threshold from healthy rows in time order.

        Args:
            X: Healthy feature rows ``[n, f]``, oldest first.
            y: Ignored (the training data is healthy by definition).
            progress: Called with ``(done, total)`` as training advances.

        Returns:
            ``self``.

        Raises:
            DataError: Too few rows, a value that is not finite, a bad hyperparameter.
        """
        fit_rows, calibration_rows = self.split(X)
        self.n_features_in_ = int(fit_rows.shape[1])
        self.mean_ = fit_rows.mean(axis=0, dtype=np.float64)
        std = fit_rows.std(axis=0, dtype=np.float64)
        floor = np.maximum(STD_FLOOR_RELATIVE * np.abs(self.mean_), STD_FLOOR_ABSOLUTE)
        self.std_ = np.maximum(std, floor)
        self._fit_normalised(self.normalise(fit_rows), progress or (lambda done, total: None))
        self.calibration_scores_ = self.anomaly_score(calibration_rows)
        self.tail_ = tail_threshold(self.calibration_scores_, self.false_alarm_rate)
        self.threshold_ = self.tail_.threshold
        return self

    def normalise(self, values: npt.ArrayLike) -> Array:
        """``(x - mean_) / std_`` of feature rows, as float32."""
        self._check_fitted()
        rows = as_features(values, self.n_features_in_)
        return ((rows - self.mean_) / self.std_).astype(np.float32)

    def anomaly_score(self, X: npt.ArrayLike) -> Array:
        """Scores of feature rows (float32 ``[n]``); higher is more anomalous."""
        return self._score_normalised(self.normalise(X)).astype(np.float32)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """True for rows whose score is above ``threshold_``."""
        return np.asarray(self.anomaly_score(X) > self.threshold_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "std_"):
            raise DataError(f"{type(self).__name__} is not fitted yet: call fit() first")

    @abstractmethod
    def _fit_normalised(self, rows: Array, progress: Progress) -> None:
        """Learn the model from normalised training rows."""

    @abstractmethod
    def _score_normalised(self, rows: Array) -> npt.NDArray[Any]:
        """Scores of normalised rows."""


def _mse(rows: Array, reconstruction: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Mean squared reconstruction error per row, the score the device engine computes."""
    diff = rows.astype(np.float64) - np.asarray(reconstruction, dtype=np.float64)
    return np.asarray(np.mean(diff * diff, axis=1))


class AutoencoderDetector(Detector):
    """A dense Keras autoencoder; the score is the mean squared error in normalised space.

    The network is ``f -> hidden[0] -> ... -> hidden[-1] -> ... -> hidden[0] -> f`` with
    ReLU on every hidden layer and a linear output, trained with Adam on the mean squared
    error in shuffled mini-batches; training stops early when the loss on the newest
    ``validation_fraction`` of the training rows has not improved for ``patience`` epochs,
    and the weights of the best epoch are kept.

    With ``residual_weighting`` (the default), a first network trained for a quarter of the
    epochs measures how well each feature can be reconstructed, and each feature is then
    scaled by the standard deviation of its residual (at least :data:`RESIDUAL_FLOOR`)
    before the network is trained again from scratch; ``std_`` holds the product. Features
    that are mostly noise, such as the power of a single FFT bin in a short window, then no
    longer drown those the network predicts well: the score approaches a sum of
    standardised residuals, and the int8 input range is spent where it matters.

    Fits are repeatable: TensorFlow runs with its deterministic ops and ``random_state``
    seeds every generator.

    Attributes (after ``fit``, besides those of :class:`Detector`):
        model_: The Keras model (input: normalised rows).
        history_: Per-epoch ``loss`` and ``val_loss`` of the final training.
        epochs_run_: Epochs trained in all, the weighing pass included.
    """

    model_: Any
    history_: dict[str, list[float]]
    epochs_run_: int

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (32, 8),
        epochs: int = 200,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        patience: int = 12,
        validation_fraction: float = 0.15,
        residual_weighting: bool = True,
        false_alarm_rate: float = 0.001,
        calibration_fraction: float = 0.5,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.residual_weighting = residual_weighting
        self.false_alarm_rate = false_alarm_rate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def dims(self) -> list[int]:
        """Layer widths from input to output."""
        self._check_fitted()
        hidden = [int(h) for h in self.hidden]
        return [self.n_features_in_, *hidden, *hidden[-2::-1], self.n_features_in_]

    def _fit_normalised(self, rows: Array, progress: Progress) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise DataError(f"hidden layer sizes {tuple(self.hidden)} must be positive")
        if not 0.0 < self.validation_fraction < 1.0:
            raise DataError(f"validation_fraction {self.validation_fraction} is not in (0, 1)")
        first = max(1, self.epochs // 4) if self.residual_weighting else 0
        total = first + self.epochs
        self.epochs_run_ = 0
        if first:
            model, history = self._train(rows, first, lambda done: progress(done, total))
            self.epochs_run_ = len(history["loss"])
            residual = np.std(rows - model(rows, training=False).numpy(), axis=0)
            scale = np.maximum(residual, RESIDUAL_FLOOR)
            self.std_ = self.std_ * scale
            rows = (rows / scale).astype(np.float32)
        self.model_, self.history_ = self._train(
            rows, self.epochs, lambda done: progress(first + done, total)
        )
        self.epochs_run_ += len(self.history_["loss"])
        progress(total, total)

    def _train(
        self, rows: Array, epochs: int, progress: Callable[[int], None]
    ) -> tuple[Any, dict[str, list[float]]]:
        """A freshly initialised network trained on ``rows``, and its loss per epoch."""
        from vibewatch.edge.tf_export import dense_autoencoder, tensorflow

        tf = tensorflow()
        tf.config.experimental.enable_op_determinism()
        model = dense_autoencoder(self.dims(), seed=self.random_state)
        n_val = max(1, round(len(rows) * self.validation_fraction))
        train, validation = rows[:-n_val], tf.constant(rows[-n_val:])
        batch = max(1, min(int(self.batch_size), len(train)))
        n_batches = len(train) // batch
        optimizer = tf.keras.optimizers.Adam(self.learning_rate)
        weights = model.trainable_variables

        # One graph call per epoch: Keras' fit() costs a fixed ~0.3 s per epoch on top.
        @tf.function  # type: ignore[untyped-decorator]
        def epoch(shuffled: Any) -> tuple[Any, Any]:
            total = tf.constant(0.0)
            for i in tf.range(n_batches):
                x = shuffled[i * batch : (i + 1) * batch]
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(model(x, training=True) - x))
                optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
                total += loss
            return total / n_batches, tf.reduce_mean(tf.square(model(validation) - validation))

        rng = np.random.default_rng(self.random_state)
        history: dict[str, list[float]] = {"loss": [], "val_loss": []}
        best, best_weights, waited = np.inf, model.get_weights(), 0
        for done in range(1, epochs + 1):
            loss, val_loss = epoch(tf.constant(train[rng.permutation(len(train))]))
            history["loss"].append(float(loss))
            history["val_loss"].append(float(val_loss))
            progress(done)
            if float(val_loss) < best:
                best, best_weights, waited = float(val_loss), model.get_weights(), 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        model.set_weights(best_weights)
        return model, history

    def _score_normalised(self, rows: Array) -> npt.NDArray[Any]:
        return _mse(rows, self.model_(rows, training=False).numpy())


class PCADetector(Detector):
    """Baseline: reconstruction error of a PCA with ``n_components`` components."""

    pca_: PCA

    def __init__(
        self,
        *,
        n_components: int = 8,
        false_alarm_rate: float = 0.001,
        calibration_fraction: float = 0.5,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.false_alarm_rate = false_alarm_rate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def _fit_normalised(self, rows: Array, progress: Progress) -> None:
        k = min(self.n_components, rows.shape[1], len(rows))
        self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(rows)
        progress(1, 1)

    def _score_normalised(self, rows: Array) -> npt.NDArray[Any]:
        return _mse(rows, self.pca_.inverse_transform(self.pca_.transform(rows)))


class IsolationForestDetector(Detector):
    """Baseline: an isolation forest; the score is the negated scikit-learn sample score."""

    forest_: IsolationForest

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        false_alarm_rate: float = 0.001,
        calibration_fraction: float = 0.5,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.false_alarm_rate = false_alarm_rate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def _fit_normalised(self, rows: Array, progress: Progress) -> None:
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(rows)
        progress(1, 1)

    def _score_normalised(self, rows: Array) -> npt.NDArray[Any]:
        return -np.asarray(self.forest_.score_samples(rows))
