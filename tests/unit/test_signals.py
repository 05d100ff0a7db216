"""vibewatch.signals: bearing kinematics, the physics of each fault, repeatability, refusals."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt

from vibewatch.errors import DataError
from vibewatch.signals import (
    CWRU_DRIVE_END,
    FAULT_KINDS,
    MACHINE_SPREAD,
    Bearing,
    Fault,
    Machine,
    generate,
    varied_machine,
)

FS = 48_000
MACHINE = Machine()
SHAFT_HZ = MACHINE.shaft_hz
DEFECTS = CWRU_DRIVE_END.defect_frequencies(SHAFT_HZ)
BEARING_FAULTS = {"outer_race": DEFECTS.bpfo, "inner_race": DEFECTS.bpfi, "ball": DEFECTS.bsf}
#: The envelope spectrum is searched above the shaft and cage modulation lines.
ENVELOPE_BAND_HZ = (50.0, 400.0)


def signal(*faults: Fault, duration_s: float = 2.0, **kwargs: Any) -> npt.NDArray[np.float64]:
    """The default machine at 48 kHz, as float64."""
    x = generate(MACHINE, duration_s=duration_s, sample_rate_hz=FS, faults=faults, **kwargs)
    return x.astype(np.float64)


def envelope_spectrum(
    x: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Frequencies and magnitudes of the envelope of the band around the resonance."""
    low, high = 0.7 * MACHINE.resonance_hz, 1.3 * MACHINE.resonance_hz
    sos = butter(4, [low, high], btype="bandpass", fs=FS, output="sos")
    envelope = np.abs(hilbert(sosfiltfilt(sos, x)))
    envelope -= envelope.mean()
    return np.fft.rfftfreq(len(x), 1 / FS), np.abs(np.fft.rfft(envelope))


def prominence(freqs: npt.NDArray[np.float64], mags: npt.NDArray[np.float64], hz: float) -> float:
    """Largest magnitude within 1 Hz of ``hz``, over the median of the envelope band."""
    band = (freqs > ENVELOPE_BAND_HZ[0]) & (freqs < ENVELOPE_BAND_HZ[1])
    near = np.abs(freqs - hz) <= 1.0
    return float(mags[near].max() / np.median(mags[band]))


def line(x: npt.NDArray[np.float64], hz: float) -> float:
    """Amplitude in g of the spectral line nearest ``hz`` (Hann window, within 1 Hz)."""
    mags = np.abs(np.fft.rfft(x * np.hanning(len(x)))) * 4 / len(x)
    near = np.abs(np.fft.rfftfreq(len(x), 1 / FS) - hz) <= 1.0
    return float(mags[near].max())


def strongest_line_hz(x: npt.NDArray[np.float64], low: float, high: float) -> float:
    """Frequency of the strongest spectral line between ``low`` and ``high`` Hz."""
    freqs = np.fft.rfftfreq(len(x), 1 / FS)
    mags = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    band = (freqs >= low) & (freqs <= high)
    return float(freqs[band][np.argmax(mags[band])])


# --- bearing kinematics -----------------------------------------------------------------


def test_cwru_drive_end_orders_match_the_published_table() -> None:
    orders = CWRU_DRIVE_END.defect_frequencies(1.0)
    assert orders.bpfo == pytest.approx(3.5848, rel=1e-4)
    assert orders.bpfi == pytest.approx(5.4152, rel=1e-4)
    assert orders.bsf == pytest.approx(4.7135, rel=1e-4)
    assert orders.ftf == pytest.approx(0.39828, rel=1e-4)


def test_defect_frequencies_scale_with_the_shaft_speed() -> None:
    at_1797_rpm = CWRU_DRIVE_END.defect_frequencies(1797 / 60)
    assert at_1797_rpm.bpfo == pytest.approx(3.5848 * 1797 / 60, rel=1e-4)
    assert at_1797_rpm.bpfi == pytest.approx(5.4152 * 1797 / 60, rel=1e-4)


