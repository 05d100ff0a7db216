"""The rollout rules: waves, outcomes, timeouts, pauses and aborts, without I/O."""

from __future__ import annotations

import pytest

from vibewatch.ota.rollout import DeviceState, Phase, Rollout, RolloutPlan, Step
from vibewatch.protocol import OtaState

DEVICES = tuple(f"pump-{i:02d}" for i in range(20))


def plan(**kw: object) -> RolloutPlan:
    settings: dict[str, object] = {
        "model_id": "pump-ae",
        "version": 2,
        "targets": DEVICES,
        "canary": 2,
        "waves": (0.1, 0.5, 1.0),
        "max_failure_rate": 0.1,
        "timeout_s": 600.0,
    }
    return RolloutPlan(**(settings | kw))  # type: ignore[arg-type]


def install(rollout: Rollout, devices: tuple[str, ...], now: float) -> Step:
    """Every device of ``devices`` goes through a whole install; the last step."""
    step = Step()
    for device in devices:
        for state in (OtaState.DOWNLOADING, OtaState.VERIFYING, OtaState.ACTIVATED):
            assert rollout.report(device, state, now) == Step()
        step = rollout.report(device, OtaState.INSTALLED, now)
    return step


def test_waves_are_the_canaries_then_each_shares_new_devices() -> None:
    assert [len(w) for w in plan().wave_members()] == [2, 8, 10]  # 10 % adds no device
    assert [len(w) for w in plan(canary=1, waves=(0.25, 1.0)).wave_members()] == [1, 4, 15]
    assert plan().wave_members()[0] == ("pump-00", "pump-01")
    assert plan(targets=("a",), canary=1, waves=(1.0,)).wave_members() == [("a",)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"targets": ()}, "no target devices"),
        ({"targets": ("a", "a")}, "a device is targeted twice"),
        ({"canary": 0}, "canary must be 1 to 20 devices, not 0"),
        ({"canary": 21}, "canary must be 1 to 20 devices, not 21"),
        ({"waves": (0.5,)}, "the last wave must reach 100 % of the targets, not 50%"),
        ({"waves": (0.5, 0.2, 1.0)}, "wave shares must grow, each in (0, 100 %]: 50%,20%,100%"),
        ({"max_failure_rate": 1.0}, "the failure rate limit must be in [0, 100 %), not 1.0"),
        ({"timeout_s": 0.0}, "the timeout must be > 0 s, not 0"),
    ],
)
def test_a_bad_plan_names_its_problem(change: dict[str, object], problem: str) -> None:
    assert problem in plan(**change).problems()
    assert plan().problems() == []
    assert plan(waves=(0.5, 1.0), canary=20).problems() == []


def test_waves_follow_each_other_until_every_device_is_confirmed() -> None:
    rollout = Rollout("r1", plan())
    assert rollout.job_id == "r1.pump-ae.v2"
    step = rollout.start(0.0)
    assert step == Step(send=("pump-00", "pump-01"))
    assert rollout.start(1.0) == Step()  # once
    assert rollout.counts() == {"sent": 2, "queued": 18}
    assert rollout.wave_counts() == [{"sent": 2}, {"queued": 8}, {"queued": 10}]
    step = install(rollout, step.send, 10.0)
    assert step.send == DEVICES[2:10] and rollout.wave == 1
    step = install(rollout, step.send, 20.0)
    assert step.send == DEVICES[10:] and rollout.wave == 2
    assert install(rollout, step.send, 30.0) == Step()
    assert rollout.phase is Phase.COMPLETED and rollout.converged
    assert rollout.counts() == {"confirmed": 20}
    assert rollout.report("pump-00", OtaState.INSTALLED, 40.0) == Step()  # again: nothing


def test_a_failed_canary_aborts_and_rolls_back_the_other_canaries() -> None:
    rollout = Rollout("r1", plan())
    rollout.start(0.0)
    rollout.report("pump-00", OtaState.ACTIVATED, 5.0)
    step = rollout.report("pump-01", OtaState.FAILED, 6.0, "golden")
    assert step == Step(roll_back=("pump-00",), withdraw=("pump-00", "pump-01"))
    assert rollout.phase is Phase.ABORTED
    assert rollout.reason == "a canary failed: failed (golden)"
    assert rollout.devices["pump-01"].detail == "golden"
    assert rollout.devices["pump-00"].detail == (
        "sent back to its previous model: the rollout aborted: a canary failed: failed (golden)"
    )
    assert rollout.counts() == {"rolled_back": 1, "failed": 1, "queued": 18}  # none else sent
    # a report that crossed the rollback command: sent back again
    assert rollout.report("pump-00", OtaState.INSTALLED, 7.0) == Step(roll_back=("pump-00",))
    assert rollout.devices["pump-00"].state is DeviceState.ROLLED_BACK
    assert rollout.tick(10_000.0) == Step()


