"""Physics-based vibration of a rotating machine with a rolling-element bearing.

:func:`generate` returns what an accelerometer on the bearing housing reads, in g, sampled
at a given rate. The signal is the sum of

* **shaft harmonics**: the residual imbalance and run-out of a healthy rotor at 1x, 2x,
  3x ... with decaying amplitudes, growing with the square of the speed (the centrifugal
  force ``m e omega**2`` of a residual imbalance ``m e``);
* **machine noise**: structure-borne noise of the running machine (electromagnetic,
  airflow) below about 1 kHz, proportional to speed;
* **rolling noise**: random excitation of the structural resonance by the rolling
  contacts, proportional to load and speed;
* **sensor noise**: white, up to Nyquist;
* the **faults** given, each with a severity in [0, 1] that may grow over the recording:

  - ``imbalance``: a larger 1x, also proportional to the speed squared;
  - ``misalignment``: 2x dominant, with 3x and some 1x, proportional to the load (the
    reaction of a misaligned coupling to the transmitted torque); a radial sensor sees this
    mostly axial motion through the cross-coupling of the housing;
  - ``looseness``: a loose part driven at 1x and at the sub-harmonic 0.5x (it lifts every
    other revolution) whose motion is truncated where it meets its base, a nonlinearity that
    adds harmonics of 0.5x; each landing is a knock (a half-sine pulse of 2 ms, whose
    spectrum carries the harmonics of 0.5x up to a few hundred Hz) that also rings the
    resonance, and the part chatters at random, raising the noise floor below 300 Hz;
  - ``outer_race``, ``inner_race``, ``ball``: a local defect struck once per passage of a
    rolling element (:class:`DefectFrequencies`). Every strike is an impulse that rings
    the structural resonance (a damped sinusoid, see :class:`Machine`), each interval
    between strikes slips at random by about 1 %, and the strike is as strong as the load
    on the struck element (Stribeck's load zone): constant for a defect on the stationary
    outer race (at the centre of the load zone), modulated at the shaft rate for the inner
    race (the defect turns through the load zone once per revolution), at the cage rate FTF
    for a ball (the cage carries it through the load zone). The envelope of the band around
    the resonance therefore repeats at BPFO, BPFI or BSF, with sidebands at 1x or FTF.

Every component follows the instantaneous speed: the shaft angle is the integral of the
speed profile, and every harmonic and every strike is placed on that angle, so a speed ramp
moves all lines together. Amplitudes are stated at the machine's nominal speed
(:attr:`Machine.shaft_hz`) and load 1.

Repeatability: each component draws from its own random stream derived from ``seed``, so
the same arguments give the same array, and adding a fault of severity 0 gives exactly the
healthy array.

Calibration with the defaults: a healthy machine has a 1x of 0.02 g (0.7 mm/s RMS at
29.95 Hz, zone A of ISO 10816-1 for medium machines) and an overall level of about 0.04 g
RMS (the healthy drive-end recording of the CWRU rig: 0.07 g). Imbalance at severity 0.5
brings the 1x to about 6 mm/s RMS (zone C), at severity 1 to about 11 mm/s (zone D). A
bearing defect at severity 0.5 strikes the resonance with 0.5 g peaks: a clear envelope
spectrum and a kurtosis near 7, at two to three times the healthy RMS.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from vibewatch.errors import DataError

Array: TypeAlias = npt.NDArray[np.float64]

#: A quantity over the recording: a constant, a linear ramp ``(start, end)`` from the first
#: to the last sample, or a function of time in seconds (an array) returning the values.
Profile: TypeAlias = float | tuple[float, float] | Callable[[Array], npt.ArrayLike]

FaultKind: TypeAlias = Literal[
    "outer_race", "inner_race", "ball", "imbalance", "misalignment", "looseness"
]
#: Every :data:`FaultKind`, in a fixed order.
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

#: Peak of one strike of the resonance, in g, at severity 1, nominal speed and load 1 (at
#: the centre of the load zone).
_STRIKE_G = 1.0
#: 1x amplitude in g of the imbalance at severity 1 and nominal speed.
_IMBALANCE_G = 0.3
#: 1x, 2x, 3x amplitudes in g of the misalignment at severity 1 and load 1.
_MISALIGNMENT_G = (0.05, 0.2, 0.08)
#: Looseness at severity 1: scale in g of the truncated motion, peak in g of the knock of
#: each landing, and peak in g of the resonance it rings.
_LOOSENESS_G = 0.25
_KNOCK_G = 0.3
_RATTLE_G = 0.1
#: Contact time of a landing: its half-sine knock has a flat spectrum up to about
#: 1 / (2 * contact time), so the landings add harmonics of 0.5x up to a few hundred Hz.
_CONTACT_S = 0.002
#: The loose part also chatters at random: RMS in g at severity 1 of the noise it adds
#: below _CHATTER_HZ, the raised noise floor between the harmonics of looseness spectra.
_CHATTER_G = 0.1
_CHATTER_HZ = 300.0
#: Corner frequency of the structure-borne noise of the running machine.
_MACHINE_NOISE_HZ = 1000.0
#: Relative amplitude of the loose part's 0.5x motion, and where it is truncated (in units
#: of its 1x amplitude): the part lifts on every other revolution and lands on its base.
_HALF_ORDER = 0.7
_TRUNCATION = 0.6
#: Load distribution factor of Stribeck and Harris: 0.5 is a bearing without radial
#: clearance, whose load zone spans half the circumference.
_LOAD_ZONE_EPSILON = 0.5
#: Load-deflection exponent of point contacts (ball bearings).
_LOAD_ZONE_EXPONENT = 1.5
#: Share of the full strike a rolling element delivers outside the load zone: centrifugal
#: force and the axial preload usual in motor bearings keep it in contact with the races.
_UNLOADED_STRIKE = 0.4
#: Highest shaft order of note (the looseness harmonics), which the sample rate must carry.
_HIGHEST_ORDER = 10

# Stream ids of the random generators, one per component, so that adding a component does
# not change the numbers drawn by another.
_STREAM_HARMONICS = 0
_STREAM_SENSOR = 1
_STREAM_ROLLING = 2
_STREAM_MACHINE = 3
_STREAM_FAULT = 10


@dataclass(frozen=True)
class DefectFrequencies:
    """Characteristic frequencies of a rolling-element bearing, in Hz.

    Attributes:
        ftf: Fundamental train (cage) frequency.
        bpfo: Ball pass frequency of the outer race: strikes of a defect on the outer race.
        bpfi: Ball pass frequency of the inner race: strikes of a defect on the inner race.
        bsf: Ball defect frequency: strikes of a defect on one rolling element. This is
            twice the spin frequency of the element, since the defect meets the inner and
            the outer race once each per spin revolution (the convention of the CWRU
            bearing data tables; the spin frequency itself is ``bsf / 2``).
    """

    ftf: float
    bpfo: float
    bpfi: float
    bsf: float


@dataclass(frozen=True, kw_only=True)
class Bearing:
    """Geometry of a rolling-element bearing.

    Attributes:
        n_elements: Number of rolling elements.
        ball_diameter: Diameter ``d`` of a rolling element (any unit, the same as below).
        pitch_diameter: Pitch diameter ``D`` of the element set.
        contact_angle_deg: Contact angle ``alpha`` in degrees (0 for a deep-groove bearing
            under radial load).
    """

    n_elements: int
    ball_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.n_elements < 1:
            raise DataError(f"bearing n_elements {self.n_elements} is not at least 1")
        if not 0 < self.ball_diameter < self.pitch_diameter:
            raise DataError(
                f"bearing ball_diameter {self.ball_diameter} is not between 0 and "
                f"pitch_diameter {self.pitch_diameter}"
            )
        if not 0 <= self.contact_angle_deg < 90:
            raise DataError(f"bearing contact_angle_deg {self.contact_angle_deg} not in [0, 90)")

    def defect_frequencies(self, shaft_hz: float) -> DefectFrequencies:
        """Defect frequencies at a shaft speed, with a stationary outer race.

        With ``n`` elements, ``r = d / D * cos(alpha)`` and shaft frequency ``f``, the
        kinematics of rolling without slip give (Harris, *Rolling Bearing Analysis*)::

            FTF  = f / 2 * (1 - r)
            BPFO = n * f / 2 * (1 - r)
            BPFI = n * f / 2 * (1 + r)
            BSF  = f * D / d * (1 - r**2)      (twice the spin frequency, see bsf)

        Args:
            shaft_hz: Shaft rotation frequency in Hz; 1.0 gives the orders.

        Returns:
            The four frequencies in Hz.
        """
        r = (
            self.ball_diameter
            / self.pitch_diameter
            * math.cos(math.radians(self.contact_angle_deg))
        )
        half = shaft_hz / 2
        return DefectFrequencies(
            ftf=half * (1 - r),
            bpfo=self.n_elements * half * (1 - r),
            bpfi=self.n_elements * half * (1 + r),
            bsf=shaft_hz * self.pitch_diameter / self.ball_diameter * (1 - r * r),
        )


#: The SKF 6205-2RS JEM deep-groove bearing at the drive end of the CWRU test rig
#: (9 balls of 0.3126 in on a 1.537 in pitch circle).
CWRU_DRIVE_END = Bearing(n_elements=9, ball_diameter=0.3126, pitch_diameter=1.537)


@dataclass(frozen=True, kw_only=True)
class Machine:
    """A rotating machine: its nominal speed, bearing, structure and healthy levels.

    Attributes:
        shaft_hz: Nominal shaft speed in Hz (29.95 Hz is 1797 rpm); the default speed
            profile, and the speed at which amplitudes are stated.
        bearing: Geometry of the monitored bearing.
        resonance_hz: Natural frequency of the structural resonance the strikes ring.
        damping: Damping ratio of that resonance (0.03: a strike rings for about
            ``1 / (damping * 2 pi resonance_hz)`` = 1.5 ms at 3.5 kHz).
        harmonics_g: Amplitudes in g of the healthy 1x, 2x, 3x ... lines.
        machine_noise_g: RMS in g of the structure-borne noise of the running machine
            (electromagnetic, airflow), falling off above 1 kHz; proportional to speed.
        rolling_noise_g: RMS in g of the resonance driven by the rolling contacts.
        sensor_noise_g: RMS in g of the white sensor noise (a MEMS accelerometer of
            25 ug/sqrt(Hz) gives 0.004 g up to 24 kHz).
        slip: Standard deviation of each interval between strikes, relative to the
            kinematic interval: rolling elements slip a little and the cage wanders.
    """

    shaft_hz: float = 29.95
    bearing: Bearing = CWRU_DRIVE_END
    resonance_hz: float = 3500.0
    damping: float = 0.03
    harmonics_g: tuple[float, ...] = (0.02, 0.008, 0.004, 0.002)
    machine_noise_g: float = 0.015
    rolling_noise_g: float = 0.03
    sensor_noise_g: float = 0.005
    slip: float = 0.01

    def __post_init__(self) -> None:
        _require_positive("machine shaft_hz", self.shaft_hz)
        _require_positive("machine resonance_hz", self.resonance_hz)
        if not 0 < self.damping < 1:
            raise DataError(f"machine damping {self.damping} is not in (0, 1)")
        levels = {
            "machine_noise_g": self.machine_noise_g,
            "rolling_noise_g": self.rolling_noise_g,
            "sensor_noise_g": self.sensor_noise_g,
        }
        levels |= {f"harmonics_g[{i}]": g for i, g in enumerate(self.harmonics_g)}
        for name, value in levels.items():
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"machine {name} {value} is not a finite level >= 0")
        if not 0 <= self.slip <= 0.1:
            raise DataError(f"machine slip {self.slip} is not in [0, 0.1]")


#: How far machines of one kind stray from one another: a uniform factor in
#: ``[1 - spread, 1 + spread]`` on the default machine's speed, resonance and noise levels
#: (:func:`varied_machine`). The factory model learns machines drawn within it and the
#: simulated fleet is made of them; machines further apart need thresholds of their own
#: (the device's ``calibrate`` command).
MACHINE_SPREAD = 0.03


def varied_machine(rng: random.Random, spread: float = MACHINE_SPREAD) -> Machine:
    """A machine of the default kind, its speed, resonance and levels each drawn within
    ``spread`` of the defaults (:data:`MACHINE_SPREAD`).

    Raises:
        DataError: ``spread`` is not in [0, 1).
    """
    if not 0 <= spread < 1:
        raise DataError(f"machine spread {spread} is not in [0, 1)")
    base = Machine()

    def near(value: float) -> float:
        return value * rng.uniform(1 - spread, 1 + spread)

    return Machine(
        shaft_hz=near(base.shaft_hz),
        resonance_hz=near(base.resonance_hz),
        harmonics_g=tuple(near(g) for g in base.harmonics_g),
        machine_noise_g=near(base.machine_noise_g),
        rolling_noise_g=near(base.rolling_noise_g),
        sensor_noise_g=near(base.sensor_noise_g),
    )


@dataclass(frozen=True)
class Fault:
    """A fault and its severity.

    Attributes:
        kind: One of :data:`FAULT_KINDS`.
        severity: Severity in [0, 1] at the start of the recording; 0 is healthy.
        severity_end: Severity at the end of the recording, reached by a linear ramp; None
            keeps ``severity`` throughout.
    """

    kind: FaultKind
    severity: float = 0.5
    severity_end: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise DataError(
                f"unknown fault kind {self.kind!r}, expected one of {', '.join(FAULT_KINDS)}"
            )
        for name, value in (("severity", self.severity), ("severity_end", self.severity_end)):
            if value is not None and not 0 <= value <= 1:
                raise DataError(f"fault {self.kind} {name} {value} is not in [0, 1]")


def _load_zone(angle: Array) -> Array:
    """Relative strike of a rolling element at ``angle`` (radians) from the load zone centre.

    The load distribution of Stribeck and Harris,
    ``q = q_max * (1 - (1 - cos(angle)) / (2 * epsilon)) ** n`` where the bracket is
    positive and 0 elsewhere, with ``epsilon = 0.5`` (no radial clearance) and ``n = 1.5``
    (ball bearings), lifted so that an unloaded element still strikes with
    :data:`_UNLOADED_STRIKE` of the full force: 0.4 outside the zone, 1 at its centre.
    """
    bracket = 1 - (1 - np.cos(angle)) / (2 * _LOAD_ZONE_EPSILON)
    q = np.clip(bracket, 0.0, None) ** _LOAD_ZONE_EXPONENT
    return _UNLOADED_STRIKE + (1 - _UNLOADED_STRIKE) * q


def generate(
    machine: Machine,
    *,
    duration_s: float,
    sample_rate_hz: float,
    faults: Sequence[Fault] = (),
    speed_hz: Profile | None = None,
    load: Profile = 1.0,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    """The accelerometer signal of a machine, in g.

    Args:
        machine: The machine.
        duration_s: Length of the recording in seconds (> 0).
        sample_rate_hz: Sample rate in Hz; above twice the resonance and the highest
            shaft harmonic.
        faults: Faults present, at most one of each kind.
        speed_hz: Shaft speed in Hz over the recording (> 0; see :data:`Profile`); None
            runs at ``machine.shaft_hz``.
        load: Load relative to the nominal one (>= 0; see :data:`Profile`); scales the
            bearing strikes, the rolling noise and the misalignment.
        seed: Seed (>= 0) of the random streams.

    Returns:
        ``round(duration_s * sample_rate_hz)`` float32 samples. For ``count`` consecutive
        windows of ``window`` samples, ask for ``count * window / sample_rate_hz`` seconds
        and reshape to ``(count, window)``.

    Raises:
        DataError: An argument is out of range; the message names it and its value.
    """
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise DataError(f"duration_s {duration_s} is not a positive number of seconds")
    _require_positive("sample_rate_hz", sample_rate_hz)
    n = round(duration_s * sample_rate_hz)
    if n < 1:
        raise DataError(
            f"duration_s {duration_s} at {sample_rate_hz} Hz is shorter than one sample"
        )
    return _synthesise(machine, n, sample_rate_hz, faults, speed_hz, load, seed)


def _synthesise(
    machine: Machine,
    n: int,
    fs: float,
    faults: Sequence[Fault],
    speed_hz: Profile | None,
    load: Profile,
    seed: int,
) -> npt.NDArray[np.float32]:
    """The signal of :func:`generate`: ``n`` samples at ``fs`` Hz (both already checked)."""
    if seed < 0:
        raise DataError(f"seed {seed} is not >= 0")
    kinds = [fault.kind for fault in faults]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            raise DataError(f"fault kind {kind} given {kinds.count(kind)} times, at most once")
    t = np.arange(n) / fs
    speed = _profile("speed_hz", machine.shaft_hz if speed_hz is None else speed_hz, t)
    if not np.all(speed > 0):
        raise DataError(f"speed_hz must stay > 0, got {float(speed.min())} Hz")
    force = _profile("load", load, t)
    if not np.all(force >= 0):
        raise DataError(f"load must stay >= 0, got {float(force.min())}")
    if fs <= 2 * machine.resonance_hz:
        raise DataError(
            f"sample_rate_hz {fs} is too low for the resonance at {machine.resonance_hz} Hz: "
            f"its Nyquist frequency {fs / 2:g} Hz must be above it"
        )
    order = max(len(machine.harmonics_g), _HIGHEST_ORDER)
    if fs <= 2 * order * float(speed.max()):
        raise DataError(
            f"sample_rate_hz {fs} is too low for shaft order {order} at "
            f"{order * float(speed.max()):g} Hz: its Nyquist frequency {fs / 2:g} Hz "
            "must be above it"
        )

    revolutions = np.concatenate(([0.0], np.cumsum(speed[:-1]) / fs))  # shaft angle / 2 pi
    ratio = speed / machine.shaft_hz
    centrifugal = ratio**2
    signal = np.zeros(n)
    # Everything that rings the resonance is summed here and filtered once.
    excitation = np.zeros(n)

    # exp(i * shaft angle / 2): every shaft-synchronous line is a power of it (see _lines).
    half_rotor = np.empty(n, dtype=np.complex128)
    half_rotor.real = np.cos(np.pi * revolutions)
    half_rotor.imag = np.sin(np.pi * revolutions)
    rotor = half_rotor * half_rotor
    signal += centrifugal * _lines(rotor, machine.harmonics_g, _stream(seed, _STREAM_HARMONICS))

    resonator = _Resonator(machine.resonance_hz, machine.damping, fs)
    rolling = _stream(seed, _STREAM_ROLLING).standard_normal(n)
    excitation += machine.rolling_noise_g / resonator.noise_gain * force * ratio * rolling

    for fault in faults:
        rng = _stream(seed, _STREAM_FAULT + FAULT_KINDS.index(fault.kind))
        severity = np.linspace(
            fault.severity,
            fault.severity if fault.severity_end is None else fault.severity_end,
            n,
        )
        if fault.kind == "imbalance":
            signal += severity * centrifugal * _lines(rotor, (_IMBALANCE_G,), rng)
        elif fault.kind == "misalignment":
            signal += severity * force * _lines(rotor, _MISALIGNMENT_G, rng)
        elif fault.kind == "looseness":
            motion, landings = _loose_part(half_rotor, rng)
            level = severity * centrifugal
            signal += _LOOSENESS_G * level * motion
            signal += _knocks(landings, _KNOCK_G * level[landings], fs, n)
            signal += _CHATTER_G * level * _low_noise(rng, n, _CHATTER_HZ / fs)
            excitation[landings] += _RATTLE_G * level[landings]
        else:
            level = severity * force * ratio
            excitation += _bearing_strikes(fault.kind, machine, revolutions, level, rng)

    machine_noise = _low_noise(_stream(seed, _STREAM_MACHINE), n, _MACHINE_NOISE_HZ / fs)
    signal += machine.machine_noise_g * ratio * machine_noise
    signal += resonator.ring(excitation)
    signal += machine.sensor_noise_g * _stream(seed, _STREAM_SENSOR).standard_normal(n)
    return signal.astype(np.float32)


def _bearing_strikes(
    kind: FaultKind,
    machine: Machine,
    revolutions: Array,
    level: Array,
    rng: np.random.Generator,
) -> Array:
    """Impulse train of a bearing defect, one impulse per strike, ready to ring.

    Strikes fall at whole numbers of defect cycles (the defect order times the shaft
    revolutions), each interval stretched by ``1 + machine.slip * N(0, 1)``, and strike
    with ``level`` times the load on the struck element; a strike between two
    samples is shared between them in proportion (linear interpolation), which keeps its
    timing finer than a sample.
    """
    orders = machine.bearing.defect_frequencies(1.0)
    order = {"outer_race": orders.bpfo, "inner_race": orders.bpfi, "ball": orders.bsf}[kind]
    cycles = order * revolutions
    # Intervals are at least 0.5 cycles, so these many strikes reach past the end.
    count = int(2 * cycles[-1]) + 2
    intervals = np.clip(1 + machine.slip * rng.standard_normal(count), 0.5, None)
    at_cycles = rng.uniform(0, 1) + np.cumsum(intervals) - intervals[0]
    at_cycles = at_cycles[at_cycles < cycles[-1]]
    position = np.interp(at_cycles, cycles, np.arange(len(cycles), dtype=np.float64))
    index = np.minimum(position.astype(np.int64), len(cycles) - 2)
    frac = position - index
    amplitude = _STRIKE_G * level[index]
    if kind == "inner_race":
        amplitude *= _load_zone(2 * np.pi * (revolutions[index] + rng.uniform(0, 1)))
    elif kind == "ball":
        amplitude *= _load_zone(2 * np.pi * (orders.ftf * revolutions[index] + rng.uniform(0, 1)))
    n = len(cycles)
    return _sum_at(index, amplitude * (1 - frac), n) + _sum_at(index + 1, amplitude * frac, n)


def _loose_part(
    half_rotor: npt.NDArray[np.complex128], rng: np.random.Generator
) -> tuple[Array, npt.NDArray[np.intp]]:
    """Truncated motion of a loose part (zero mean) and the samples where it lands.

    The part follows ``0.7 cos(shaft angle / 2) + cos(shaft angle)`` (random phases) until
    it meets its base at -0.6, where the motion is cut off. ``half_rotor`` is
    ``exp(i * shaft angle / 2)``.
    """
    free = _lines(half_rotor, (_HALF_ORDER, 1.0), rng)
    motion = np.maximum(free, -_TRUNCATION)
    # The accelerometer is AC-coupled: it does not see the offset of the truncated motion.
    motion -= motion.mean()
    landing = np.flatnonzero((free[:-1] > -_TRUNCATION) & (free[1:] <= -_TRUNCATION)) + 1
    return motion, landing


def _low_noise(rng: np.random.Generator, n: int, corner: float) -> Array:
    """Unit-RMS noise below ``corner`` (in cycles per sample): low-passed white noise.

    The first-order low-pass ``y[k] = (1 - a) x[k] + a y[k-1]`` with
    ``a = exp(-2 pi corner)`` turns unit white noise into noise of variance
    ``(1 - a) / (1 + a)``, which the result is scaled by.
    """
    a = math.exp(-2 * math.pi * corner)
    low: Array = lfilter([1 - a], [1, -a], rng.standard_normal(n))
    return low * math.sqrt((1 + a) / (1 - a))


def _knocks(at: npt.NDArray[np.intp], peaks: Array, fs: float, n: int) -> Array:
    """Half-sine pulses of :data:`_CONTACT_S` starting at samples ``at``, over ``n`` samples."""
    length = max(round(_CONTACT_S * fs), 1)
    shape = np.sin(np.pi * (np.arange(length) + 0.5) / length)
    index = (at[:, None] + np.arange(length)).ravel()
    weights = (peaks[:, None] * shape).ravel()
    inside = index < n
    return _sum_at(index[inside], weights[inside], n)


def _sum_at(index: npt.NDArray[np.integer[Any]], weights: Array, n: int) -> Array:
    """``n`` samples, each the sum of the ``weights`` whose ``index`` is that sample's."""
    return np.bincount(index, weights, n).astype(np.float64, copy=False)