def test_kinematic_identities_hold_with_a_contact_angle() -> None:
    bearing = Bearing(n_elements=12, ball_diameter=8.0, pitch_diameter=46.0, contact_angle_deg=40)
    f = bearing.defect_frequencies(25.0)
    assert f.bpfo + f.bpfi == pytest.approx(12 * 25.0)
    assert f.bpfo == pytest.approx(12 * f.ftf)
    # The contact angle shortens the effective ball diameter: the cage turns faster.
    assert (
        f.ftf
        > Bearing(n_elements=12, ball_diameter=8.0, pitch_diameter=46.0)
        .defect_frequencies(25.0)
        .ftf
    )


# --- repeatability and shape ------------------------------------------------------------


def test_same_seed_same_array_other_seed_other_array() -> None:
    faults = (Fault("inner_race"), Fault("looseness", 0.2, 0.8))
    first = generate(MACHINE, duration_s=0.5, sample_rate_hz=FS, faults=faults, seed=7)
    again = generate(MACHINE, duration_s=0.5, sample_rate_hz=FS, faults=faults, seed=7)
    other = generate(MACHINE, duration_s=0.5, sample_rate_hz=FS, faults=faults, seed=8)
    assert first.dtype == np.float32
    assert first.shape == (FS // 2,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_duration_of_whole_windows_gives_exactly_those_samples() -> None:
    x = generate(MACHINE, duration_s=12 * 1024 / FS, sample_rate_hz=FS, speed_hz=(25, 35))
    assert x.shape == (12 * 1024,)


def test_healthy_machine_is_small_and_gaussian() -> None:
    x = signal()
    rms = float(x.std())
    kurtosis = float(np.mean((x - x.mean()) ** 4) / x.var() ** 2)
    assert 0.01 < rms < 0.1
    assert kurtosis == pytest.approx(3.0, abs=0.3)
    assert line(x, SHAFT_HZ) > 2 * line(x, 2 * SHAFT_HZ) > 0


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_severity_zero_is_exactly_healthy(kind: Any) -> None:
    healthy = generate(MACHINE, duration_s=0.5, sample_rate_hz=FS, seed=3)
    zero = generate(MACHINE, duration_s=0.5, sample_rate_hz=FS, faults=(Fault(kind, 0.0),), seed=3)
    np.testing.assert_array_equal(zero, healthy)


# --- bearing faults in the envelope spectrum --------------------------------------------


@pytest.mark.parametrize(("kind", "hz"), BEARING_FAULTS.items())
def test_bearing_fault_envelope_peaks_at_its_defect_frequency(kind: Any, hz: float) -> None:
    freqs, mags = envelope_spectrum(signal(Fault(kind)))
    band = (freqs > ENVELOPE_BAND_HZ[0]) & (freqs < ENVELOPE_BAND_HZ[1])
    peak_hz = freqs[band][np.argmax(mags[band])]
    assert abs(peak_hz - hz) <= 2 * (freqs[1] - freqs[0])
    assert prominence(freqs, mags, hz) > 20


@pytest.mark.parametrize("speed_hz", [25.0, 35.0])
def test_healthy_envelope_has_no_defect_lines(speed_hz: float) -> None:
    freqs, mags = envelope_spectrum(signal(speed_hz=speed_hz))
    for order in (DEFECTS.bpfo, DEFECTS.bpfi, DEFECTS.bsf):
        assert prominence(freqs, mags, order / SHAFT_HZ * speed_hz) < 5


def test_inner_race_is_modulated_at_the_shaft_rate_outer_race_is_not() -> None:
    freqs, inner = envelope_spectrum(signal(Fault("inner_race")))
    assert prominence(freqs, inner, DEFECTS.bpfi - SHAFT_HZ) > 5
    assert prominence(freqs, inner, DEFECTS.bpfi + SHAFT_HZ) > 5
    freqs, outer = envelope_spectrum(signal(Fault("outer_race")))
    assert prominence(freqs, outer, DEFECTS.bpfo - SHAFT_HZ) < 5
    assert prominence(freqs, outer, DEFECTS.bpfo + SHAFT_HZ) < 5


def test_ball_fault_is_modulated_at_the_cage_rate() -> None:
    freqs, mags = envelope_spectrum(signal(Fault("ball")))
    assert prominence(freqs, mags, DEFECTS.bsf - DEFECTS.ftf) > 5
    assert prominence(freqs, mags, DEFECTS.bsf + DEFECTS.ftf) > 5


@pytest.mark.parametrize("speed_hz", [25.0, 35.0])
def test_defect_frequencies_follow_the_speed(speed_hz: float) -> None:
    freqs, mags = envelope_spectrum(signal(Fault("outer_race"), speed_hz=speed_hz))
    assert prominence(freqs, mags, DEFECTS.bpfo / SHAFT_HZ * speed_hz) > 20


def test_strikes_scale_with_the_load() -> None:
    fault = Fault("outer_race")
    at_1 = signal(fault, duration_s=0.5) - signal(duration_s=0.5)
    at_2 = signal(fault, duration_s=0.5, load=2.0) - signal(duration_s=0.5, load=2.0)
    np.testing.assert_allclose(at_2, 2 * at_1, atol=1e-6)


# --- shaft-synchronous faults -----------------------------------------------------------


def test_imbalance_raises_1x() -> None:
    healthy, faulty = signal(), signal(Fault("imbalance"))
    assert line(faulty, SHAFT_HZ) > 4 * line(healthy, SHAFT_HZ)
    assert line(faulty, 2 * SHAFT_HZ) < 1.5 * line(healthy, 2 * SHAFT_HZ)


def test_imbalance_grows_with_the_square_of_the_speed() -> None:
    """The centrifugal force of an unbalanced mass is m e omega**2."""
    slow = signal(Fault("imbalance"), speed_hz=25.0) - signal(speed_hz=25.0)
    fast = signal(Fault("imbalance"), speed_hz=35.0) - signal(speed_hz=35.0)
    assert line(fast, 35.0) / line(slow, 25.0) == pytest.approx((35 / 25) ** 2, rel=0.05)


def test_misalignment_raises_2x_above_1x() -> None:
    healthy, faulty = signal(), signal(Fault("misalignment"))
    assert line(faulty, 2 * SHAFT_HZ) > 4 * line(healthy, 2 * SHAFT_HZ)
    assert line(faulty, 3 * SHAFT_HZ) > 4 * line(healthy, 3 * SHAFT_HZ)
    assert line(faulty, 2 * SHAFT_HZ) > line(faulty, SHAFT_HZ)


def test_looseness_raises_the_subharmonic_and_many_harmonics() -> None:
    healthy, faulty = signal(), signal(Fault("looseness"))
    orders = np.arange(0.5, 10.5, 0.5)
    raised = [line(faulty, k * SHAFT_HZ) > 3 * line(healthy, k * SHAFT_HZ) for k in orders]
    assert line(faulty, 0.5 * SHAFT_HZ) > 10 * line(healthy, 0.5 * SHAFT_HZ)
    assert sum(raised) >= 15


# --- profiles over time -----------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_severity_ramp_grows_the_fault(kind: Any) -> None:
    fault_part = signal(Fault(kind, 0.0, 1.0), duration_s=4.0) - signal(duration_s=4.0)
    quarters = fault_part.reshape(4, -1).std(axis=1)
    assert quarters[3] > 2 * quarters[0]


def test_a_severity_ramp_makes_later_windows_more_energetic() -> None:
    rows = generate(
        MACHINE,
        duration_s=80 * 1024 / FS,
        sample_rate_hz=FS,
        faults=(Fault("outer_race", 0, 1),),
    ).reshape(80, 1024)
    rms = rows.std(axis=1)
    assert rms[-20:].mean() > 1.5 * rms[:20].mean()


@pytest.mark.parametrize("speed_hz", [25.0, 35.0])
def test_constant_speed_sets_the_1x_line(speed_hz: float) -> None:
    x = signal(speed_hz=speed_hz)
    assert strongest_line_hz(x, 10, 45) == pytest.approx(speed_hz, abs=1.0)


def test_speed_ramp_moves_the_1x_line() -> None:
    seconds = signal(Fault("imbalance"), duration_s=4.0, speed_hz=(25.0, 35.0)).reshape(4, -1)
    first, last = (strongest_line_hz(s, 10, 45) for s in (seconds[0], seconds[-1]))
    assert first == pytest.approx(26.25, abs=1.5)
    assert last == pytest.approx(33.75, abs=1.5)


def test_speed_steps_from_a_function_of_time() -> None:
    x = signal(duration_s=2.0, speed_hz=lambda t: np.where(t < 1.0, 25.0, 35.0))
    before, after = x.reshape(2, -1)
    assert strongest_line_hz(before, 10, 45) == pytest.approx(25.0, abs=1.0)
    assert strongest_line_hz(after, 10, 45) == pytest.approx(35.0, abs=1.0)


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("duration_s", [-1.0, 0.0, float("nan")])
def test_refuses_a_duration_that_is_not_positive(duration_s: float) -> None:
    with pytest.raises(DataError, match=rf"duration_s {duration_s}"):
        generate(MACHINE, duration_s=duration_s, sample_rate_hz=FS)


@pytest.mark.parametrize(
    ("severity", "severity_end", "named"),
    [(1.5, None, "severity 1.5"), (-0.1, None, "severity -0.1"), (0.5, 2.0, "severity_end 2.0")],
)
def test_refuses_a_severity_outside_0_1(
    severity: float, severity_end: float | None, named: str
) -> None:
    with pytest.raises(DataError, match=named):
        Fault("ball", severity, severity_end)


def test_refuses_an_unknown_fault_kind() -> None:
    kind: Any = "cage"
    with pytest.raises(DataError, match="unknown fault kind 'cage'"):
        Fault(kind)


def test_refuses_a_sample_rate_below_the_resonance_nyquist() -> None:
    with pytest.raises(DataError, match=r"sample_rate_hz 6000 .* resonance at 3500"):
        generate(MACHINE, duration_s=1.0, sample_rate_hz=6000)


def test_refuses_a_sample_rate_below_the_shaft_harmonics() -> None:
    slow = Machine(resonance_hz=100.0)
    with pytest.raises(DataError, match=r"sample_rate_hz 500 .* shaft order 10"):
        generate(slow, duration_s=1.0, sample_rate_hz=500, speed_hz=30.0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"speed_hz": 0.0}, "speed_hz"),
        ({"speed_hz": (30.0, -5.0)}, "speed_hz"),
        ({"speed_hz": "fast"}, "speed_hz 'fast'"),
        ({"speed_hz": lambda t: np.full(3, 30.0)}, "speed_hz"),
        ({"load": -1.0}, "load"),
        ({"load": lambda t: np.nan}, "load"),
        ({"seed": -1}, "seed -1"),
        ({"faults": (Fault("ball"), Fault("ball", 0.9))}, "fault kind ball given 2 times"),
    ],
)
def test_refuses_bad_arguments_by_name(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(DataError, match=named):
        generate(MACHINE, duration_s=0.1, sample_rate_hz=FS, **kwargs)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Bearing(n_elements=9, ball_diameter=2.0, pitch_diameter=1.0), "ball_diameter 2"),
        (lambda: Bearing(n_elements=0, ball_diameter=1.0, pitch_diameter=4.0), "n_elements 0"),
        (lambda: Machine(damping=0.0), "damping 0.0"),
        (lambda: Machine(shaft_hz=-3.0), "shaft_hz -3.0"),
        (lambda: Machine(sensor_noise_g=-1.0), "sensor_noise_g -1.0"),
        (lambda: Machine(slip=0.5), "slip 0.5"),
    ],
)
def test_refuses_bad_machines(build: Any, named: str) -> None:
    with pytest.raises(DataError, match=named):
        build()


def test_varied_machine_strays_within_the_spread_and_repeats() -> None:
    base = Machine()
    machines = [varied_machine(random.Random(seed)) for seed in range(200)]
    for name in ("shaft_hz", "resonance_hz", "machine_noise_g", "rolling_noise_g"):
        ratios = np.array([getattr(m, name) / getattr(base, name) for m in machines])
        assert ratios.min() >= 1 - MACHINE_SPREAD and ratios.max() <= 1 + MACHINE_SPREAD
        assert ratios.max() - ratios.min() > MACHINE_SPREAD  # drawn, not fixed
    assert varied_machine(random.Random(7)) == varied_machine(random.Random(7))
    assert varied_machine(random.Random(7), spread=0.0) == base


@pytest.mark.parametrize("spread", [-0.1, 1.0, float("nan")])
def test_varied_machine_refuses_a_spread_outside_0_1(spread: float) -> None:
    with pytest.raises(DataError, match=f"spread {spread}"):
        varied_machine(random.Random(0), spread=spread)