def test_an_abort_cancels_the_devices_on_their_way_and_sends_back_one_that_arrives() -> None:
    rollout = Rollout("r1", plan())
    second = install(rollout, rollout.start(0.0).send, 1.0).send
    rollout.report(second[0], OtaState.DOWNLOADING, 2.0)
    rollout.report(second[1], OtaState.ACTIVATED, 2.0)
    step = rollout.abort("aborted by the operator", 3.0)
    assert step.roll_back == ("pump-00", "pump-01", second[1])
    assert step.withdraw == DEVICES[:10]  # every device that was sent its job
    assert rollout.counts() == {"rolled_back": 3, "cancelled": 7, "queued": 10}
    assert rollout.devices[second[0]].detail == "the rollout aborted: aborted by the operator"
    assert rollout.abort("again", 4.0) == Step()
    # a cancelled download that completed anyway: its device is sent back
    assert rollout.report(second[0], OtaState.ACTIVATED, 5.0) == Step(roll_back=(second[0],))
    assert rollout.report(second[2], OtaState.FAILED, 5.0) == Step()


def test_the_operators_rollback_undoes_a_completed_rollout() -> None:
    rollout = Rollout("r1", plan(targets=DEVICES[:4], canary=1, waves=(1.0,)))
    install(rollout, install(rollout, rollout.start(0.0).send, 1.0).send, 2.0)
    assert rollout.phase is Phase.COMPLETED
    step = rollout.roll_back("the new model misses faults", 10.0)
    assert step == Step(roll_back=DEVICES[:4], withdraw=DEVICES[:4])
    assert rollout.phase is Phase.COMPLETED and not rollout.converged
    assert rollout.counts() == {"rolled_back": 4}
    assert rollout.devices["pump-03"].detail == (
        "sent back to its previous model: the new model misses faults"
    )
    assert rollout.roll_back("again", 11.0) == Step()
    running = Rollout("r2", plan())
    install(running, running.start(0.0).send, 1.0)
    assert running.roll_back("stop", 2.0).roll_back == ("pump-00", "pump-01")
    assert running.phase is Phase.ABORTED


def test_failures_past_the_limit_abort_a_later_wave() -> None:
    rollout = Rollout("r1", plan(max_failure_rate=0.1))
    second = install(rollout, rollout.start(0.0).send, 1.0).send
    assert rollout.report(second[0], OtaState.FAILED, 2.0, "signature") == Step()  # 1 of 10
    rollout.report(second[1], OtaState.ACTIVATED, 2.0)
    step = rollout.report(second[2], OtaState.ROLLED_BACK, 3.0, "trial reset")  # 2 of 10
    assert rollout.phase is Phase.ABORTED
    assert rollout.reason == "2 of 10 devices failed, more than 10%"
    assert set(step.roll_back) == {"pump-00", "pump-01", second[1]}


def test_a_device_without_an_outcome_times_out() -> None:
    rollout = Rollout("r1", plan(canary=1, timeout_s=60.0))
    rollout.start(0.0)
    rollout.report("pump-00", OtaState.DOWNLOADING, 10.0)
    assert rollout.tick(60.0) == Step()  # not past it yet
    assert rollout.tick(61.0) == Step(withdraw=("pump-00",))  # a canary timed out: aborted
    assert rollout.devices["pump-00"].state is DeviceState.TIMED_OUT
    assert rollout.devices["pump-00"].detail == "no outcome within 60 s"
    assert rollout.phase is Phase.ABORTED


def test_a_paused_rollout_starts_no_wave_until_resumed() -> None:
    rollout = Rollout("r1", plan())
    send = rollout.start(0.0).send
    rollout.pause()
    assert rollout.phase is Phase.PAUSED and rollout.reason == "paused by the operator"
    assert install(rollout, send, 1.0) == Step()  # the canaries finish; no next wave
    step = rollout.resume(2.0)
    assert step.send == DEVICES[2:10] and rollout.phase is Phase.RUNNING
    assert rollout.resume(3.0) == Step()


