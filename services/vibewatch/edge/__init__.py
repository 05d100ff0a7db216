"""The firmware core, in Python: the same C DSP, int8 engine and OTA code as the devices.

The C sources in ``edge_firmware/src`` are compiled into this package when it is installed
(``vibewatch.edge._vwcore``) and called through ctypes, so training, the simulator and the
tests compute features and scores exactly as the devices do.

* :func:`features` / :func:`features_batch` — the DSP (``vw_dsp.h``);
* :class:`Model` — a validated ``.vwm`` blob bound to the int8 engine (``vw_engine.h``);
* :func:`convert` — a full-integer int8 ``.tflite`` to a ``.vwm`` blob;
* :class:`SlotDevice` — the A/B OTA slot state machine over in-memory storage (``vw_ota.h``);
* :class:`Device` — the device layer on top of it (``vw_device.h``): windows in, the wire
  contract's messages out, through a port whose callbacks are Python.

Errors are :class:`vibewatch.errors.EdgeError`, whose ``reason`` is the C status name.
"""

from vibewatch.edge.convert import convert
from vibewatch.edge.device import Device, DeviceCounters, DeviceSettings
from vibewatch.edge.dsp import features, features_batch
from vibewatch.edge.engine import Model
from vibewatch.edge.ota import DeviceCapabilities, Manifest, OtaState, SlotDevice
from vibewatch.edge.spec import FeatureSpec

__all__ = [
    "Device",
    "DeviceCapabilities",
    "DeviceCounters",
    "DeviceSettings",
    "FeatureSpec",
    "Manifest",
    "Model",
    "OtaState",
    "SlotDevice",
    "convert",
    "features",
    "features_batch",
]
