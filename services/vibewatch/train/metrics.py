"""Scores to decisions: the threshold for a false-alarm target, AUC, alarm and detection rates.

A window is anomalous when its score is **above** the threshold, as on the device
(``docs/vwm-format.md``).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

from vibewatch.errors import DataError


def _scores(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise DataError(f"no {what} scores")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataError(f"{what} score {bad} is not finite: {array[bad]}")
    return array


def calibrate_threshold(healthy: npt.ArrayLike, false_alarm_rate: float) -> float:
    """The lowest score threshold that keeps the alarm rate on ``healthy`` at or below target.

    With ``n`` healthy scores, at most ``floor(false_alarm_rate * n)`` of them lie above the
    threshold, which is one of the scores itself: with few windows the threshold is the
    largest healthy score, so the target is never met by luck of interpolation.

    Args:
        healthy: Scores of held-out healthy windows (not used for fitting).
        false_alarm_rate: Target share of healthy windows above the threshold, in ``(0, 1)``.

    Returns:
        The threshold, a float that is exactly one of the given scores.
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise DataError(f"false-alarm rate {false_alarm_rate} is not in (0, 1)")
    ordered = np.sort(_scores(healthy, "healthy"))
    allowed = math.floor(false_alarm_rate * len(ordered))
    return float(ordered[len(ordered) - 1 - allowed])


def alarm_rate(scores: npt.ArrayLike, threshold: float) -> float:
    """Share of windows whose score is above ``threshold``."""
    return float(np.mean(_scores(scores, "window") > threshold))


def auc(healthy: npt.ArrayLike, faulty: npt.ArrayLike) -> float:
    """Area under the ROC curve of faulty (positive) against healthy windows; ties count half."""
    h = _scores(healthy, "healthy")
    f = _scores(faulty, "faulty")
    labels = np.r_[np.zeros(len(h)), np.ones(len(f))]
    return float(roc_auc_score(labels, np.r_[h, f]))


def roc(
    healthy: npt.ArrayLike, faulty: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """False-positive and true-positive rates of the ROC curve (for plots)."""
    h = _scores(healthy, "healthy")
    f = _scores(faulty, "faulty")
    fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(h)), np.ones(len(f))], np.r_[h, f])
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