def test_reports_of_others_are_ignored() -> None:
    rollout = Rollout("r1", plan())
    rollout.start(0.0)
    assert rollout.report("elsewhere", OtaState.FAILED, 1.0) == Step()
    assert rollout.report("pump-19", OtaState.FAILED, 1.0) == Step()  # its job was not sent
    assert rollout.phase is Phase.RUNNING and rollout.counts() == {"sent": 2, "queued": 18}


def test_the_regression_guard_trips_when_the_new_model_alarms_far_more() -> None:
    rollout = Rollout("r1", plan(canary=2, guard_factor=3.0, guard_min_events=3))
    rollout.start(0.0)
    for device in ("pump-00", "pump-01"):
        rollout.report(device, OtaState.ACTIVATED, 100.0)
    since = {"pump-00": 0.0, "pump-01": 0.0}  # 200 device-seconds of history
    # 1 event before, 3 after over 2 x 60 s: (1 + 1) x 120/200 = 1.2 expected, 3 x 1.2 = 3.6
    calm = {"pump-00": [50.0, 120.0, 130.0], "pump-01": [140.0]}
    assert rollout.guard(calm, since, 160.0) == Step() and rollout.phase is Phase.RUNNING
    # over the 10 s since the activation: 1 event before, 4 after: 4 > 3 x 0.2
    loud = {"pump-00": [50.0, 101.0, 102.0, 103.0], "pump-01": [104.0]}
    step = rollout.guard(loud, since, 110.0)
    assert step.roll_back == ("pump-00", "pump-01")
    assert rollout.reason == (
        "regression guard: 4 anomaly events on the new model over 20 device-seconds, against "
        "1 on the old one over 200 (3 x 0.2 expected at most)"
    )


def test_a_short_history_is_no_proof_of_a_quiet_fleet() -> None:
    rollout = Rollout("r1", plan(canary=2))
    rollout.start(0.0)
    for device in ("pump-00", "pump-01"):
        rollout.report(device, OtaState.ACTIVATED, 100.0)
    noise = {"pump-00": [101.0, 150.0], "pump-01": [170.0]}
    # seen for 10 s before the activation, 0 events: (0 + 1) x 160/20 = 8 expected
    assert rollout.guard(noise, {"pump-00": 90.0, "pump-01": 90.0}, 180.0) == Step()
    assert rollout.guard(noise, {}, 180.0) == Step()  # nothing known before: no judgement
    # an hour of quiet history: 3 events in 160 device-seconds are a rise
    hour = {"pump-00": -3500.0, "pump-01": -3500.0}
    assert rollout.guard(noise, hour, 180.0).roll_back == ("pump-00", "pump-01")


def test_a_machine_that_alarms_on_both_models_does_not_trip_the_guard() -> None:
    rollout = Rollout("r1", plan(canary=1))
    rollout.start(0.0)
    rollout.report("pump-00", OtaState.ACTIVATED, 100.0)
    faulty = {"pump-00": [20.0, 40.0, 60.0, 80.0, 110.0, 130.0, 150.0, 170.0]}
    since = {"pump-00": 0.0}
    assert rollout.guard(faulty, since, 180.0) == Step()  # 4 before, 4 after
    few = {"pump-00": [150.0, 170.0]}  # 0 before, 2 after: fewer than the minimum
    assert rollout.guard(few, since, 180.0) == Step()
    assert Rollout("r2", plan(guard_factor=0.0)).guard(few, since, 180.0) == Step()  # off


def test_with_a_trial_a_wave_waits_until_its_devices_ran_the_new_model_that_long() -> None:
    rollout = Rollout("r1", plan(trial_s=60.0))
    rollout.start(0.0)
    install(rollout, ("pump-00", "pump-01"), 10.0)  # confirmed at once
    assert rollout.wave == 0
    assert rollout.tick(69.0) == Step()
    assert rollout.tick(70.0).send == DEVICES[2:10]
    # the guard's span ends with the trial: events after it do not count
    late = {"pump-00": [80.0, 81.0, 82.0, 83.0]}
    assert rollout.guard(late, {"pump-00": 0.0}, 100.0) == Step()
