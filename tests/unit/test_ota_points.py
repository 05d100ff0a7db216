"""Rollouts as InfluxDB points: progress per rollout and wave, failures by reason, when."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from vibewatch.influx.lineprotocol import Point, encode_point
from vibewatch.ota.points import RolloutPoints, failure_point, progress_points
from vibewatch.ota.rollout import DeviceState, Rollout, RolloutPlan, failure_reason
from vibewatch.protocol import OtaState

DEVICES = tuple(f"pump-{i:02d}" for i in range(10))
ALL_STATES = [f"devices_{s.value}" for s in DeviceState]


PLAN = RolloutPlan("pump-ae", 3, DEVICES, canary=2, waves=(0.5, 1.0), max_failure_rate=0.5,
                   timeout_s=60.0)  # fmt: skip


def rollout(**kw: Any) -> Rollout:
    return Rollout("rollout-7", dataclasses.replace(PLAN, **kw))


def fields(point: Point) -> dict[str, object]:
    return dict(point.fields)


def test_progress_is_one_point_per_rollout_and_one_per_wave_with_every_state() -> None:
    r = rollout()
    r.start(100.0)
    r.report("pump-00", OtaState.DOWNLOADING, 101.0)
    r.report("pump-01", OtaState.FAILED, 102.0, "signature")
    whole, *waves = progress_points(r, time_ms=1_700_000_000_123, site="north")
    assert whole.measurement == "ota_rollout"
    assert whole.tags == (("model_id", "pump-ae"), ("rollout", "rollout-7"), ("site", "north"))
    assert whole.time_ns == 1_700_000_000_123_000_000
    got = fields(whole)
    assert [k for k in got if k.startswith("devices_")] == ALL_STATES
    assert got["phase"] == "aborted" and got["in_progress"] == 0  # a canary failed
    assert (got["model_version"], got["wave"], got["waves"], got["devices"]) == (3, 0, 3, 10)
    assert got["devices_queued"] == 8 and got["devices_failed"] == 1
    assert got["devices_cancelled"] == 1  # pump-00, still downloading at the abort
    assert [p.measurement for p in waves] == ["ota_wave"] * 3
    assert [dict(p.tags)["wave"] for p in waves] == ["0", "1", "2"]
    assert [fields(p)["devices"] for p in waves] == [2, 3, 5]
    assert fields(waves[0])["devices_failed"] == 1 and fields(waves[1])["devices_queued"] == 3
    assert all(encode_point(p) for p in (whole, *waves))


def test_a_rollout_in_progress_says_so_and_no_site_means_no_tag() -> None:
    r = rollout()
    r.start(0.0)
    (whole, *_) = progress_points(r, time_ms=0)
    assert dict(whole.fields)["in_progress"] == 1 and dict(whole.fields)["phase"] == "running"
    assert "site" not in dict(whole.tags)


@pytest.mark.parametrize(
    ("report", "detail", "outcome", "reason"),
    [
        (OtaState.FAILED, "signature", "failed", "signature"),
        (OtaState.FAILED, "", "failed", "unspecified"),
        (OtaState.ROLLED_BACK, "the model did not complete its trial", "rolled_back",
         "the model did not complete its trial"),
        (OtaState.FAILED, "bad\\path\nnext  line" + "x" * 100, "failed",
         "bad path next line" + "x" * 46),
    ],
)  # fmt: skip
def test_a_failure_is_tagged_with_the_devices_reason(
    report: OtaState, detail: str, outcome: str, reason: str
) -> None:
    r = rollout(canary=1)
    r.start(10.0)
    r.report("pump-00", report, 12.5, detail)
    point = failure_point(r, "pump-00")
    assert point.measurement == "ota_failure"
    tags = dict(point.tags)
    assert tags == {
        "device": "pump-00",
        "model_id": "pump-ae",
        "outcome": outcome,
        "reason": reason,
        "rollout": "rollout-7",
        "wave": "0",
    }
    assert dict(point.fields) == {"detail": detail}
    assert point.time_ns == 12_500_000_000  # when it failed: written again, the same point
    encode_point(point)


def test_the_rollouts_own_failures_have_reasons_of_their_own() -> None:
    r = rollout(canary=1, max_failure_rate=0.9)
    r.start(0.0)
    for state in (OtaState.DOWNLOADING, OtaState.ACTIVATED, OtaState.INSTALLED):
        r.report("pump-00", state, 1.0)
    r.tick(2.0)  # the next wave starts
    r.tick(100.0)  # and times out
    assert r.devices["pump-01"].state is DeviceState.TIMED_OUT
    assert failure_reason(r.devices["pump-01"]) == "timeout"
    r.abort("misses faults", 101.0)
    assert r.devices["pump-00"].state is DeviceState.ROLLED_BACK
    assert failure_reason(r.devices["pump-00"]) == "sent_back"
    assert dict(failure_point(r, "pump-00").tags)["outcome"] == "rolled_back"
    with pytest.raises(ValueError, match="pump-09 has not failed"):
        failure_point(r, "pump-09")


def test_progress_is_due_when_it_changes_and_every_interval_while_in_progress() -> None:
    r = rollout()
    points = RolloutPoints(interval_s=10.0)
    r.start(0.0)
    assert len(points.due(r, 0.0)) == 4  # the first: the rollout and three waves
    assert points.due(r, 5.0) == []  # nothing changed
    r.report("pump-00", OtaState.DOWNLOADING, 6.0)
    assert [p.measurement for p in points.due(r, 6.0)] == ["ota_rollout"] + ["ota_wave"] * 3
    assert points.due(r, 15.0) == []
    assert len(points.due(r, 16.0)) == 4  # the interval passed
    r.report("pump-00", OtaState.FAILED, 17.0, "hash")  # a canary failed: aborted
    due = points.due(r, 17.0)
    assert [p.measurement for p in due] == ["ota_rollout"] + ["ota_wave"] * 3 + ["ota_failure"]
    assert points.due(r, 17.0) == [] and points.due(r, 100.0) == []  # ended: quiet
    points.forget(r.rollout_id)
    again = points.due(r, 200.0)  # a controller that loads it again writes it again
    assert [p.measurement for p in again][-1] == "ota_failure" and len(again) == 5
    assert again[-1] == due[-1]  # the same failure point
