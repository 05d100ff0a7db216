"""vibewatch.edge.dsp: the devices' C DSP against the float64 NumPy reference, and its refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch.edge.dsp import features, features_batch
from vibewatch.edge.spec import STAT_NAMES, FeatureSpec
from vibewatch.errors import EdgeError

from .dsp_reference import power_spectrum, reference_features

DATA = Path(__file__).resolve().parents[1] / "data"
CWRU_RATE_HZ = 48_000
EPS32 = float(np.finfo(np.float32).eps)

Signal = Callable[[np.random.Generator, int], npt.NDArray[np.float64]]


def assert_agrees(got: npt.NDArray[np.float32], spec: FeatureSpec, samples: npt.ArrayLike) -> None:
    """The C features of one window equal those of the float64 reference.

    The statistics to 1e-4 relative. The band powers (10 ** feature) to 1e-4 relative, plus
    the rounding noise of a float32 FFT: about log2(N) float32 epsilons of the spectrum's
    rms in every bin (twice that allowed, for the window and the split into a real
    spectrum). Only a band far weaker than the window's average bin, such as a single bin in
    a deep dip of the noise beside a strong tone, needs that term: float32 arithmetic cannot
    resolve such a band to 1e-4.
    """
    want = reference_features(samples, spec)
    bands = spec.n_bands
    np.testing.assert_allclose(got[bands:], want[bands:], rtol=1e-4, atol=0.0)
    bin_noise = (2 * np.log2(spec.window) * EPS32) ** 2 * power_spectrum(samples).mean()
    widths = np.diff(spec.band_bins)
    power = 10.0 ** want[:bands]
    allowed = 1e-4 * power + 2 * np.sqrt(power * widths * bin_noise) + widths * bin_noise
    np.testing.assert_array_less(np.abs(10.0 ** got[:bands].astype(np.float64) - power), allowed)


def noise(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    return rng.standard_normal(n)


def tones(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Three sines at any frequency up to Nyquist over 20 dB weaker noise."""
    t = np.arange(n)
    out = 0.1 * rng.standard_normal(n)
    for _ in range(3):
        phase = 2 * np.pi * rng.uniform(0, 0.5) * t + rng.uniform(0, 7)
        out += rng.uniform(0.1, 1.0) * np.sin(phase)
    return out


