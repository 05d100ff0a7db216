"""The quality gate: is a candidate model good enough to replace the champion?

A candidate is promoted only if all of these hold, each judged on the same held-out
data and with int8 scores from the C engine, as the devices compute them:

1. **Fits the devices**: the blob fits the flash and the engine's working memory fits the
   RAM of :class:`DeviceLimits`; the feature spec uses the devices' sample rate and a
   window they can hold.
2. **False alarms within target**: the share of held-out healthy windows above the
   candidate's own threshold is not significantly above the target rate: at most the
   95th percentile of the count a model with exactly the target rate would raise
   (binomial), so a few hundred windows do not fail a well-calibrated model by chance;
   and the rate the fitted tail of those held-out scores estimates
   (:func:`~vibewatch.train.tail.exceedance`, the estimate the threshold came from) is
   within the same allowance, which a few hundred windows cannot show by counting.
3. **Not worse than the champion**: for every faulty set, the candidate's AUC is at most
   ``auc_margin`` below the champion's. With no faulty data, AUC cannot be measured and the
   gate says so; with no champion, or a champion of another feature spec, there is nothing
   to compare with and the gate says that too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.stats import binom

from vibewatch.edge import Model
from vibewatch.train.metrics import alarm_rate, auc
from vibewatch.train.tail import MIN_EXCESSES, TailEstimate, exceedance


@dataclass(frozen=True, kw_only=True)
class DeviceLimits:
    """What the devices can run.

    Attributes:
        flash_bytes: Bytes of a model slot (the largest blob).
        ram_bytes: Engine working memory available for one inference.
        sample_rate_hz: The accelerometers' sample rate; ``None``: any.
        max_window: Largest DSP window the devices' memory holds.
    """

    flash_bytes: int = 65536
    ram_bytes: int = 8192
    sample_rate_hz: int | None = None
    max_window: int = 4096

    def problems(self, model: Model) -> list[str]:
        """What keeps ``model`` from running on the devices (empty: it fits)."""
        found = []
        if model.blob_bytes > self.flash_bytes:
            found.append(
                f"blob of {model.blob_bytes} B exceeds the {self.flash_bytes} B flash slot"
            )
        if model.ram_bytes > self.ram_bytes:
            found.append(f"engine needs {model.ram_bytes} B of RAM, devices have {self.ram_bytes}")
        rate = model.spec.sample_rate_hz
        if self.sample_rate_hz is not None and rate != self.sample_rate_hz:
            found.append(f"feature spec samples at {rate} Hz, devices at {self.sample_rate_hz} Hz")
        if model.spec.window > self.max_window:
            found.append(f"window of {model.spec.window} exceeds the devices' {self.max_window}")
        return found


@dataclass(frozen=True)
class HeldOut:
    """The data a candidate and the champion are judged on.

    Attributes:
        healthy: Held-out healthy feature rows (never trained or calibrated on).
        faulty: Named sets of faulty feature rows (may be empty).
    """

    healthy: npt.NDArray[np.float32]
    faulty: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scores:
    """int8 scores of one model on :class:`HeldOut` data, and what follows from them.

    Attributes:
        healthy: Scores of the healthy rows.
        faulty: Scores of each faulty set.
        threshold: The model's threshold.
    """

    healthy: npt.NDArray[np.float32]
    faulty: dict[str, npt.NDArray[np.float32]]
    threshold: float

    @classmethod
    def by(
        cls,
        score: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
        threshold: float,
        data: HeldOut,
    ) -> Scores:
        """Score ``data`` with any scoring function, judged at ``threshold``."""
        faulty = {name: score(rows) for name, rows in data.faulty.items()}
        return cls(score(data.healthy), faulty, threshold)

    @classmethod
    def of(cls, model: Model, data: HeldOut) -> Scores:
        """Score ``data`` with the C engine, at the model's threshold."""
        return cls.by(model.score, model.threshold, data)

    @property
    def far(self) -> float:
        """Share of healthy windows above the threshold."""
        return alarm_rate(self.healthy, self.threshold)

    def auc(self) -> dict[str, float]:
        """AUC of each faulty set against the healthy windows."""
        return {name: auc(self.healthy, rows) for name, rows in self.faulty.items()}

    def detected(self) -> dict[str, float]:
        """Share of each faulty set's windows above the threshold."""
        return {name: alarm_rate(rows, self.threshold) for name, rows in self.faulty.items()}


