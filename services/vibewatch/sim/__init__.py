"""The fleet simulator: devices that run the firmware's C device layer, each with its own
MQTT connection (:class:`~vibewatch.sim.link.DeviceLink`), in a scenario
(:class:`~vibewatch.sim.scenario.Scenario`: the fleet, developing faults, link and power
knobs); :class:`~vibewatch.sim.fleet.Fleet` runs a scenario's devices on one clock."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vibewatch.sim.fleet import Fleet, ManualClock, SimClock, SimDevice
    from vibewatch.sim.link import DeviceLink, LinkFaults
    from vibewatch.sim.scenario import (
        FaultPlan,
        LinkPlan,
        PowerPlan,
        Scenario,
        ScenarioError,
        load_scenario,
        parse_fault,
    )

#: Where each name lives; imported on first use, so that ``vibewatch --help`` (which
#: imports the ``sim`` command) does not load the signal generator and the C core.
_HOMES = {
    "Fleet": "fleet",
    "ManualClock": "fleet",
    "SimClock": "fleet",
    "SimDevice": "fleet",
    "DeviceLink": "link",
    "LinkFaults": "link",
    "FaultPlan": "scenario",
    "LinkPlan": "scenario",
    "PowerPlan": "scenario",
    "Scenario": "scenario",
    "ScenarioError": "scenario",
    "load_scenario": "scenario",
    "parse_fault": "scenario",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "DeviceLink",
    "FaultPlan",
    "Fleet",
    "LinkFaults",
    "LinkPlan",
    "ManualClock",
    "PowerPlan",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SimDevice",
    "load_scenario",
    "parse_fault",
]
