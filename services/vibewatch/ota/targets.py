"""Which devices a rollout targets, and whether they can take the model: the checks of
``vibewatch ota deploy`` before it creates a rollout.

Pure logic over what the devices last said of themselves
(:class:`~vibewatch.ota.store.KnownDevice`) and the package's manifest:

* targets are named one by one (``--devices``), by group (``--group``: a group of the
  configuration, ``[ota] groups``, whose members are device ids or globs; or a label
  selector ``key=value`` over the labels of ``vibewatch devices label``), or all;
* each target must be able to run the model, as far as its status says: the feature
  spec's sample rate equal to the device's, its window within the device's largest, the
  blob within a slot, the engine memory within the device's
  (:class:`~vibewatch.protocol.DeviceLimits`); a limit a device does not name is not
  checked here (the device refuses a model it cannot run, with ``spec``);
* the version must be above what each target runs, unless the rollout is a signed
  rollback; a rollback must go below what some target runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from vibewatch.errors import VibewatchError
from vibewatch.ota.store import KnownDevice
from vibewatch.protocol import DeviceLimits

__all__ = ["TargetError", "fit_problems", "select_targets", "version_problems"]

#: Devices named in one message before "and N more".
_LISTED: Final = 5


class TargetError(VibewatchError):
    """Targets that cannot be chosen (unknown devices or groups, an empty choice); the
    message says which."""


def _listed(items: Sequence[str]) -> str:
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more


def select_targets(
    known: Sequence[KnownDevice],
    *,
    devices: Iterable[str] = (),
    groups: Iterable[str] = (),
    all_devices: bool = False,
    config_groups: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, ...]:
    """The target devices, each once, in the order named (a group's and ``all`` by id).

    Args:
        known: Every device a status was received from.
        devices: Device ids.
        groups: Group names of ``config_groups``, or label selectors ``key=value``.
        all_devices: Every known device.
        config_groups: The configured groups: name to device ids and globs.

    Raises:
        TargetError: An unknown device, group or label, or a group that selects none.
    """
    by_id = {device.device: device for device in known}
    chosen: list[str] = []
    if all_devices:
        chosen += sorted(by_id)
    named = list(devices)
    unknown = [d for d in named if d not in by_id]
    if unknown:
        raise TargetError(f"unknown devices (no status received from them): {_listed(unknown)}")
    chosen += named
    configured = dict(config_groups or {})
    for group in groups:
        if "=" in group:
            key, _, value = group.partition("=")
            members = sorted(d.device for d in known if d.labels.get(key.strip()) == value.strip())
            if not members:
                raise TargetError(f"no device is labelled {key.strip()}={value.strip()}")
        elif group in configured:
            members = _group_members(group, configured[group], by_id)
        else:
            names = ", ".join(sorted(configured)) or "none configured"
            raise TargetError(
                f"unknown group {group!r} (groups of [ota] groups: {names}; "
                "or a label selector KEY=VALUE)"
            )
        chosen += members
    return tuple(dict.fromkeys(chosen))


def _group_members(
    group: str, members: Sequence[str], by_id: Mapping[str, KnownDevice]
) -> list[str]:
    out: list[str] = []
    for member in members:
        if "*" in member or "?" in member:
            out += sorted(d for d in by_id if fnmatch.fnmatchcase(d, member))
        elif member in by_id:
            out.append(member)
        else:
            raise TargetError(
                f"group {group}: unknown device {member!r} (no status received from it)"
            )
    if not out:
        raise TargetError(f"group {group} matches no known device ({_listed(list(members))})")
    return out


def fit_problems(manifest: Mapping[str, Any], targets: Sequence[KnownDevice]) -> list[str]:
    """What keeps targets from running the model of ``manifest``, from the limits their
    status names; empty when nothing does."""
    spec = manifest.get("feature_spec") or {}
    need = manifest.get("device") or {}
    wanted = (
        ("sample_rate_hz", spec.get("sample_rate_hz"), "samples at {have} Hz, the model's "
         "feature spec at {want} Hz"),
        ("max_window", spec.get("window"), "computes windows of at most {have} samples, the "
         "model needs {want}"),
        ("flash_bytes", need.get("flash_bytes"), "holds models of at most {have} bytes, the "
         "model has {want}"),
        ("ram_bytes", need.get("ram_bytes"), "has {have} bytes of engine memory, the model "
         "needs {want}"),
    )  # fmt: skip
    problems: dict[str, list[str]] = {}
    for device in targets:
        limits = DeviceLimits.from_capabilities(device.status.get("capabilities") or ())
        for name, want, text in wanted:
            have = getattr(limits, name)
            if have is None or not isinstance(want, int):
                continue
            short = have != want if name == "sample_rate_hz" else want > have
            if short:
                problems.setdefault(text.format(have=have, want=want), []).append(device.device)
    return [f"{_listed(devices)}: {why}" for why, devices in problems.items()]


def version_problems(
    model_id: str, version: int, targets: Sequence[KnownDevice], *, rollback: bool
) -> list[str]:
    """What is wrong with installing ``version`` on the targets: not above what one runs
    (for an update), or not below what any runs (for a rollback)."""
    runs = {
        d.device: d.model_version or 0
        for d in targets
        if d.model_id == model_id and d.model_version is not None
    }
    if rollback:
        if runs and all(v <= version for v in runs.values()):
            return [f"no target runs a version above {version}: nothing to roll back"]
        return []
    ahead = [f"{d} runs version {v}" for d, v in runs.items() if v >= version]
    if ahead:
        return [
            f"version {version} is not above what the targets run ({_listed(ahead)}); "
            "to go back, --rollback with the version's signed rollback statement "
            "(`vibewatch models sign-rollback`)"
        ]
    return []
