"""The fleet simulator: devices that run the firmware's C device layer, each with its own
MQTT connection (:class:`~vibewatch.sim.link.DeviceLink`)."""

from vibewatch.sim.link import DeviceLink, LinkFaults

__all__ = ["DeviceLink", "LinkFaults"]
