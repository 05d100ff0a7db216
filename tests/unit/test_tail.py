"""Thresholds from the fitted upper tail of healthy scores (peaks over threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from vibewatch.edge.tail import TailMethod, tail_fit
from vibewatch.errors import DataError, EdgeError
from vibewatch.train.metrics import calibrate_threshold
from vibewatch.train.tail import CONFIDENCE, exceedance, tail_threshold


@pytest.mark.parametrize("n", [300, 1000, 5000])
def test_an_exponential_tail_is_extrapolated_and_holds_with_the_stated_confidence(n: int) -> None:
    # scores whose upper tail is exponential: the quantile for 0.5 % is known exactly
    target, truth = 0.005, -np.log(0.005)
    held = 0
    for seed in range(200):
        estimate = tail_threshold(np.random.default_rng(seed).exponential(1.0, n), target)
        assert estimate.method == "pot" and estimate.excesses == max(10, round(0.1 * n))
        held += estimate.threshold >= truth
    # the scale's upper bound makes it hold at least as often as the confidence says
    assert held / 200 >= CONFIDENCE - 0.05


def test_with_few_scores_it_reaches_beyond_the_largest_where_the_sample_cannot() -> None:
    scores = np.random.default_rng(7).exponential(1.0, 150)
    estimate = tail_threshold(scores, 0.005)
    assert calibrate_threshold(scores, 0.005) == scores.max()  # the sample's last word
    assert estimate.threshold > scores.max()  # the tail's: further out
    assert estimate.n == 150 and estimate.excesses == 15 and estimate.u < scores.max()


def test_a_bounded_tail_is_taken_as_exponential_so_later_data_does_not_pass_its_end() -> None:
    scores = np.random.default_rng(8).uniform(0.0, 1.0, 400)  # a tail with an end at 1
    estimate = tail_threshold(scores, 0.005)
    assert estimate.gamma < 0  # the fit sees the end...
    assert estimate.threshold > 1.0  # ...the threshold does not trust it


def test_a_poor_fit_or_too_few_scores_falls_back_to_the_empirical_quantile_with_a_note() -> None:
    few = tail_threshold(np.arange(15.0), 0.005)
    assert few.method == "empirical" and few.threshold == 14.0
    assert few.note == (
        "15 scores leave 7 above the tail's start; a tail fit needs 10: the threshold is "
        "the empirical quantile"
    )
    lumpy = np.r_[np.zeros(900), np.full(50, 5.0), np.full(50, 9.0)]  # two lumps, no tail
    poor = tail_threshold(lumpy, 0.005)
    assert poor.method == "empirical" and poor.threshold == 9.0
    assert poor.note.startswith("the tail does not fit a generalised Pareto distribution")
    assert poor.fit_p is not None and poor.fit_p < 0.05
    same = tail_threshold(np.r_[np.zeros(800), np.full(200, 3.0)], 0.005)
    assert same.method == "empirical" and same.threshold == 3.0
    assert same.note == "the highest scores are all equal: the threshold is the largest"
    with pytest.raises(DataError, match="not in"):
        tail_threshold(np.ones(100), 1.0)
    with pytest.raises(DataError, match="finite"):
        tail_threshold(np.array([1.0, np.nan]), 0.01)


def test_exceedance_counts_where_it_can_and_estimates_beyond() -> None:
    scores = np.random.default_rng(9).exponential(1.0, 20_000)
    assert exceedance(scores, 1.0) == np.mean(scores > 1.0)
    beyond = exceedance(scores, scores.max() + 1.0)
    assert 0 < beyond < 1 / 20_000  # past the sample: the fitted tail, not zero
    # that far out an estimate is good to a factor of a few
    truth = np.exp(-(scores.max() + 1.0))
    assert truth / 4 < beyond < truth * 4


def test_the_fitted_tail_is_a_survival_curve_above_its_start() -> None:
    estimate = tail_threshold(np.random.default_rng(10).exponential(1.0, 1000), 0.005)
    curve = estimate.survival([estimate.u - 1, estimate.u, estimate.threshold])
    assert np.isnan(curve[0]) and curve[1] == pytest.approx(0.1)
    assert curve[2] == pytest.approx(0.005)  # the threshold is where the curve is at target


def test_a_device_sized_buffer_keeps_the_largest_and_caps_the_excesses() -> None:
    scores = np.random.default_rng(11).exponential(1.0, 3600)
    full = tail_fit(scores, 0.001)
    kept = tail_fit(scores, 0.001, capacity=32)
    assert (full.k, kept.k) == (360, 31)
    assert full.method is TailMethod.POT and kept.method is TailMethod.POT
    assert kept.u == np.sort(scores.astype(np.float32))[-32]
    truth = -np.log(0.001)
    assert truth * 0.8 < kept.threshold < truth * 1.6


def test_the_binding_names_what_it_refuses() -> None:
    with pytest.raises(EdgeError, match=r"score 2: np.float32\(nan\) is not a finite number"):
        tail_fit([1.0, 2.0, np.nan], 0.01)
    with pytest.raises(EdgeError, match=r"capacity 10 is not in \[11, 65535\]"):
        tail_fit([1.0, 2.0], 0.01, capacity=10)
    with pytest.raises(EdgeError, match="at least one score"):
        tail_fit([], 0.01)
