"""The upper tail of healthy scores: thresholds for a false-alarm target beyond what the
sample resolves, by peaks over threshold (as SPOT does: Siffer et al., KDD 2017).

The rule is the firmware's (``vw_tail.h``, run through :mod:`vibewatch.edge.tail`), so
the training job sets a model's threshold exactly as a device sets its own with the
``calibrate`` command. The ``k`` largest of ``n`` healthy scores (``k`` = 10 % of them, at
least :data:`MIN_EXCESSES`, at most half) lie above an initial threshold ``u``, the next
score down; their excesses over ``u`` are fitted with a generalised Pareto distribution
(shape ``gamma``, scale ``sigma``, probability-weighted moments). The score exceeded with
probability ``q`` is then::

    z_q = u + sigma / gamma * ((q * n / k) ** -gamma - 1)     (gamma > 0)
    z_q = u + sigma * ln(k / (q * n))                        (gamma <= 0)

Two choices make the threshold one that holds on unseen healthy data rather than on the
sample it came from:

* a fitted ``gamma < 0`` (a tail with an end) is taken as 0, the exponential tail: from
  a few dozen excesses the end of a bounded tail is placed too low, and healthy data
  recorded later, under slightly other conditions, goes past it;
* ``sigma`` is replaced by its one-sided upper confidence bound at :data:`CONFIDENCE`
  (``2 k sigma / chi2(1 - CONFIDENCE, 2 k)``), so a threshold set on few windows is
  higher, not luckier.

When the fit is poor (too few excesses, or the Kolmogorov-Smirnov test rejects the
fitted distribution at the 5 % level) the threshold falls back to the empirical quantile
and the estimate says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vibewatch.edge.tail import TailFit, TailMethod, tail_constants, tail_fit
from vibewatch.errors import DataError, EdgeError

__all__ = ["CONFIDENCE", "MIN_EXCESSES", "TailEstimate", "exceedance", "tail_threshold"]

#: Fewest scores above the initial threshold a tail is fitted to.
MIN_EXCESSES: Final = tail_constants().min_excesses
#: One-sided confidence of the scale's upper bound.
CONFIDENCE: Final = tail_constants().confidence


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
        tail = base * _pareto_sf(x - self.u, max(self.gamma, 0.0), self.sigma)
        return np.asarray(np.where(x >= self.u, tail, np.nan), dtype=np.float64)


def _pareto_sf(excess: npt.ArrayLike, gamma: float, sigma: float) -> npt.NDArray[np.float64]:
    """The generalised Pareto survival function at ``excess`` (0 past a bounded tail's end)."""
    y = np.maximum(np.asarray(excess, dtype=np.float64), 0.0)
    if abs(gamma) < 1e-9:
        return np.asarray(np.exp(-y / sigma), dtype=np.float64)
    base = 1.0 + gamma * y / sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        sf = np.where(base > 0, np.abs(base) ** (-1.0 / gamma), 0.0)
    return np.asarray(sf, dtype=np.float64)


def _fit(scores: npt.ArrayLike, target: float) -> TailFit:
    try:
        return tail_fit(scores, target)
    except EdgeError as exc:
        raise DataError(f"the tail needs finite scores: {exc}") from exc


def _note(fit: TailFit) -> str:
    if fit.method is TailMethod.FEW:
        return (
            f"{fit.n} scores leave {fit.k} above the tail's start; a tail fit needs "
            f"{MIN_EXCESSES}: the threshold is the empirical quantile"
        )
    if fit.method is TailMethod.FLAT:
        return "the highest scores are all equal: the threshold is the largest"
    if fit.method is TailMethod.MISFIT:
        test = f"Kolmogorov-Smirnov p = {fit.fit_p:.3g}" if fit.fit_p is not None else "no fit"
        return (
            f"the tail does not fit a generalised Pareto distribution ({test}): the "
            "threshold is the empirical quantile"
        )
    return ""


def tail_threshold(scores: npt.ArrayLike, target: float) -> TailEstimate:
    """The threshold that healthy windows like ``scores`` exceed with probability
    ``target`` (see the module documentation).

    Raises:
        DataError: No scores, a score that is not finite, a target outside ``(0, 1)``.
    """
    if not 0.0 < target < 1.0:
        raise DataError(f"false-alarm rate {target} is not in (0, 1)")
    fit = _fit(scores, target)
    pot = fit.method is TailMethod.POT
    return TailEstimate(
        threshold=fit.threshold,
        target=target,
        method="pot" if pot else "empirical",
        n=fit.n,
        excesses=fit.k,
        u=fit.u,
        gamma=fit.gamma,
        sigma=fit.scale if pot else fit.sigma,
        fit_p=fit.fit_p,
        note=_note(fit),
    )


def exceedance(scores: npt.ArrayLike, threshold: float) -> float:
    """The estimated share of healthy windows like ``scores`` above ``threshold``: the
    sample's share where it has some above, else that of the fitted tail as fitted
    (without the conservative choices of :func:`tail_threshold`, which are for setting a
    threshold, not for judging one)."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    # the fit does not depend on the target; any valid one will do
    fit = _fit(values, 0.5)
    above = int(np.sum(values > threshold))
    if above > 0 or fit.method is TailMethod.FEW or threshold <= fit.u:
        return above / fit.n
    if fit.method is not TailMethod.POT:
        return 0.0
    return fit.k / fit.n * float(_pareto_sf(threshold - fit.u, fit.gamma, fit.sigma))
