"""A device learns its own baseline (``calibrate``): per-device thresholds on a fleet of
quiet and noisy machines, through the C device layer of simulated devices."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.vwm import decode_header
from vibewatch.protocol import Command, CommandName
from vibewatch.signals import Machine
from vibewatch.sim.fleet import EPOCH_MS, ManualClock, SimDevice
from vibewatch.sim.scenario import FaultPlan

KEY = Ed25519PrivateKey.generate().public_key()
BLOB = FACTORY_MODEL.read_bytes()
THRESHOLD = decode_header(BLOB).threshold
CALIBRATION_WINDOWS = 600
HEALTHY_WINDOWS = 3000
ONSET_S = CALIBRATION_WINDOWS + HEALTHY_WINDOWS + 0.5


def with_ceiling(blob: bytes, ceiling: float) -> bytes:
    """``blob`` with its threshold ceiling (header offset 56) set, its CRC sealed again."""
    out = bytearray(blob)
    struct.pack_into("<f", out, 56, ceiling)
    struct.pack_into("<I", out, 12, 0)
    struct.pack_into("<I", out, 12, zlib.crc32(out))
    return bytes(out)


def machine(noise: float) -> Machine:
    """The default machine with its noise floors scaled by ``noise``."""
    base = Machine()
    return replace(
        base,
        machine_noise_g=base.machine_noise_g * noise,
        rolling_noise_g=base.rolling_noise_g * noise,
        sensor_noise_g=base.sensor_noise_g * noise,
    )


class Sensor:
    """One simulated device and what it published."""

    def __init__(self, blob: bytes, noise: float, seed: int, fault: str = "") -> None:
        self.clock = ManualClock(EPOCH_MS)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        faults = (FaultPlan(fault, onset_s=ONSET_S, severity=0.5),) if fault else ()  # type: ignore[arg-type]
        self.sim = SimDevice(
            f"pump-{seed}",
            blob,
            KEY,
            publish=self._take,
            clock=self.clock,
            machine=machine(noise),
            faults=faults,
            seed=seed,
        )
        self.sim.device.connected()

    def _take(self, suffix: str, payload: bytes) -> bool:
        self.sent.append((suffix, json.loads(payload)))
        return True

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1.0)
            self.sim.run_due()

    def calibrate(self) -> float:
        command = Command("pump", "cal-1", self.clock.wall_ms(), CommandName.CALIBRATE)
        self.sim.device.command(command.encode())
        self.run(CALIBRATION_WINDOWS)
        replies = [p for s, p in self.sent if s == "cmd/reply" and p["id"] == "cal-1"]
        assert replies and replies[-1]["outcome"] == "done", replies
        status = [p for s, p in self.sent if s == "status"][-1]
        assert status["threshold_source"] == "calibration"
        assert status["threshold"] == replies[-1]["threshold"]
        return float(replies[-1]["threshold"])

    def starts(self) -> list[float]:
        """Seconds after the start of each anomaly start event."""
        return [
            (p["t"] - EPOCH_MS) / 1000
            for s, p in self.sent
            if s == "event" and p["kind"] == "start"
        ]


@pytest.mark.parametrize(("noise", "fault"), [(0.85, "outer_race"), (1.15, "ball")])
def test_quiet_and_noisy_machines_calibrate_out_their_false_alarms_and_still_see_faults(
    noise: float, fault: str
) -> None:
    assert decode_header(BLOB).threshold_ceiling == pytest.approx(2.0 * THRESHOLD)
    # with the factory threshold, a machine this far from the training data alarms
    plain = Sensor(BLOB, noise, seed=3)
    plain.run(HEALTHY_WINDOWS)
    assert plain.starts() != []

    own = Sensor(BLOB, noise, seed=3, fault=fault)
    threshold = own.calibrate()
    ceiling = np.float32(decode_header(BLOB).threshold_ceiling)
    assert threshold != THRESHOLD and np.float32(threshold) <= ceiling  # as the device holds it
    own.run(HEALTHY_WINDOWS)
    # no false event over the healthy span once calibrated (while it calibrates, the
    # model's threshold is in force)
    assert [t for t in own.starts() if t > CALIBRATION_WINDOWS] == []
    own.run(120)  # the fault develops at severity 0.5
    starts = [t for t in own.starts() if t > ONSET_S]
    assert starts and starts[0] - ONSET_S < 60, starts


def test_a_package_without_a_ceiling_lets_a_device_lower_its_threshold_never_raise_it() -> None:
    noisy = Sensor(with_ceiling(BLOB, 0.0), 1.25, seed=5)
    assert noisy.calibrate() == pytest.approx(THRESHOLD)  # the package's: no higher
    calibrated = [p for s, p in noisy.sent if s == "cmd/reply"][-1]
    assert calibrated["detail"] == "ceiling"
    noisy.sim.reboot()  # the calibration is stored with the model's identity
    noisy.sim.device.connected()
    status = [p for s, p in noisy.sent if s == "status"][-1]
    assert status["threshold_source"] == "calibration"
