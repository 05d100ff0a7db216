"""Simulated devices: the firmware's device layer fed with the vibration of its own machine.

A :class:`SimDevice` is one sensor: a :class:`~vibewatch.edge.SlotDevice` (model slots in
storage that survives a reboot, Ed25519 checks through ``cryptography``) with the C device
layer (:class:`~vibewatch.edge.Device`) on it, a machine of its own (speed, resonance,
noise levels drawn near the defaults) and the faults its scenario gives it, whose
severity grows with simulated time. Every ``window_period_s`` of simulated time it takes
one window of samples (:func:`vibewatch.signals.generate`) and hands it to the device; what
the device publishes goes to the ``publish`` callback. A :class:`Fleet` is the scenario's
devices on one clock (:class:`SimClock`: real time times a speedup, or driven by hand in
tests)::

    fleet = Fleet(scenario, blob, public_key, publish=lambda device, suffix, payload: True)
    for device in fleet.devices.values():
        device.device.connected()
    while running:
        fleet.run_due()        # the windows that fell due, then each device's poll
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.edge.device import Device, DeviceSettings
from vibewatch.edge.ota import DeviceCapabilities, SlotDevice
from vibewatch.edge.vwm import decode_header
from vibewatch.signals import Fault, FaultKind, Machine, generate
from vibewatch.sim.scenario import FaultPlan, Scenario

__all__ = ["Clock", "Fleet", "ManualClock", "SimClock", "SimDevice", "device_machine"]

#: The firmware version simulated devices report.
FIRMWARE = "1.0.0-sim"
#: 2025-12-01T00:00:00Z: where simulated wall clocks start unless told otherwise.
EPOCH_MS = 1_764_547_200_000
#: How far a simulated machine's speed, resonance and noise levels stray from the defaults
#: (a uniform factor in [1 - spread, 1 + spread]). The factory model learnt the default
#: machine: at 3 % no healthy device of a fleet of 50 crosses its threshold in 600 windows,
#: at 5 % one does, at 10 % fourteen do (machines that far apart need thresholds of their
#: own: the ``calibrate`` command).
MACHINE_SPREAD = 0.03


class Clock(Protocol):
    """Simulated time."""

    def now_s(self) -> float:
        """Simulated seconds since the start."""
        ...

    def wall_ms(self) -> int:
        """Simulated wall clock, milliseconds since the epoch."""
        ...


class SimClock:
    """Real time times ``speedup``, from ``start_wall_ms`` on the simulated wall clock."""

    def __init__(
        self,
        speedup: float = 1.0,
        start_wall_ms: int = EPOCH_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._speedup = speedup
        self._start_wall_ms = start_wall_ms
        self._monotonic = monotonic
        self._t0 = monotonic()

    def now_s(self) -> float:
        return (self._monotonic() - self._t0) * self._speedup

    def wall_ms(self) -> int:
        return self._start_wall_ms + int(self.now_s() * 1000)


class ManualClock:
    """Simulated time that moves only when told (:meth:`advance`)."""

    def __init__(self, start_wall_ms: int = EPOCH_MS) -> None:
        self._start_wall_ms = start_wall_ms
        self._now_s = 0.0

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        self._now_s += seconds

    def now_s(self) -> float:
        return self._now_s

    def wall_ms(self) -> int:
        return self._start_wall_ms + int(self._now_s * 1000)


def device_machine(rng: random.Random) -> Machine:
    """A machine of the default kind, its speed, resonance and levels drawn within
    :data:`MACHINE_SPREAD` of the defaults."""
    base = Machine()

    def near(value: float) -> float:
        return value * rng.uniform(1 - MACHINE_SPREAD, 1 + MACHINE_SPREAD)

    return Machine(
        shaft_hz=near(base.shaft_hz),
        resonance_hz=near(base.resonance_hz),
        harmonics_g=tuple(near(g) for g in base.harmonics_g),
        machine_noise_g=near(base.machine_noise_g),
        rolling_noise_g=near(base.rolling_noise_g),
        sensor_noise_g=near(base.sensor_noise_g),
    )


class SimDevice:
    """One simulated sensor (see the module documentation).

    Args:
        device_id: The device's id.
        blob: The factory model, provisioned into slot A.
        public_key: The fleet's key: OTA jobs must be signed with its private half.
        publish: Receives ``(suffix, payload)`` of every uplink message; returns whether
            the message was taken.
        clock: Simulated time.
        machine: The machine the sensor sits on.
        faults: The faults that develop on it.
        seed: Seed of its signal.
        settings: The device layer's settings (the defaults when None).
        window_period_s: Simulated seconds between two windows.
    """

    def __init__(
        self,
        device_id: str,
        blob: bytes,
        public_key: Ed25519PublicKey,
        *,
        publish: Callable[[str, bytes], bool],
        clock: Clock,
        machine: Machine,
        faults: tuple[FaultPlan, ...] = (),
        seed: int = 0,
        settings: DeviceSettings | None = None,
        window_period_s: float = 1.0,
    ) -> None:
        spec = decode_header(blob).spec
        self.id = device_id
        self.machine = machine
        self.faults = faults
        self.windows = 0
        self._rate_hz = spec.sample_rate_hz
        self._window = spec.window
        self._publish = publish
        self._clock = clock
        self._seed = seed
        self._settings = settings or DeviceSettings()
        self._period_s = window_period_s
        self._next_s = clock.now_s() + window_period_s
        self.slots = SlotDevice(
            public_key,
            DeviceCapabilities(sample_rate_hz=spec.sample_rate_hz, max_window=spec.window),
        )
        self.slots.boot()
        self.slots.provision(blob)
        self._boot_s = clock.now_s()
        self.device = self._start()

    def _start(self) -> Device:
        return Device(
            self.slots,
            firmware=FIRMWARE,
            publish=self._publish,
            clock_ms=self._uptime_ms,
            wall_ms=self._clock.wall_ms,
            capabilities=("ota", "raw", *self.slots.limits.capabilities()),
            settings=self._settings,
        )

    def _uptime_ms(self) -> int:
        return int((self._clock.now_s() - self._boot_s) * 1000)

    def reboot(self) -> None:
        """Power off and on: RAM is lost, storage (models, boot count) stays; the device
        boots again and starts counting its uptime from zero."""
        self.slots.boot()
        self._boot_s = self._clock.now_s()
        self.device = self._start()

    def severities(self, t_s: float) -> dict[FaultKind, float]:
        """The severity of each of its faults ``t_s`` simulated seconds after the start."""
        return {plan.kind: plan.severity_at(t_s) for plan in self.faults}

    def samples(self, t_s: float) -> npt.NDArray[np.float32]:
        """The window of samples the sensor takes at simulated time ``t_s``."""
        faults = [Fault(kind, s) for kind, s in self.severities(t_s).items() if s > 0]
        return generate(
            self.machine,
            duration_s=self._window / self._rate_hz,
            sample_rate_hz=self._rate_hz,
            faults=faults,
            seed=(self._seed * 1_000_003 + self.windows) % 2**32,
        )

    def run_due(self) -> int:
        """Feed the windows that fell due since the last call, then poll the device;
        returns how many windows ran."""
        now = self._clock.now_s()
        ran = 0
        while self._next_s <= now:
            self.device.window(self.samples(self._next_s))
            self.windows += 1
            ran += 1
            self._next_s += self._period_s
        self.device.poll()
        return ran


class Fleet:
    """A scenario's devices on one clock.

    Args:
        scenario: The fleet, its faults (the link and power knobs are the transport's).
        blob: The factory model every device starts with.
        public_key: The fleet's OTA key.
        publish: Receives ``(device id, suffix, payload)``; returns whether it was taken.
        clock: Simulated time; a :class:`SimClock` at the scenario's speedup when None.
        settings: The device layer's settings for every device (the defaults when None).
        window_period_s: Simulated seconds between two windows of a device.
    """

    def __init__(
        self,
        scenario: Scenario,
        blob: bytes,
        public_key: Ed25519PublicKey,
        *,
        publish: Callable[[str, str, bytes], bool],
        clock: Clock | None = None,
        settings: DeviceSettings | None = None,
        window_period_s: float = 1.0,
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock or SimClock(scenario.speedup)
        faulty = scenario.faulty_devices()
        rng = random.Random(scenario.seed)
        self.devices: dict[str, SimDevice] = {}
        for index, device_id in enumerate(scenario.device_ids()):

            def send(suffix: str, payload: bytes, device_id: str = device_id) -> bool:
                return publish(device_id, suffix, payload)

            self.devices[device_id] = SimDevice(
                device_id,
                blob,
                public_key,
                publish=send,
                clock=self.clock,
                machine=device_machine(rng),
                faults=tuple(faulty.get(device_id, ())),
                seed=scenario.seed * 100_003 + index,
                settings=settings,
                window_period_s=window_period_s,
            )

    def run_due(self) -> int:
        """Every device's windows that fell due; returns how many ran."""
        return sum(device.run_due() for device in self.devices.values())

    def finished(self) -> bool:
        """Whether the scenario's simulated span is over (never when it has none)."""
        span = self.scenario.duration_s
        return span > 0 and self.clock.now_s() >= span
