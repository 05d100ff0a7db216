"""The fleet simulator: devices that run the firmware's C device layer, each with its own
MQTT connection (:class:`~vibewatch.sim.link.DeviceLink`), in a scenario
(:class:`~vibewatch.sim.scenario.Scenario`: the fleet, developing faults, link and power
knobs); :class:`~vibewatch.sim.fleet.Fleet` runs a scenario's devices on one clock."""

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
