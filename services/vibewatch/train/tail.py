"""The upper tail of healthy scores: thresholds for a false-alarm target beyond what the
sample resolves, by peaks over threshold (as SPOT does: Siffer et al., KDD 2017).

The ``k`` largest of ``n`` healthy scores (``k`` = 10 % of them, at least
:data:`MIN_EXCESSES`, at most half) lie above an initial threshold ``u``, the next score
down; their excesses over ``u`` are fitted with a generalised Pareto distribution
(shape ``gamma``, scale ``sigma``, maximum likelihood). The score exceeded with
probability ``q`` is then::

    z_q = u + sigma / gamma * ((q * n / k) ** -gamma - 1)     (gamma != 0)
    z_q = u + sigma * ln(k / (q * n))                        (gamma == 0)

Two choices make the threshold one that holds on unseen healthy data rather than on the
sample it came from:

* a fitted ``gamma < 0`` (a tail with an end) is taken as 0, the exponential tail: from
  a few dozen excesses the end of a bounded tail is placed too low, and healthy data
  recorded later, under slightly other conditions, goes past it;
* ``sigma`` is replaced by its one-sided upper confidence bound at :data:`CONFIDENCE`
  (for the exponential tail ``2 k sigma / chi2(1 - CONFIDENCE, 2 k)``, exact), so a
  threshold set on few windows is higher, not luckier.

When the fit is poor (too few excesses, or the Kolmogorov-Smirnov test rejects the
fitted distribution at the 5 % level) the threshold falls back to the empirical quantile
(:func:`~vibewatch.train.metrics.calibrate_threshold`) and the estimate says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2, genpareto, kstest

from vibewatch.errors import DataError
from vibewatch.train.metrics import calibrate_threshold

__all__ = ["CONFIDENCE", "MIN_EXCESSES", "TailEstimate", "exceedance", "tail_threshold"]

#: Fewest scores above the initial threshold a tail is fitted to.
MIN_EXCESSES: Final = 10
#: Share of the scores the initial threshold leaves above it.
TAIL_SHARE: Final = 0.10
#: One-sided confidence of the scale's upper bound.
CONFIDENCE: Final = 0.90
#: Below this Kolmogorov-Smirnov p-value the fit is rejected.
MIN_FIT_P: Final = 0.05


@dataclass(frozen=True)
class TailEstimate:
    """A threshold for a false-alarm target and how it was found.

    Attributes:
        threshold: The score threshold.
        target: The false-alarm target it is for.
        method: ``pot`` (the fitted tail) or ``empirical`` (the fallback).
        n: Scores it was estimated from.
        excesses: Scores above the initial threshold (``k``).
        u: The initial threshold.
        gamma: The fitted shape (before taking a negative one as 0).
        sigma: The scale used (the upper confidence bound).
        fit_p: The Kolmogorov-Smirnov p-value of the fit (None: not fitted).
        note: Why the fallback was taken, or empty.
    """

    threshold: float
    target: float
    method: str
    n: int
    excesses: int
    u: float
    gamma: float
    sigma: float
    fit_p: float | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data (the manifest's ``metrics.tail``)."""
        return {
            "threshold": self.threshold,
            "target": self.target,
            "method": self.method,
            "n": self.n,
            "excesses": self.excesses,
            "u": self.u,
            "gamma": self.gamma,
            "sigma": self.sigma,
            "fit_p": self.fit_p,
            "note": self.note,
        }

    def survival(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The estimated share of healthy windows above each score (the fitted tail
        above ``u``; for plots)."""
        x = np.asarray(scores, dtype=np.float64)
        base = self.excesses / self.n if self.n else 0.0
        gamma = max(self.gamma, 0.0)
        excess = np.maximum(x - self.u, 0.0)
        if gamma > 1e-9:
            tail = base * (1.0 + gamma * excess / self.sigma) ** (-1.0 / gamma)
        else:
            tail = base * np.exp(-excess / self.sigma)
        return np.asarray(np.where(x >= self.u, tail, np.nan), dtype=np.float64)


def _excesses(scores: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], float, int]:
    ordered = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if ordered.size == 0 or not np.all(np.isfinite(ordered)):
        raise DataError("the tail needs finite scores")
    n = len(ordered)
    k = min(max(MIN_EXCESSES, round(TAIL_SHARE * n)), n // 2)
    u = float(ordered[n - k - 1]) if n > k else float(ordered[0])
    return ordered, u, k


def _fit(excess: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Shape, scale and KS p-value of the generalised Pareto fit of ``excess``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gamma, _, sigma = genpareto.fit(excess, floc=0.0)
        p = float(kstest(excess, genpareto(gamma, 0.0, sigma).cdf).pvalue)
    return float(gamma), float(sigma), p


def _fits(gamma: float, sigma: float, p: float) -> bool:
    """Whether a fit is one to extrapolate from (finite, a positive scale, not rejected)."""
    return math.isfinite(gamma) and math.isfinite(sigma) and sigma > 0 and p >= MIN_FIT_P


def tail_threshold(scores: npt.ArrayLike, target: float) -> TailEstimate:
    """The threshold that healthy windows like ``scores`` exceed with probability
    ``target`` (see the module documentation).

    Raises:
        DataError: No scores, a score that is not finite, a target outside ``(0, 1)``.
    """
    if not 0.0 < target < 1.0:
        raise DataError(f"false-alarm rate {target} is not in (0, 1)")
    ordered, u, k = _excesses(scores)
    n = len(ordered)
    empirical = calibrate_threshold(ordered, target)

    def fallback(
        note: str, gamma: float = 0.0, sigma: float = 0.0, p: float | None = None
    ) -> TailEstimate:
        return TailEstimate(empirical, target, "empirical", n, k, u, gamma, sigma, p, note)

    if k < MIN_EXCESSES:
        return fallback(
            f"{n} scores leave {k} above the tail's start; a tail fit needs "
            f"{MIN_EXCESSES}: the threshold is the empirical quantile"
        )
    excess = ordered[n - k :] - u
    if not np.any(excess > 0):
        return fallback("the highest scores are all equal: the threshold is the largest")
    gamma, sigma, p = _fit(excess)
    if not _fits(gamma, sigma, p):
        return fallback(
            f"the tail does not fit a generalised Pareto distribution (Kolmogorov-Smirnov "
            f"p = {p:.3g}): the threshold is the empirical quantile",
            gamma,
            sigma,
            p,
        )
    ratio = target * n / k
    if gamma <= 0.0:
        scale = float(np.mean(excess)) * 2 * k / float(chi2.ppf(1 - CONFIDENCE, 2 * k))
        z = u + scale * math.log(1 / ratio)
    else:
        scale = sigma * 2 * k / float(chi2.ppf(1 - CONFIDENCE, 2 * k))
        z = u + scale / gamma * (ratio**-gamma - 1)
    return TailEstimate(float(z), target, "pot", n, k, u, gamma, scale, p)


def exceedance(scores: npt.ArrayLike, threshold: float) -> float:
    """The estimated share of healthy windows like ``scores`` above ``threshold``: the
    sample's share where it has some above, else that of the fitted tail as fitted (the
    maximum-likelihood estimate, without the conservative choices of
    :func:`tail_threshold`, which are for setting a threshold, not for judging one)."""
    ordered, u, k = _excesses(scores)
    n = len(ordered)
    above = int(np.sum(ordered > threshold))
    if above > 0 or k < MIN_EXCESSES or threshold <= u:
        return above / n
    excess = ordered[n - k :] - u
    if not np.any(excess > 0):
        return 0.0
    gamma, sigma, p = _fit(excess)
    if not _fits(gamma, sigma, p):
        return 0.0
    share = float(genpareto(gamma, 0.0, sigma).sf(threshold - u))
    return k / n * share
