"""The firmware's tail rule (``vw_tail.h``): a score threshold for a false-alarm target
from the upper tail of healthy scores.

The training job sets a model's threshold with it, and a device its own with the
``calibrate`` command, so both follow one implementation: peaks over threshold, a
generalised Pareto distribution fitted to the excesses by probability-weighted moments,
the scale's upper confidence bound, and the empirical quantile when the fit is poor.
:func:`tail_fit` runs it over an array of scores; ``vw_tail.h`` states the rule exactly.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import numpy as np
import numpy.typing as npt

from vibewatch.edge import _lib
from vibewatch.errors import EdgeError

__all__ = ["TailConstants", "TailFit", "TailMethod", "tail_constants", "tail_fit"]

#: Most scores the C tail keeps (its capacity is a uint16).
MAX_KEPT = 65_535

_FLOATS = ctypes.POINTER(ctypes.c_float)


@cache
def _core() -> ctypes.CDLL:
    return _lib.declare(
        [
            ("vwpy_tail_constants", None, [_FLOATS]),
            (
                "vwpy_tail_estimate",
                ctypes.c_int,
                [
                    ctypes.c_void_p,
                    ctypes.c_uint32,
                    ctypes.c_uint16,
                    ctypes.c_void_p,
                    ctypes.c_float,
                    _FLOATS,
                    ctypes.POINTER(ctypes.c_uint32),
                ],
            ),
        ]
    )


class TailMethod(StrEnum):
    """How a threshold was found (``vw_tail_method_t``)."""

    POT = "pot"
    """From the fitted tail."""
    FEW = "few"
    """The empirical quantile: too few excesses to fit."""
    FLAT = "flat"
    """The empirical quantile: the largest scores are all equal."""
    MISFIT = "misfit"
    """The empirical quantile: the fit was rejected."""


@dataclass(frozen=True)
class TailConstants:
    """The rule's constants (``VW_TAIL_*``).

    Attributes:
        min_excesses: Fewest excesses a tail is fitted to.
        share: Share of the scores above the initial threshold.
        confidence: One-sided confidence of the scale's upper bound.
        min_fit_p: Below this Kolmogorov-Smirnov p-value a fit is rejected.
    """

    min_excesses: int
    share: float
    confidence: float
    min_fit_p: float


@cache
def tail_constants() -> TailConstants:
    """The constants the compiled rule uses."""
    values = (ctypes.c_float * 4)()
    _core().vwpy_tail_constants(values)
    # float32 constants, read back at the precision they are written with
    return TailConstants(
        int(values[0]), round(values[1], 6), round(values[2], 6), round(values[3], 6)
    )


@dataclass(frozen=True)
class TailFit:
    """What the rule found (``vw_tail_estimate_t``).

    Attributes:
        threshold: The score threshold.
        target: The false-alarm target it is for.
        method: How it was found.
        n: Scores it was estimated from.
        k: Scores above the initial threshold.
        u: The initial threshold.
        gamma: The fitted shape (before a negative one is taken as 0).
        sigma: The fitted scale.
        scale: The scale the threshold used (sigma's upper confidence bound).
        fit_p: The Kolmogorov-Smirnov p-value of the fit; None when not fitted.
    """

    threshold: float
    target: float
    method: TailMethod
    n: int
    k: int
    u: float
    gamma: float
    sigma: float
    scale: float
    fit_p: float | None


_METHODS = (TailMethod.POT, TailMethod.FEW, TailMethod.FLAT, TailMethod.MISFIT)


def tail_fit(scores: npt.ArrayLike, target: float, capacity: int | None = None) -> TailFit:
    """The threshold healthy windows like ``scores`` exceed with probability ``target``.

    Args:
        scores: Healthy scores (converted to float32, as the devices hold them).
        target: The false-alarm target, in ``(0, 1)``.
        capacity: How many of the largest scores the rule keeps, as a device's buffer
            does; None keeps all the rule can use (its ``k`` is then never capped).

    Raises:
        EdgeError: ``input`` for no scores, a score that is not finite (named with its
            index) or more than 2**32 - 1 of them; ``arg`` for a target outside
            ``(0, 1)`` or a capacity outside ``[min_excesses + 1, 65535]``.
    """
    values = np.ascontiguousarray(np.asarray(scores, dtype=np.float32).ravel())
    if values.size == 0:
        raise EdgeError("input", "the tail needs at least one score")
    if values.size >= 2**32:
        raise EdgeError("input", f"{values.size} scores: the tail takes at most 2**32 - 1")
    constants = tail_constants()
    if capacity is None:
        capacity = min(MAX_KEPT, max(constants.min_excesses + 1, math.ceil(values.size / 10) + 2))
    if not constants.min_excesses + 1 <= capacity <= MAX_KEPT:
        raise EdgeError(
            "arg",
            f"capacity {capacity} is not in [{constants.min_excesses + 1}, {MAX_KEPT}]",
        )
    if not 0.0 < target < 1.0:
        raise EdgeError("arg", f"false-alarm rate {target} is not in (0, 1)")
    top = np.empty(capacity, dtype=np.float32)
    out = (ctypes.c_float * 6)()
    meta = (ctypes.c_uint32 * 3)()
    status = _core().vwpy_tail_estimate(
        values.ctypes.data, values.size, capacity, top.ctypes.data, target, out, meta
    )
    if status != 0:
        index = meta[0]
        _lib.check(status, f"score {index}: {values[index]!r} is not a finite number")
    threshold, u, gamma, sigma, scale, fit_p = (float(v) for v in out)
    return TailFit(
        threshold=threshold,
        target=target,
        method=_METHODS[meta[2]],
        n=int(meta[0]),
        k=int(meta[1]),
        u=u,
        gamma=gamma,
        sigma=sigma,
        scale=scale,
        fit_p=None if fit_p < 0 else fit_p,
    )