def allowed_false_alarms(windows: int, target: float) -> int:
    """Most healthy windows above threshold that still count as within ``target``."""
    return int(binom.ppf(0.95, windows, target))


@dataclass(frozen=True)
class Decision:
    """The gate's verdict and every reason for it, one line each."""

    promote: bool
    reasons: tuple[str, ...]


def decide(
    candidate: Model,
    champion: Model | None,
    data: HeldOut,
    *,
    false_alarm_rate: float,
    auc_margin: float,
    limits: DeviceLimits,
    tail: TailEstimate | None = None,
    seconds_per_window: float | None = None,
) -> Decision:
    """Judge ``candidate`` against ``champion`` on ``data`` (see the module docstring).

    ``tail``, how the candidate's threshold was estimated, only adds notes: that the
    estimate fell back to the empirical quantile, and when its calibration windows are
    too few for the sample alone to resolve the target, how many more it takes (and,
    with ``seconds_per_window``, the seconds of healthy recording one calibration window
    stands for, how much more healthy data that is).
    """
    reasons: list[str] = []
    ok = True
    misfit = limits.problems(candidate)
    if misfit:
        ok = False
        reasons += [f"does not fit the devices: {problem}" for problem in misfit]
    else:
        reasons.append(
            f"fits the devices: {candidate.blob_bytes} B flash, {candidate.ram_bytes} B RAM"
        )

    mine = Scores.of(candidate, data)
    n = len(mine.healthy)
    alarms = int(np.sum(mine.healthy > mine.threshold))
    allowed = allowed_false_alarms(n, false_alarm_rate)
    verdict = "within" if alarms <= allowed else "above"
    ok &= alarms <= allowed
    reasons.append(
        f"false alarms {verdict} target: {alarms} of {n} held-out healthy windows "
        f"({mine.far:.2%}) above threshold {mine.threshold:.6g}; target {false_alarm_rate:.2%} "
        f"allows up to {allowed}"
    )

    estimated = exceedance(mine.healthy, mine.threshold)
    limit = allowed / n if n else 0.0
    ok &= estimated <= limit
    reasons.append(
        f"estimated false-alarm rate {'within' if estimated <= limit else 'above'} target: "
        f"{estimated:.3%} of healthy windows above the threshold by the tail of the held-out "
        f"scores (allowed {limit:.3%})"
    )
    if tail is not None:
        reasons += _data_notes(tail, seconds_per_window)
    if not data.faulty:
        reasons.append("AUC not compared: no faulty data in the held-out set")
    elif champion is None:
        reasons.append("no champion to compare with")
    elif champion.spec != candidate.spec:
        reasons.append(
            f"champion v{champion.version} uses feature spec {champion.spec.spec_id}, the "
            f"candidate {candidate.spec.spec_id}: AUC not comparable"
        )
    else:
        theirs = Scores.of(champion, data).auc()
        for name, value in mine.auc().items():
            worse = theirs[name] - value > auc_margin
            ok &= not worse
            reasons.append(
                f"AUC on {name}: {value:.4f} vs champion v{champion.version} "
                f"{theirs[name]:.4f} ({'worse' if worse else 'not worse'} than the margin "
                f"{auc_margin:g})"
            )
    return Decision(ok, tuple(reasons))


def _data_notes(tail: TailEstimate, seconds_per_window: float | None) -> list[str]:
    notes = []
    if tail.method != "pot":
        notes.append(f"note: {tail.note}")
    needed = math.ceil(MIN_EXCESSES / tail.target)
    if tail.n < needed:
        more = needed - tail.n
        data = (
            f", about {more * seconds_per_window:,.0f} s more healthy data"
            if seconds_per_window
            else ""
        )
        notes.append(
            f"note: the threshold extends the tail of {tail.n} calibration windows beyond "
            f"what they show; the sample alone resolves a {tail.target:.2%} target from "
            f"{needed:,} windows ({MIN_EXCESSES} expected above it): {more:,} more{data}"
        )
    return notes
