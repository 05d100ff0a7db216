"""The quality gate, on real blobs scored by the C engine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import binom

from vibewatch.edge import FeatureSpec, Model
from vibewatch.edge.vwm import encode
from vibewatch.testing.models import random_model
from vibewatch.train.gate import DeviceLimits, HeldOut, Scores, allowed_false_alarms, decide
from vibewatch.train.metrics import auc
from vibewatch.train.tail import tail_threshold

N = 12


def engine(seed: int, *, threshold: float | None = None, spec: FeatureSpec | None = None) -> Model:
    model = random_model(seed, [N, 6, N], version=7, golden=0)
    if spec is not None:
        model = dataclasses.replace(model, spec=spec)
    if threshold is not None:
        model = dataclasses.replace(model, threshold=threshold)
    return Model(encode(model))


@pytest.fixture(scope="module")
def champion() -> Model:
    return engine(1)


@pytest.fixture(scope="module")
def held_out(champion: Model) -> HeldOut:
    """Rows the champion separates perfectly: its lowest scores healthy, its highest faulty."""
    rows = np.random.default_rng(5).normal(0, 3, (2000, N)).astype(np.float32)
    order = np.argsort(champion.score(rows))
    return HeldOut(rows[order[:400]], {"fault": rows[order[-300:]]})


def fresh(seed: int, data: HeldOut, share_above: float) -> Model:
    """Model ``seed`` with a threshold leaving ``share_above`` of the healthy rows above it."""
    scores = np.sort(engine(seed).score(data.healthy))
    return engine(seed, threshold=float(scores[int(len(scores) * (1 - share_above)) - 1]))


LIMITS = DeviceLimits(flash_bytes=1 << 20, ram_bytes=1 << 16)


def test_a_candidate_as_good_as_the_champion_is_promoted(
    champion: Model, held_out: HeldOut
) -> None:
    candidate = fresh(1, held_out, share_above=0.0)  # the champion's own weights
    decision = decide(
        candidate, champion, held_out, false_alarm_rate=0.005, auc_margin=0.005, limits=LIMITS
    )
    assert decision.promote, decision.reasons
    assert decision.reasons[1].startswith("false alarms within target: 0 of 400")
    assert decision.reasons[2].startswith("estimated false-alarm rate within target: ")
    assert decision.reasons[3] == (
        "AUC on fault: 1.0000 vs champion v7 1.0000 (not worse than the margin 0.005)"
    )


def test_a_worse_candidate_is_rejected_and_a_margin_can_forgive_it(
    champion: Model, held_out: HeldOut
) -> None:
    candidate = fresh(2, held_out, share_above=0.0)
    mine = Scores.of(candidate, held_out).auc()["fault"]
    assert mine < 0.99  # another random model does not see what the champion sees
    decision = decide(
        candidate, champion, held_out, false_alarm_rate=0.005, auc_margin=0.005, limits=LIMITS
    )
    assert not decision.promote
    assert f"AUC on fault: {mine:.4f} vs champion v7 1.0000 (worse than" in decision.reasons[3]
    lenient = decide(
        candidate, champion, held_out, false_alarm_rate=0.005, auc_margin=1.0, limits=LIMITS
    )
    assert lenient.promote


def test_false_alarms_above_target_are_rejected(champion: Model, held_out: HeldOut) -> None:
    allowed = allowed_false_alarms(400, 0.005)
    # A model at exactly 0.5 % raises at most `allowed` alarms in 400 windows in 95 % of runs.
    assert binom.cdf(allowed, 400, 0.005) >= 0.95 > binom.cdf(allowed - 1, 400, 0.005)
    within = fresh(1, held_out, share_above=allowed / 400)
    above = fresh(1, held_out, share_above=(allowed + 1) / 400)
    for model, expected in ((within, True), (above, False)):
        decision = decide(
            model, None, held_out, false_alarm_rate=0.005, auc_margin=0.0, limits=LIMITS
        )
        assert decision.promote is expected
        alarms = int(np.sum(model.score(held_out.healthy) > model.threshold))
        verdict = "within" if expected else "above"
        assert decision.reasons[1].startswith(f"false alarms {verdict} target: {alarms} of 400")
        assert decision.reasons[2].startswith(f"estimated false-alarm rate {verdict} target")
        assert decision.reasons[3] == "no champion to compare with"


def test_a_model_that_does_not_fit_the_devices_is_rejected(
    champion: Model, held_out: HeldOut
) -> None:
    candidate = fresh(1, held_out, share_above=0.0)
    tight = DeviceLimits(
        flash_bytes=candidate.blob_bytes - 1,
        ram_bytes=candidate.ram_bytes - 1,
        sample_rate_hz=candidate.spec.sample_rate_hz + 1,
        max_window=candidate.spec.window // 2,
    )
    decision = decide(
        candidate, champion, held_out, false_alarm_rate=0.005, auc_margin=0.005, limits=tight
    )
    assert not decision.promote
    assert decision.reasons[:4] == tuple(
        f"does not fit the devices: {p}" for p in tight.problems(candidate)
    )
    assert len(tight.problems(candidate)) == 4


def test_without_faulty_data_or_a_comparable_champion_auc_is_not_compared(
    champion: Model, held_out: HeldOut
) -> None:
    candidate = fresh(1, held_out, share_above=0.0)
    healthy_only = HeldOut(held_out.healthy)
    decision = decide(
        candidate, champion, healthy_only, false_alarm_rate=0.005, auc_margin=0.0, limits=LIMITS
    )
    assert decision.promote
    assert decision.reasons[-1] == "AUC not compared: no faulty data in the held-out set"
    spec = champion.spec
    stranger = engine(1, spec=dataclasses.replace(spec, sample_rate_hz=spec.sample_rate_hz + 1))
    decision = decide(
        candidate, stranger, held_out, false_alarm_rate=0.005, auc_margin=0.0, limits=LIMITS
    )
    assert decision.reasons[-1].endswith("AUC not comparable")


def test_scores_summarise_auc_and_detection(champion: Model, held_out: HeldOut) -> None:
    scores = Scores.of(champion, held_out)
    assert scores.auc() == {"fault": auc(scores.healthy, scores.faulty["fault"])}
    assert scores.detected()["fault"] == float(np.mean(scores.faulty["fault"] > champion.threshold))


def test_too_few_calibration_windows_are_noted_with_how_many_more(
    champion: Model, held_out: HeldOut
) -> None:
    candidate = fresh(1, held_out, share_above=0.0)
    common = {"false_alarm_rate": 0.005, "auc_margin": 0.005, "limits": LIMITS}
    few = tail_threshold(np.random.default_rng(3).exponential(1.0, 600), 0.005)
    noted = decide(candidate, champion, held_out, tail=few, seconds_per_window=0.05, **common)
    assert noted.reasons[3] == (
        "note: the threshold extends the tail of 600 calibration windows beyond what they "
        "show; the sample alone resolves a 0.50% target from 2,000 windows (10 expected "
        "above it): 1,400 more, about 70 s more healthy data"
    )
    assert noted.promote == decide(candidate, champion, held_out, **common).promote
    plenty = tail_threshold(np.random.default_rng(3).exponential(1.0, 2000), 0.005)
    quiet = decide(candidate, champion, held_out, tail=plenty, **common)
    assert not any(reason.startswith("note:") for reason in quiet.reasons)
    fallback = tail_threshold(np.arange(15.0), 0.005)  # 10 % of 15 is too few to fit
    assert fallback.method == "empirical"
    noted = decide(candidate, champion, held_out, tail=fallback, **common)
    assert noted.reasons[3] == f"note: {fallback.note}"
