"""The vibration features of vw_dsp.h, written plainly in NumPy float64: the test oracle."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from vibewatch.edge.spec import FeatureSpec


def mean_removed(samples: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The window as the device holds it (float32), in float64, minus its mean."""
    x = np.asarray(samples, dtype=np.float32).astype(np.float64)
    centred: npt.NDArray[np.float64] = x - x.mean()
    return centred


def power_spectrum(samples: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """P[k] = |X[k]|^2 / N^2, k = 0..N/2, of the mean-removed, periodic-Hann-windowed window."""
    x = mean_removed(samples)
    n = len(x)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    power: npt.NDArray[np.float64] = np.abs(np.fft.rfft(x * hann)) ** 2 / n**2
    return power


def reference_features(samples: npt.ArrayLike, spec: FeatureSpec) -> npt.NDArray[np.float64]:
    """Band log-powers, then rms, peak, crest factor, kurtosis and the kurtosis of the first
    difference of one window."""
    x = mean_removed(samples)
    assert x.shape == (spec.window,)
    m2 = np.mean(x**2)
    peak = np.max(np.abs(x))
    constant = peak == 0.0
    crest = 0.0 if constant else peak / np.sqrt(m2)
    kurtosis = 0.0 if constant else np.mean(x**4) / m2**2
    d = np.diff(x)
    d = d - d.mean()
    d2 = np.mean(d**2)
    diff_kurtosis = 0.0 if d2 == 0.0 else np.mean(d**4) / d2**2
    power = power_spectrum(samples)
    bands = [np.log10(power[lo:hi].sum() + 1e-12) for lo, hi in itertools.pairwise(spec.band_bins)]
    return np.array([*bands, np.sqrt(m2), peak, crest, kurtosis, diff_kurtosis])