def _lines(
    rotor: npt.NDArray[np.complex128], amplitudes: Sequence[float], rng: np.random.Generator
) -> Array:
    """Sum of the orders 1, 2, 3 ... of a rotation with the given amplitudes, random phases.

    ``Re(sum_k a_k exp(i phi_k) rotor**k)`` by Horner's rule: one complex product per order
    instead of a cosine of the whole recording per order.
    """
    phasors = np.asarray(amplitudes) * np.exp(2j * np.pi * rng.uniform(0, 1, len(amplitudes)))
    total = np.zeros(rotor.shape, dtype=np.complex128)
    for phasor in phasors[::-1]:
        total += phasor
        total *= rotor
    return total.real.copy()


class _Resonator:
    """The structural resonance: a two-pole filter whose impulse response rings.

    A single-degree-of-freedom system of natural frequency ``f_n`` and damping ratio
    ``zeta`` has the impulse response ``exp(-zeta w_n t) sin(w_d t)``, with
    ``w_n = 2 pi f_n`` and ``w_d = w_n sqrt(1 - zeta**2)``. Sampled at ``fs`` (impulse
    invariance) it is the recursion
    ``y[k] = b x[k] + 2 p cos(W) y[k-1] - p**2 y[k-2]`` with ``p = exp(-zeta w_n / fs)``
    and ``W = w_d / fs``; ``b = sin(W)`` makes a unit impulse ring with a peak near 1.
    """

    def __init__(self, natural_hz: float, damping: float, fs: float) -> None:
        w_n = 2 * np.pi * natural_hz
        big_w = w_n * math.sqrt(1 - damping**2) / fs
        pole = math.exp(-damping * w_n / fs)
        self.b = np.array([math.sin(big_w)])
        self.a = np.array([1.0, -2 * pole * math.cos(big_w), pole * pole])
        # RMS out for unit white noise in: the root of the energy of the impulse response,
        # which has decayed below 1e-9 after ln(1e9) / (1 - pole) samples.
        length = int(math.log(1e9) / (1 - pole)) + 1
        impulse = np.zeros(length)
        impulse[0] = 1.0
        self.noise_gain = float(np.sqrt(np.sum(self.ring(impulse) ** 2)))

    def ring(self, excitation: Array) -> Array:
        """The resonance's response to an excitation."""
        response: Array = lfilter(self.b, self.a, excitation)
        return response


def _stream(seed: int, stream: int) -> np.random.Generator:
    """The random generator of one component."""
    return np.random.default_rng([seed, stream])


def _profile(name: str, profile: Profile, t: Array) -> Array:
    """Values of a profile at the sample times ``t``, checked to be finite numbers."""
    try:
        if callable(profile):
            values = np.asarray(profile(t), dtype=np.float64)
        elif isinstance(profile, tuple) and len(profile) == 2:
            values = np.linspace(float(profile[0]), float(profile[1]), len(t))
        else:
            values = np.asarray(float(profile))
        values = np.broadcast_to(values, t.shape)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name} {profile!r} is not a number, a (start, end) ramp or a function of time "
            f"giving one number per sample: {exc}"
        ) from exc
    if not np.all(np.isfinite(values)):
        raise DataError(f"{name} {profile!r} gives values that are not finite")
    return values


def _require_positive(name: str, value: float) -> None:
    """Refuse a value that is not a finite number above 0."""
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"{name} {value} is not a positive number")
