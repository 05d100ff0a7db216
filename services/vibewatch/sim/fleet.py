"""Simulated devices: the firmware's device layer fed with the vibration of its own machine.

A :class:`SimDevice` is one sensor: a :class:`~vibewatch.edge.SlotDevice` (model slots in
storage that survives a reboot, Ed25519 checks through ``cryptography``) with the C device
layer (:class:`~vibewatch.edge.Device`) on it, a machine of its own (speed, resonance,
noise levels drawn near the defaults) and the faults its scenario gives it, whose
severity grows with simulated time. Every ``window_period_s`` of simulated time it takes
one window of samples (:func:`vibewatch.signals.generate`) and hands it to the device; what
the device publishes goes to the ``publish`` callback. Its machine runs at its nominal speed
and load 1, or as an :class:`Operation` says (speed and load over simulated time). For long
runs at accelerated time (:mod:`vibewatch.sim.soak`), :meth:`SimDevice.next_block` generates
many consecutive windows in one call and :meth:`SimDevice.feed` hands them to the device one
by one. A :class:`Fleet` is the scenario's
devices on one clock (:class:`SimClock`: real time times a speedup, or driven by hand in
tests)::

    fleet = Fleet(scenario, blob, public_key, publish=lambda device, suffix, payload: True)
    for device in fleet.devices.values():
        device.device.connected()
    while running:
        fleet.run_due()        # the windows that fell due, then each device's poll
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.edge.device import Device, DeviceSettings
from vibewatch.edge.ota import DeviceCapabilities, SlotDevice
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import DataError
from vibewatch.signals import Fault, FaultKind, Machine, Profile, generate, varied_machine
from vibewatch.sim.scenario import FaultPlan, Scenario

__all__ = [
    "Clock",
    "Fleet",
    "ManualClock",
    "Operation",
    "SimClock",
    "SimDevice",
]

#: The firmware version simulated devices report.
FIRMWARE = "1.0.0-sim"
#: 2025-12-01T00:00:00Z: where simulated wall clocks start unless told otherwise.
EPOCH_MS = 1_764_547_200_000


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


@dataclass(frozen=True)
class Operation:
    """How a machine is run over simulated time: its shaft speed and load at knots, linear
    between them and constant before the first and after the last.

    Attributes:
        times_s: Simulated seconds of the knots, increasing.
        speed_hz: Shaft speed at each knot, in Hz (> 0).
        load: Load at each knot, relative to the nominal one (>= 0).
    """

    times_s: tuple[float, ...]
    speed_hz: tuple[float, ...]
    load: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times_s or not len(self.times_s) == len(self.speed_hz) == len(self.load):
            raise DataError(
                f"operation: {len(self.times_s)} knot times, {len(self.speed_hz)} speeds and "
                f"{len(self.load)} loads; they must be as many, at least one"
            )
        if any(b <= a for a, b in itertools.pairwise(self.times_s)):
            raise DataError("operation: knot times must increase")
        if min(self.speed_hz) <= 0 or min(self.load) < 0:
            raise DataError("operation: speeds must be > 0 and loads >= 0")

    def speed_at(self, t_s: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Shaft speed in Hz at simulated times ``t_s``."""
        return np.asarray(np.interp(t_s, self.times_s, self.speed_hz), dtype=np.float64)

    def load_at(self, t_s: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Load at simulated times ``t_s``."""
        return np.asarray(np.interp(t_s, self.times_s, self.load), dtype=np.float64)


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
        operation: Speed and load over simulated time; None runs the machine at its
            nominal speed and load 1.
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
        operation: Operation | None = None,
    ) -> None:
        spec = decode_header(blob).spec
        self.id = device_id
        self.machine = machine
        self.faults = faults
        self.operation = operation
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

    @property
    def next_s(self) -> float:
        """Simulated time of the next window the device takes."""
        return self._next_s

    def samples(self, t_s: float) -> npt.NDArray[np.float32]:
        """The window of samples the sensor takes at simulated time ``t_s``."""
        faults = [Fault(kind, s) for kind, s in self.severities(t_s).items() if s > 0]
        speed: Profile | None = None
        load: Profile = 1.0
        if self.operation is not None:
            speed = float(self.operation.speed_at(t_s))
            load = float(self.operation.load_at(t_s))
        return generate(
            self.machine,
            duration_s=self._window / self._rate_hz,
            sample_rate_hz=self._rate_hz,
            faults=faults,
            speed_hz=speed,
            load=load,
            seed=(self._seed * 1_000_003 + self.windows) % 2**32,
        )

    def next_block(self, count: int) -> npt.NDArray[np.float32]:
        """The next ``count`` windows the sensor takes (at :attr:`next_s`, one
        ``window_period_s`` apart), ``(count, window)``, generated as one continuous signal.

        One :func:`~vibewatch.signals.generate` call for many windows costs a fraction of one
        call per window (its fixed cost per call is larger than the samples of one window).
        The windows of a block are back to back in the signal, while on the device they are
        snapshots ``window_period_s`` apart; for a machine whose condition changes slowly
        compared with a window that is statistically the same signal: each window still
        sees its own noise, its own strikes and the same harmonics and levels, and the
        speed, load and fault severity of its own time (the block's profiles map signal time
        to simulated time). What differs is that the phases of the shaft lines and the
        strike train run on across a block's windows instead of starting afresh, which the
        features (magnitudes of bands, RMS, kurtosis, crest) do not see; and that the noise
        filters and the resonance start from rest once per block instead of once per window,
        as in the factory model's training segments. The block is split where a fault
        appears or stops growing and at the knots of the operation, so that within each part
        speed, load and every severity are linear in time: ramps that
        :func:`~vibewatch.signals.generate` draws sample by sample.

        Raises:
            DataError: ``count`` is below 1.
        """
        if count < 1:
            raise DataError(f"a block of {count} windows; at least 1")
        times = self._next_s + self._period_s * np.arange(count, dtype=np.float64)
        kinks = {t for plan in self.faults for t in (plan.onset_s, plan.onset_s + plan.growth_s)}
        if self.operation is not None:
            kinks.update(self.operation.times_s)
        cuts = np.searchsorted(times, sorted(kinks))  # the first window at or after each
        bounds = sorted({0, count, *(int(i) for i in cuts if 0 < i < count)})
        parts = [self._block(times[a:b], self.windows + a) for a, b in itertools.pairwise(bounds)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _block(self, times: npt.NDArray[np.float64], index: int) -> npt.NDArray[np.float32]:
        """Windows at simulated ``times``, between which speed, load and severities are
        linear, the first being the device's ``index``-th."""
        count = len(times)
        first, last = float(times[0]), float(times[-1])
        # The ramps run from the first sample to the last, which the signal reaches a
        # window after the last window's start, less one sample.
        reach = (count * self._window - 1) / ((count - 1) * self._window) if count > 1 else 0.0

        def ramp(at: Callable[[float], float], low: float, high: float) -> tuple[float, float]:
            start = at(first)
            return start, min(max(start + (at(last) - start) * reach, low), high)

        faults = []
        for plan in self.faults:
            severity = ramp(plan.severity_at, 0.0, 1.0)
            if max(severity) > 0:
                faults.append(Fault(plan.kind, *severity))
        speed: Profile | None = None
        load: Profile = 1.0
        operation = self.operation
        if operation is not None:
            speed = ramp(lambda t: float(operation.speed_at(t)), 1e-3, math.inf)
            load = ramp(lambda t: float(operation.load_at(t)), 0.0, math.inf)
        samples = generate(
            self.machine,
            duration_s=count * self._window / self._rate_hz,
            sample_rate_hz=self._rate_hz,
            faults=faults,
            speed_hz=speed,
            load=load,
            seed=(self._seed * 1_000_003 + index) % 2**32,
        )
        return samples.reshape(count, self._window)

    def feed(self, samples: npt.ArrayLike) -> None:
        """Hand the window due at :attr:`next_s` to the device layer (which scores it and
        publishes what falls due) and move on to the next."""
        self.device.window(samples)
        self.windows += 1
        self._next_s += self._period_s

    def run_due(self) -> int:
        """Feed the windows that fell due since the last call, then poll the device;
        returns how many windows ran."""
        now = self._clock.now_s()
        ran = 0
        while self._next_s <= now:
            self.feed(self.samples(self._next_s))
            ran += 1
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
                machine=varied_machine(rng),
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
