"""A rollout's plan and progress: which devices get the new model when, what each one
reported, and when the rollout goes on to its next wave, completes or aborts.

Pure logic, no I/O and no clock of its own: the controller hands in the devices'
reports and the time, carries out what comes back (publish the job to these devices,
roll these back) and persists the state. The rules:

* targets are taken in the order given; the **canary** wave is the first ``canary`` of
  them, and each later wave takes the targets up to its share of all of them
  (``waves=(0.1, 0.5, 1.0)``: up to 10 %, then 50 %, then all);
* a wave starts only when every device of the wave before reached an outcome
  (``confirmed``, ``failed``, ``rolled_back``, ``timed_out``) and the rollout is
  within its limits;
* a device that has no outcome ``timeout_s`` after its job was sent is ``timed_out``;
* the rollout **aborts** — no further wave, and the devices that run the new model are
  to be rolled back — when a device of the canary wave fails in any way (no install or
  integrity failure goes past the canaries), or when the failures among the devices
  whose wave started pass ``max_failure_rate``;
* the **regression guard**: devices on the new model raising anomaly events at more
  than ``guard_factor`` times the rate they had on the old one abort the rollout — the
  new model makes the machines *look* sicker. The new model's events are counted over
  each device's time on it so far (at most ``trial_s``), the old model's over the
  device's known history before its activation (what the controller saw); the old
  rate is taken as one event more than were seen, so that a short or quiet history
  does not make a few events look like a rise, and at least ``guard_min_events`` are
  needed;
* with ``trial_s``, a device's wave counts as done only when it has run the new model
  that long (the guard's span);
* it **completes** when the last wave has all its outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from vibewatch.protocol import OtaState

__all__ = [
    "FAILURES",
    "OUTCOMES",
    "DeviceProgress",
    "DeviceState",
    "Phase",
    "Rollout",
    "RolloutPlan",
    "Step",
    "failure_reason",
]


class DeviceState(StrEnum):
    """Where one target device is in a rollout."""

    QUEUED = "queued"
    """Its wave has not started."""
    SENT = "sent"
    """The job was published to it; no report yet."""
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    TRIAL = "trial"
    """The new model is active on trial."""
    CONFIRMED = "confirmed"
    """The trial passed: the device runs the new model for good."""
    FAILED = "failed"
    """The device refused the job or could not install the model (the detail says why)."""
    ROLLED_BACK = "rolled_back"
    """The device fell back to its previous model."""
    TIMED_OUT = "timed_out"
    """No outcome within the timeout."""
    CANCELLED = "cancelled"
    """The rollout aborted before the device finished: its job was withdrawn."""


OUTCOMES: Final = frozenset(
    {
        DeviceState.CONFIRMED,
        DeviceState.FAILED,
        DeviceState.ROLLED_BACK,
        DeviceState.TIMED_OUT,
        DeviceState.CANCELLED,
    }
)
"""The states a device's part of a rollout ends in."""
FAILURES: Final = frozenset({DeviceState.FAILED, DeviceState.ROLLED_BACK, DeviceState.TIMED_OUT})
"""The outcomes that count against the rollout."""

#: The start of the detail of a device the rollout sent back to its previous model.
SENT_BACK: Final = "sent back to its previous model"

#: The states in which a device runs the new model.
_ON_NEW_MODEL: Final = frozenset({DeviceState.TRIAL, DeviceState.CONFIRMED})

#: What each state a device reports on ``ota/req`` means for its part of the rollout.
_REPORTED: Final = {
    OtaState.DOWNLOADING: DeviceState.DOWNLOADING,
    OtaState.VERIFYING: DeviceState.VERIFYING,
    OtaState.ACTIVATED: DeviceState.TRIAL,
    OtaState.INSTALLED: DeviceState.CONFIRMED,
    OtaState.FAILED: DeviceState.FAILED,
    OtaState.ROLLED_BACK: DeviceState.ROLLED_BACK,
}


