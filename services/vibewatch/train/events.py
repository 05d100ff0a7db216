"""The anomaly events a device would raise on a recording, through the firmware's own
device layer.

People are paged by anomaly *events*, not by windows: the device's debounced state
machine starts an anomaly when ``k`` of its last ``n`` windows score at or above the
threshold, and ends it after ``m`` windows below the release level
(:class:`~vibewatch.edge.device.DeviceSettings`). :func:`recording_events` feeds a
recording's samples, window after window without overlap as a sensor samples them
(divided by their RMS when the model was trained so), to the C device layer
(:class:`~vibewatch.edge.device.Device`) running the model's blob, and collects the
events it publishes. Times are seconds of recording from its first window.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import FeatureSpec
from vibewatch.edge.device import Device, DeviceSettings
from vibewatch.edge.ota import DeviceCapabilities, SlotDevice
from vibewatch.edge.vwm import decode_header
from vibewatch.train.recordings import Normalise, device_windows

__all__ = ["RecordingEvents", "recording_events"]

#: Wall time of the first window (the device needs one to stamp its messages).
_EPOCH_MS = 1_800_000_000_000


@dataclass(frozen=True)
class RecordingEvents:
    """The anomaly events of one channel of a recording.

    Attributes:
        name: ``PATH@CHANNEL``.
        windows: Windows the device scored.
        seconds: Seconds of recording they span.
        starts_s: When each anomaly started, seconds from the first window's start (the
            end of the window that started it).
    """

    name: str
    windows: int
    seconds: float
    starts_s: tuple[float, ...]

    @property
    def events(self) -> int:
        """Anomalies started."""
        return len(self.starts_s)

    def as_json(self) -> dict[str, object]:
        """Plain JSON data."""
        return {
            "recording": self.name,
            "windows": self.windows,
            "seconds": self.seconds,
            "events": self.events,
            "first_event_s": self.starts_s[0] if self.starts_s else None,
        }


def recording_events(
    blob: bytes,
    recording: str,
    *,
    sample_rate_hz: int | None = None,
    normalise: Normalise | None = None,
    settings: DeviceSettings | None = None,
) -> list[RecordingEvents]:
    """The anomaly events the device layer, running ``blob``, raises on each channel of a
    recording argument (``PATH[@CHANNEL][:START_S-END_S]``).

    Raises:
        DataError: The recording cannot be read or cut into windows.
        EdgeError: The device layer refuses the model or the settings.
    """
    spec = decode_header(blob).spec
    # the events are what counts: few telemetry messages, no feature vectors
    quiet = dataclasses.replace(
        settings or DeviceSettings(), batch_windows=100, batch_ms=0, features_every=0
    )
    return [
        _channel_events(blob, spec, name, windows, quiet)
        for name, windows in device_windows(
            recording, spec, sample_rate_hz=sample_rate_hz, normalise=normalise
        )
    ]


def _channel_events(
    blob: bytes,
    spec: FeatureSpec,
    name: str,
    windows: npt.NDArray[np.floating[Any]],
    settings: DeviceSettings,
) -> RecordingEvents:
    window_ms = 1000 * spec.window / spec.sample_rate_hz
    slots = SlotDevice(
        Ed25519PrivateKey.generate().public_key(),  # provisioning checks no signature
        DeviceCapabilities(sample_rate_hz=spec.sample_rate_hz, max_window=spec.window),
    )
    slots.boot()
    slots.provision(blob)
    done = 0
    starts: list[float] = []

    def publish(suffix: str, payload: bytes) -> bool:
        if suffix == "event" and json.loads(payload).get("kind") == "start":
            starts.append(done * window_ms / 1000)
        return True

    device = Device(
        slots,
        firmware="evaluate",
        publish=publish,
        clock_ms=lambda: int(done * window_ms),
        wall_ms=lambda: _EPOCH_MS + int(done * window_ms),
        settings=settings,
    )
    device.connected()
    for samples in windows:
        done += 1  # the window is over when it is scored
        device.window(samples)
    seconds = len(windows) * window_ms / 1000
    return RecordingEvents(name, len(windows), seconds, tuple(starts))
