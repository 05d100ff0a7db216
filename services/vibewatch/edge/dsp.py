"""Vibration features of sample windows, computed by the devices' own C DSP (``vw_dsp``).

A feature vector holds the log10 band powers of the spec's bands, then RMS, peak, crest
factor and kurtosis of the mean-removed window and the kurtosis of its first difference
(:data:`~vibewatch.edge.spec.STAT_NAMES`); ``vw_dsp.h`` states the exact definition.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from vibewatch.edge import _lib
from vibewatch.edge.spec import FeatureSpec
from vibewatch.errors import EdgeError

_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t


@cache
def _core() -> ctypes.CDLL:
    """The compiled core with the DSP functions' argument and result types declared."""
    return _lib.declare(
        [
            ("vwpy_dsp_struct_bytes", _SIZE, []),
            ("vw_dsp_required_bytes", _SIZE, [ctypes.c_uint16]),
            (
                "vwpy_dsp_init",
                ctypes.c_int,
                [_P, ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint16, _P, _P, _SIZE],
            ),
            ("vwpy_dsp_features_batch", ctypes.c_int, [_P, _P, _SIZE, _P, ctypes.POINTER(_SIZE)]),
        ]
    )


def features(samples: npt.ArrayLike, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """Feature vector of one window.

    Args:
        samples: ``spec.window`` real samples (any integer or float dtype; converted to
            float32 as the device holds them).
        spec: Sample rate, window length and band edges.

    Returns:
        ``spec.n_features`` float32 values: the band powers, then rms, peak, crest, kurtosis.

    Raises:
        EdgeError: ``input`` if the samples are not a real array of shape ``(spec.window,)``
            or a sample is not finite in float32; the message names the shape or the value.
    """
    row: npt.NDArray[np.float32] = _run(_as_windows(samples, spec, ndim=1), spec)[0]
    return row


def features_batch(windows: npt.ArrayLike, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """Feature vectors of many windows, one per row.

    Args:
        windows: A real array of shape ``(n, spec.window)``; ``n`` may be 0.
        spec: Sample rate, window length and band edges.

    Returns:
        A float32 array of shape ``(n, spec.n_features)``.

    Raises:
        EdgeError: ``input`` if ``windows`` has another shape or dtype, or a sample is not
            finite in float32; the message names the window, the sample and its value.
    """
    return _run(_as_windows(windows, spec, ndim=2), spec)


def _as_windows(samples: npt.ArrayLike, spec: FeatureSpec, ndim: int) -> npt.NDArray[Any]:
    """Check ``samples`` and return them as a C-contiguous 2-D array of their own dtype."""
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as exc:
        raise EdgeError("input", f"samples are not a numeric array: {exc}") from exc
    if array.dtype.kind not in "iuf":
        raise EdgeError("input", f"samples must be real numbers, got dtype {array.dtype}")
    if array.ndim != ndim or array.shape[-1] != spec.window:
        want = f"({spec.window},)" if ndim == 1 else f"(n, {spec.window})"
        raise EdgeError("input", f"expected samples of shape {want}, got shape {array.shape}")
    return array.reshape(-1, spec.window)


def _run(windows: npt.NDArray[Any], spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """Run the C DSP over the rows of ``windows``, set up once for ``spec``."""
    core = _core()
    # float64 beyond the float32 range becomes inf, which the C code refuses by name below.
    with np.errstate(over="ignore"):
        samples = np.ascontiguousarray(windows, dtype=np.float32)
    bins = np.asarray(spec.band_bins, dtype=np.uint16)
    dsp = _lib.buffer(core.vwpy_dsp_struct_bytes())
    work = _lib.buffer(core.vw_dsp_required_bytes(spec.window))
    _lib.check(
        core.vwpy_dsp_init(
            dsp,
            spec.sample_rate_hz,
            spec.window,
            spec.n_bands,
            bins.ctypes.data,
            work,
            len(work),
        ),
        f"preparing the DSP for {spec}",
    )
    out = np.empty((len(samples), spec.n_features), dtype=np.float32)
    failed = _SIZE(0)
    status = core.vwpy_dsp_features_batch(
        dsp, samples.ctypes.data, len(samples), out.ctypes.data, ctypes.byref(failed)
    )
    if status != 0:
        _lib.check(status, _refusal(windows[failed.value], samples[failed.value], failed.value))
    return out


def _refusal(given: npt.NDArray[Any], window: npt.NDArray[np.float32], index: int) -> str:
    """Say which sample of a refused window is at fault, with the value it was given as."""
    bad = np.flatnonzero(~np.isfinite(window))
    if bad.size:
        i = int(bad[0])
        return f"window {index}, sample {i}: {given[i].item()!r} is not a finite float32"
    peak = float(np.max(np.abs(window)))
    return f"window {index}: features overflow float32 (largest |sample| {peak:.3g})"