class Phase(StrEnum):
    """Where a rollout is as a whole."""

    RUNNING = "running"
    PAUSED = "paused"
    """No new wave starts; devices already sent their job go on."""
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True)
class RolloutPlan:
    """What a rollout ships to whom, and its limits.

    Attributes:
        model_id: The model.
        version: The version to install.
        targets: The devices, in the order they get the model.
        canary: Devices in the first wave.
        waves: After the canaries, the share of all targets each wave reaches, growing,
            the last 1.0.
        max_failure_rate: Share of the started devices that may fail before the
            rollout aborts, in [0, 1).
        timeout_s: Seconds a device has, from its job, to reach an outcome.
        trial_s: Seconds a device is watched on the new model before its wave counts as
            done; 0: until the device confirms the model.
        guard_factor: The regression guard trips at more than this many times the
            anomaly events of the old model; 0 turns it off.
        guard_min_events: Fewest events on the new model that can trip the guard.
        rollback: The version is not above what targets run: the jobs carry the signed
            rollback statement (the ``rollback`` flag of ``ota/job``).
    """

    model_id: str
    version: int
    targets: tuple[str, ...]
    canary: int = 1
    waves: tuple[float, ...] = (0.1, 0.5, 1.0)
    max_failure_rate: float = 0.05
    timeout_s: float = 900.0
    trial_s: float = 0.0
    guard_factor: float = 3.0
    guard_min_events: int = 3
    rollback: bool = False

    def problems(self) -> list[str]:
        """What is wrong with the plan; empty when it can run."""
        out = []
        if not self.targets:
            out.append("no target devices")
        if len(set(self.targets)) != len(self.targets):
            out.append("a device is targeted twice")
        if not 1 <= self.canary <= max(1, len(self.targets)):
            out.append(f"canary must be 1 to {len(self.targets)} devices, not {self.canary}")
        if not self.waves or self.waves[-1] != 1.0:
            out.append(f"the last wave must reach 100 % of the targets, not {self._shares()}")
        if any(not a < b <= 1.0 for a, b in zip((0.0, *self.waves), self.waves, strict=False)):
            out.append(f"wave shares must grow, each in (0, 100 %]: {self._shares()}")
        if not 0 <= self.max_failure_rate < 1:
            out.append(f"the failure rate limit must be in [0, 100 %), not {self.max_failure_rate}")
        if not self.timeout_s > 0:
            out.append(f"the timeout must be > 0 s, not {self.timeout_s:g}")
        if not self.trial_s >= 0:
            out.append(f"the trial must be >= 0 s, not {self.trial_s:g}")
        if not self.guard_factor >= 0:
            out.append(f"the guard factor must be >= 0 (0: off), not {self.guard_factor:g}")
        if self.guard_min_events < 1:
            out.append(f"the guard's fewest events must be >= 1, not {self.guard_min_events}")
        return out

    def _shares(self) -> str:
        return ",".join(f"{share:.0%}" for share in self.waves) or "none"

    def wave_members(self) -> list[tuple[str, ...]]:
        """The devices each wave adds: the canaries, then each share's new devices (a
        share that adds none is no wave)."""
        out = [self.targets[: self.canary]]
        reached = self.canary
        for share in self.waves:
            upto = max(reached, math.ceil(share * len(self.targets)))
            if upto > reached:
                out.append(self.targets[reached:upto])
                reached = upto
        return out


@dataclass
class DeviceProgress:
    """One target's part of a rollout.

    Attributes:
        state: Where it is.
        wave: Its wave, 0 for the canaries.
        sent_s: When its job was sent (``None`` while queued).
        changed_s: When its state last changed.
        detail: The device's reason, for ``failed`` and ``rolled_back``.
        activated_s: When it reported the new model active (``None`` before).
    """

    state: DeviceState = DeviceState.QUEUED
    wave: int = 0
    sent_s: float | None = None
    changed_s: float = 0.0
    detail: str = ""
    activated_s: float | None = None


def failure_reason(progress: DeviceProgress) -> str:
    """Why a target failed, in a few words to count failures by: ``timeout`` for one
    ``timed_out``, ``sent_back`` for one the rollout sent back to its previous model (an
    abort, the operator's rollback), else the reason the device gave (``signature``,
    ``golden``, ...: the firmware's ``vw_status_name``), ``unspecified`` when it gave
    none."""
    if progress.state is DeviceState.TIMED_OUT:
        return "timeout"
    if progress.state is DeviceState.ROLLED_BACK and progress.detail.startswith(SENT_BACK):
        return "sent_back"
    return progress.detail.strip() or "unspecified"


@dataclass(frozen=True)
class Step:
    """What the controller is to do after a call.

    Attributes:
        send: Devices to publish the job to (their wave just started).
        roll_back: Devices to send back to their previous model (the rollout aborted).
        withdraw: Devices whose job goes (no device is to take it any more).
    """

    send: tuple[str, ...] = ()
    roll_back: tuple[str, ...] = ()
    withdraw: tuple[str, ...] = ()