def random_walk(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Brown noise: power falling as 1/f^2 over the whole band."""
    return np.cumsum(rng.standard_normal(n))


def layout(kind: str, window: int, n_bands: int, rng: np.random.Generator) -> FeatureSpec:
    top = window // 2 + 1
    if kind == "log":
        low_hz = rng.uniform(1, 20) * CWRU_RATE_HZ / window
        return FeatureSpec.log_bands(CWRU_RATE_HZ, window, n_bands, low_hz, 0.499 * CWRU_RATE_HZ)
    if kind == "uniform":
        edges = np.unique(np.linspace(0, top, n_bands + 1).round())
    else:
        edges = np.sort(rng.choice(top + 1, size=n_bands + 1, replace=False))
    return FeatureSpec(CWRU_RATE_HZ, window, tuple(int(e) for e in edges))


@settings(max_examples=60, deadline=None)
@given(
    window=st.sampled_from([256, 512, 1024, 2048, 4096]),
    signal=st.sampled_from([noise, tones, random_walk]),
    kind=st.sampled_from(["log", "uniform", "random"]),
    n_bands=st.integers(1, 32),
    amplitude=st.floats(-6.0, 6.0).map(lambda e: 10.0**e),
    offset=st.sampled_from([0.0, 1.0, -30.0, 1000.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_signals_agree_with_reference(
    window: int,
    signal: Signal,
    kind: str,
    n_bands: int,
    amplitude: float,
    offset: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    spec = layout(kind, window, n_bands, rng)
    samples = amplitude * (offset + signal(rng, window))
    assert_agrees(features(samples, spec), spec, samples)


@pytest.fixture(scope="module")
def cwru() -> dict[str, npt.NDArray[np.float64]]:
    """Drive-end accelerometer signal of every CWRU bearing recording, by file name."""
    files = sorted((DATA / "cwru").glob("*.mat"))
    assert files, f"no CWRU recordings (*.mat) in {DATA / 'cwru'}"
    signals = {}
    for path in files:
        mat = scipy.io.loadmat(path)
        (key,) = [k for k in mat if k.endswith("_DE_time")]
        signals[path.name] = np.asarray(mat[key], dtype=np.float64).ravel()
    return signals


@pytest.mark.parametrize("window", [256, 1024, 4096])
def test_real_signals_agree_with_reference(
    cwru: dict[str, npt.NDArray[np.float64]], window: int
) -> None:
    spec = FeatureSpec.log_bands(CWRU_RATE_HZ, window, 16, 100.0, 20_000.0)
    for signal in cwru.values():
        starts = np.linspace(0, len(signal) - window, 12).astype(int)
        windows = np.stack([signal[s : s + window] for s in starts])
        got = features_batch(windows, spec)
        assert got.shape == (len(starts), spec.n_features)
        for row, samples in zip(got, windows, strict=True):
            assert_agrees(row, spec, samples)


def test_constant_windows_have_zero_statistics() -> None:
    spec = FeatureSpec(1000, 256, (0, 5, 129))
    for value in (0.0, 0.1, -7.5, 3e4):
        got = features(np.full(256, value), spec)
        assert_agrees(got, spec, np.full(256, value))
        assert got[2:].tolist() == [0.0] * len(STAT_NAMES)
        np.testing.assert_allclose(got[:2], -12.0, rtol=1e-6)


def test_tone_lands_in_its_band() -> None:
    spec = FeatureSpec.from_edges_hz(48_000, 2048, [0, 500, 900, 1100, 5000, 24_000])
    t = np.arange(2048) / 48_000
    got = features(2.0 + np.sin(2 * np.pi * 1000.0 * t), spec)
    assert np.argmax(got[: spec.n_bands]) == 2
    assert got[spec.n_bands] == pytest.approx(1 / np.sqrt(2), rel=1e-2)


def test_batch_equals_single_windows_and_leaves_input_alone() -> None:
    spec = FeatureSpec.log_bands(48_000, 512, 8, 200.0, 20_000.0)
    windows = np.random.default_rng(3).standard_normal((5, 512))
    before = windows.copy()
    batch = features_batch(windows, spec)
    assert batch.dtype == np.float32
    for row, window in zip(batch, windows, strict=True):
        np.testing.assert_array_equal(row, features(window, spec))
    np.testing.assert_array_equal(windows, before)
    assert features_batch(np.empty((0, 512)), spec).shape == (0, spec.n_features)


def test_any_real_array_like_is_accepted() -> None:
    spec = FeatureSpec(8000, 256, (1, 20, 100))
    ints = np.random.default_rng(4).integers(-1000, 1000, 256)
    want = features(ints.astype(np.float32), spec)
    for samples in (ints, ints.tolist(), ints.astype(np.int16), ints.astype(np.float64)):
        np.testing.assert_array_equal(features(samples, spec), want)
    strided = np.repeat(ints, 2)[::2]  # not contiguous
    np.testing.assert_array_equal(features(strided, spec), want)


@pytest.mark.parametrize(
    ("call", "samples", "message"),
    [
        (features, np.zeros(1000), "shape (256,), got shape (1000,)"),
        (features, np.zeros((2, 256)), "got shape (2, 256)"),
        (features_batch, np.zeros(256), "shape (n, 256), got shape (256,)"),
        (features_batch, np.zeros((3, 255)), "got shape (3, 255)"),
        (features, np.zeros(256, dtype=complex), "dtype complex128"),
        (features, np.zeros(256, dtype=bool), "dtype bool"),
        (features, ["x"] * 256, "dtype <U1"),
        (features, [[0.0], [0.0, 1.0]], "not a numeric array"),
    ],
)
def test_wrong_samples_are_refused(
    call: Callable[[npt.ArrayLike, FeatureSpec], object], samples: object, message: str
) -> None:
    spec = FeatureSpec(1000, 256, (0, 129))
    with pytest.raises(EdgeError) as err:
        call(samples, spec)  # type: ignore[arg-type]
    assert err.value.reason == "input"
    assert message in err.value.detail


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "window 2, sample 17: nan is not a finite float32"),
        (np.inf, "window 2, sample 17: inf is not a finite float32"),
        (-np.inf, "window 2, sample 17: -inf is not a finite float32"),
        (1e39, "window 2, sample 17: 1e+39 is not a finite float32"),
        (1e30, "window 2: features overflow float32 (largest |sample| 1e+30)"),
    ],
)
def test_unusable_samples_are_refused(value: float, message: str) -> None:
    spec = FeatureSpec(1000, 256, (0, 129))
    windows = np.ones((4, 256))
    windows[:, ::2] = -1.0
    windows[2, 17] = value
    with pytest.raises(EdgeError) as err:
        features_batch(windows, spec)
    assert err.value.reason == "input"
    assert err.value.detail == message


@settings(max_examples=200, deadline=None)
@given(
    window=st.sampled_from([256, 1024, 4096]),
    kind=st.sampled_from(["log", "uniform", "random"]),
    n_bands=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_spec_id_is_the_documented_hash_of_the_band_edges_and_statistics(
    window: int, kind: str, n_bands: int, seed: int
) -> None:
    spec = layout(kind, window, n_bands, np.random.default_rng(seed))
    edges = ",".join(str(edge) for edge in spec.band_bins)
    text = f"{edges};rms,peak,crest,kurtosis,diff_kurtosis".encode("ascii")
    digest = hashlib.sha256(text).hexdigest()[:8]
    assert spec.spec_id == f"fs-{spec.sample_rate_hz}-{window}-{spec.n_bands}-{digest}"
