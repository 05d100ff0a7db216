"""Rollouts as InfluxDB points, for the dashboards: pure, from a rollout and the time.

* ``ota_rollout``, one point per rollout: its phase, whether it is in progress, its
  waves, its targets per state (:func:`progress_points`);
* ``ota_wave``, one point per wave of it: the wave's targets per state;
* ``ota_failure``, one point per target that failed (:func:`failure_point`), at the time
  it failed, with the reason (:func:`~vibewatch.ota.rollout.failure_reason`).

Every state is written, 0 included, so a field is there from a rollout's first point on.
:class:`RolloutPoints` decides when the controller writes: a rollout's progress when it
changed, and every ``interval_s`` while it is in progress; a failure once. The state
database stays the record; ``docs/influxdb-schema.md`` describes the points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vibewatch.influx import schema
from vibewatch.influx.lineprotocol import FieldValue, Point, as_tag_value
from vibewatch.ota.rollout import FAILURES, DeviceState, Phase, Rollout, failure_reason

__all__ = ["RolloutPoints", "failure_point", "progress_points"]

_IN_PROGRESS = (Phase.RUNNING, Phase.PAUSED)


def _counts(counts: dict[str, int]) -> list[tuple[str, FieldValue]]:
    out: list[tuple[str, FieldValue]] = [(schema.DEVICES, sum(counts.values()))]
    out += [(schema.devices_field(s.value), counts.get(s.value, 0)) for s in DeviceState]
    return out


def _tags(rollout: Rollout, site: str, *more: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    tags = [(schema.MODEL_ID, rollout.plan.model_id), (schema.ROLLOUT_ID, rollout.rollout_id)]
    if site:
        tags.append((schema.SITE, site))
    return tuple(sorted([*tags, *more]))


def progress_points(rollout: Rollout, *, time_ms: int, site: str = "") -> list[Point]:
    """The ``ota_rollout`` point of ``rollout`` and an ``ota_wave`` point per wave.

    Args:
        rollout: The rollout.
        time_ms: The points' time, ms since the epoch (the controller's clock).
        site: The ``site`` tag; empty: none.
    """
    at = schema.time_ns(time_ms)
    whole: list[tuple[str, FieldValue]] = [
        (schema.PHASE, rollout.phase.value),
        (schema.IN_PROGRESS, int(rollout.phase in _IN_PROGRESS)),
        (schema.MODEL_VERSION, rollout.plan.version),
        (schema.WAVE, rollout.wave),
        (schema.WAVES, rollout.waves),
        *_counts(rollout.counts()),
    ]
    out = [Point(schema.ROLLOUT, _tags(rollout, site), tuple(whole), at)]
    for wave, counts in enumerate(rollout.wave_counts()):
        tags = _tags(rollout, site, (schema.WAVE, str(wave)))
        out.append(Point(schema.ROLLOUT_WAVE, tags, tuple(_counts(counts)), at))
    return out


def failure_point(rollout: Rollout, device: str, *, site: str = "") -> Point:
    """The ``ota_failure`` point of a target of ``rollout`` in a failed state, at the time
    it failed (a failure written again is the same point).

    Raises:
        ValueError: The target has not failed.
    """
    progress = rollout.devices[device]
    if progress.state not in FAILURES:
        raise ValueError(f"{device} has not failed in {rollout.rollout_id}: {progress.state}")
    tags = _tags(
        rollout,
        site,
        (schema.DEVICE, device),
        (schema.WAVE, str(progress.wave)),
        (schema.OUTCOME, progress.state.value),
        (schema.REASON, as_tag_value(failure_reason(progress))),
    )
    fields: tuple[tuple[str, FieldValue], ...] = ((schema.DETAIL, progress.detail),)
    at_ns = schema.time_ns(int(progress.changed_s * 1000))
    return Point(schema.ROLLOUT_FAILURE, tags, fields, at_ns)


@dataclass
class _Written:
    """What was last written of one rollout."""

    progress: tuple[object, ...] = ()
    at_s: float = 0.0
    failures: dict[str, tuple[DeviceState, float]] = field(default_factory=dict)


class RolloutPoints:
    """Which points of a rollout are due, from what was written before."""

    def __init__(self, *, interval_s: float, site: str = "") -> None:
        """Write a rollout's progress when it changes and every ``interval_s`` while it is
        in progress; tag the points with ``site`` (empty: no tag)."""
        self._interval_s = interval_s
        self._site = site
        self._written: dict[str, _Written] = {}

    def due(self, rollout: Rollout, now_s: float) -> list[Point]:
        """The points of ``rollout`` to write now (none when nothing is due); they count
        as written."""
        written = self._written.setdefault(rollout.rollout_id, _Written())
        progress = (rollout.phase, rollout.wave, rollout.wave_counts())
        out = []
        late = rollout.phase in _IN_PROGRESS and now_s - written.at_s >= self._interval_s
        if progress != written.progress or late:
            out += progress_points(rollout, time_ms=int(now_s * 1000), site=self._site)
            written.progress, written.at_s = progress, now_s
        for device, p in rollout.devices.items():
            if p.state in FAILURES and written.failures.get(device) != (p.state, p.changed_s):
                out.append(failure_point(rollout, device, site=self._site))
                written.failures[device] = (p.state, p.changed_s)
        return out

    def forget(self, rollout_id: str) -> None:
        """The controller is done with a rollout: what was written of it goes."""
        self._written.pop(rollout_id, None)