@dataclass
class Rollout:
    """A rollout in progress (see the module documentation).

    Attributes:
        rollout_id: Its id.
        plan: The plan.
        devices: Each target's progress.
        wave: The wave that started last (-1 before :meth:`start`).
        phase: Where the rollout is as a whole.
        reason: Why it aborted or paused.
    """

    rollout_id: str
    plan: RolloutPlan
    devices: dict[str, DeviceProgress] = field(default_factory=dict)
    wave: int = -1
    phase: Phase = Phase.RUNNING
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.devices:
            self.devices = {
                device: DeviceProgress(wave=index)
                for index, members in enumerate(self.plan.wave_members())
                for device in members
            }

    @property
    def job_id(self) -> str:
        """The id of the job every target gets (``ota/job`` and its reports name it)."""
        return f"{self.rollout_id}.{self.plan.model_id}.v{self.plan.version}"

    @property
    def waves(self) -> int:
        """How many waves the rollout has."""
        return len(self.plan.wave_members())

    def start(self, now_s: float) -> Step:
        """Start the canary wave."""
        if self.wave >= 0:
            return Step()
        return self._start_wave(0, now_s)

    def report(self, device: str, state: OtaState, now_s: float, detail: str = "") -> Step:
        """A target reported a state of this rollout's job; returns what follows from it.

        Reports of devices that are not targets or whose job was not sent are ignored,
        a device reporting the new model active after an abort is sent back, and the same
        state reported again is ignored (a device reports the outcome of a
        retained job again at every connection).
        """
        progress = self.devices.get(device)
        if progress is None or progress.sent_s is None:
            return Step()
        new = _REPORTED[state]
        if self.phase is Phase.ABORTED and new in _ON_NEW_MODEL:
            # it finished a download the abort cancelled, or a report crossed the rollback
            progress.state, progress.changed_s = DeviceState.ROLLED_BACK, now_s
            progress.detail = f"{SENT_BACK}: the rollout aborted: {self.reason}"
            return Step(roll_back=(device,))
        if new != progress.state:
            progress.state, progress.changed_s = new, now_s
            progress.detail = detail if new in FAILURES else ""
        if new in _ON_NEW_MODEL and progress.activated_s is None:
            progress.activated_s = now_s
        return self._advance(now_s)

    def guard(
        self,
        events: Mapping[str, Sequence[float]],
        since: Mapping[str, float],
        now_s: float,
    ) -> Step:
        """The regression guard (module documentation); an abort when it trips.

        Args:
            events: The times of each device's anomaly events.
            since: When each device's known history starts (events before are not
                known); a device without an entry has none before its activation.
            now_s: The time now.
        """
        if self.plan.guard_factor <= 0 or self.phase in (Phase.COMPLETED, Phase.ABORTED):
            return Step()
        before = after = 0
        before_s = after_s = 0.0
        for device, progress in self.devices.items():
            start = progress.activated_s
            if start is None or progress.state not in _ON_NEW_MODEL:
                continue
            end = now_s if self.plan.trial_s <= 0 else min(now_s, start + self.plan.trial_s)
            known = min(since.get(device, start), start)
            times = events.get(device, ())
            after += sum(start <= t < end for t in times)
            before += sum(known <= t < start for t in times)
            after_s += max(0.0, end - start)
            before_s += start - known
        if after < self.plan.guard_min_events or before_s <= 0:
            return Step()
        # the old model's rate, counting one event more than seen: a short or quiet
        # history is no proof that the fleet is quiet
        expected = (before + 1) * after_s / before_s
        if after > self.plan.guard_factor * expected:
            return self.abort(
                f"regression guard: {after} anomaly events on the new model over "
                f"{after_s:.0f} device-seconds, against {before} on the old one over "
                f"{before_s:.0f} ({self.plan.guard_factor:g} x {expected:.1f} expected at "
                "most)",
                now_s,
            )
        return Step()

    def tick(self, now_s: float) -> Step:
        """Time passed: devices past the timeout, then what follows from it."""
        for progress in self.devices.values():
            late = progress.sent_s is not None and now_s - progress.sent_s > self.plan.timeout_s
            if late and progress.state not in OUTCOMES:
                progress.state, progress.changed_s = DeviceState.TIMED_OUT, now_s
                progress.detail = f"no outcome within {self.plan.timeout_s:g} s"
        return self._advance(now_s)

    def pause(self, reason: str = "paused by the operator") -> None:
        """Start no new wave until :meth:`resume`."""
        if self.phase is Phase.RUNNING:
            self.phase, self.reason = Phase.PAUSED, reason

    def resume(self, now_s: float) -> Step:
        """Go on after :meth:`pause`."""
        if self.phase is not Phase.PAUSED:
            return Step()
        self.phase, self.reason = Phase.RUNNING, ""
        return self._advance(now_s)

    def abort(self, reason: str, now_s: float) -> Step:
        """Stop for good: no further wave; the devices running the new model (on trial or
        confirmed) are to be rolled back (``rolled_back``), and those still on their way
        to it are ``cancelled``."""
        if self.phase in (Phase.COMPLETED, Phase.ABORTED):
            return Step()
        self.phase, self.reason = Phase.ABORTED, reason
        for progress in self.devices.values():
            if progress.sent_s is not None and progress.state not in OUTCOMES | _ON_NEW_MODEL:
                progress.state, progress.changed_s = DeviceState.CANCELLED, now_s
                progress.detail = f"the rollout aborted: {reason}"
        back = self._send_back(f"the rollout aborted: {reason}", now_s)
        sent = tuple(d for d, p in self.devices.items() if p.sent_s is not None)
        return Step(roll_back=back.roll_back, withdraw=sent)

    def roll_back(self, reason: str, now_s: float) -> Step:
        """The operator's rollback: every device running the new model is to go back to
        its previous one, also after the rollout completed; a running rollout aborts."""
        if self.phase in (Phase.RUNNING, Phase.PAUSED):
            return self.abort(reason, now_s)
        return self._send_back(reason, now_s)

    def _send_back(self, reason: str, now_s: float) -> Step:
        back = tuple(d for d, p in self.devices.items() if p.state in _ON_NEW_MODEL)
        for device in back:
            progress = self.devices[device]
            progress.state, progress.changed_s = DeviceState.ROLLED_BACK, now_s
            progress.detail = f"{SENT_BACK}: {reason}"
        return Step(roll_back=back, withdraw=back)

    def counts(self) -> dict[str, int]:
        """How many targets are in each state (states with none left out)."""
        out: dict[str, int] = {}
        for progress in self.devices.values():
            out[progress.state.value] = out.get(progress.state.value, 0) + 1
        return out

    def wave_counts(self) -> list[dict[str, int]]:
        """For each wave, the canaries first, how many of its devices are in each state."""
        out: list[dict[str, int]] = [{} for _ in range(self.waves)]
        for progress in self.devices.values():
            counts = out[progress.wave]
            counts[progress.state.value] = counts.get(progress.state.value, 0) + 1
        return out

    @property
    def converged(self) -> bool:
        """Whether every target runs the new model for good."""
        return all(p.state is DeviceState.CONFIRMED for p in self.devices.values())

    # ------------------------------------------------------------------ rules
    def _start_wave(self, wave: int, now_s: float) -> Step:
        self.wave = wave
        members = tuple(d for d, p in self.devices.items() if p.wave == wave)
        for device in members:
            progress = self.devices[device]
            progress.state, progress.sent_s, progress.changed_s = DeviceState.SENT, now_s, now_s
        return Step(send=members)

    def _advance(self, now_s: float) -> Step:
        if self.phase in (Phase.COMPLETED, Phase.ABORTED) or self.wave < 0:
            return Step()
        started = [p for p in self.devices.values() if p.sent_s is not None]
        failed = [p for p in started if p.state in FAILURES]
        canary_failed = [p for p in failed if p.wave == 0]
        if canary_failed:
            first = canary_failed[0]
            why = f" ({first.detail})" if first.detail else ""
            return self.abort(f"a canary failed: {first.state.value}{why}", now_s)
        if len(failed) > self.plan.max_failure_rate * len(started):
            return self.abort(
                f"{len(failed)} of {len(started)} devices failed, more than "
                f"{self.plan.max_failure_rate:.0%}",
                now_s,
            )
        if any(p.state not in OUTCOMES for p in started):
            return Step()
        watching = self.plan.trial_s > 0 and any(
            p.activated_s is not None
            and p.state is DeviceState.CONFIRMED
            and now_s < p.activated_s + self.plan.trial_s
            for p in started
        )
        if watching:  # the guard's span is not over
            return Step()
        if self.wave + 1 >= self.waves:
            self.phase = Phase.COMPLETED
            return Step()
        if self.phase is Phase.PAUSED:
            return Step()
        return self._start_wave(self.wave + 1, now_s)
