"""The feature spec: what a model expects from the DSP (mirrors ``vw_feature_spec_t``).

Whether a spec is valid is the C core's rule (``vw_dsp_check_spec_fault`` in
``vw_dsp.c``), asked through the compiled library, so the devices, the ``.vwm`` reader
and this class can never disagree. Python only words the message of each fault and
refuses what the C types cannot carry at all (a negative band edge, for one).
"""

from __future__ import annotations

import ctypes
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, NamedTuple

from vibewatch.edge import _lib
from vibewatch.errors import EdgeError

DEFAULT_WINDOW = 4096
DEFAULT_BANDS = 32

_U16, _U32 = ctypes.c_uint16, ctypes.c_uint32
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
# vw_spec_fault_t (vw_dsp.h): numbered by the C header, never renumbered.
_FAULT_RATE, _FAULT_WINDOW, _FAULT_BANDS, _FAULT_ORDER, _FAULT_NYQUIST = 1, 2, 3, 4, 5


class DspLimits(NamedTuple):
    """The limits of the C DSP (``VW_DSP_*`` in ``vw_dsp.h``), read from the library.

    Attributes:
        min_window: Shortest window.
        max_window: Longest window.
        max_bands: Most bands.
        max_sample_rate_hz: Highest sample rate.
        n_stats: Statistics after the bands in a feature vector (:data:`STAT_NAMES`).
        spec_id_max: Longest feature-spec id.
    """

    min_window: int
    max_window: int
    max_bands: int
    max_sample_rate_hz: int
    n_stats: int
    spec_id_max: int


@cache
def _core() -> ctypes.CDLL:
    """The compiled core with the spec check's argument and result types declared."""
    return _lib.declare(
        [
            ("vwpy_dsp_limits", None, [ctypes.POINTER(_U32)]),
            ("vwpy_dsp_stat_names", ctypes.c_char_p, []),
            (
                "vwpy_dsp_check_spec",
                ctypes.c_int,
                [_U32, _U16, _U16, ctypes.POINTER(_U16), ctypes.POINTER(ctypes.c_int)],
            ),
            (
                "vwpy_dsp_spec_id",
                ctypes.c_int,
                [_U32, _U16, _U16, ctypes.POINTER(_U16), ctypes.c_char_p],
            ),
        ]
    )


@cache
def dsp_limits() -> DspLimits:
    """The limits the C DSP was compiled with.

    Raises:
        EdgeError: ``build`` if the library is missing.
    """
    values = (_U32 * len(DspLimits._fields))()
    _core().vwpy_dsp_limits(values)
    return DspLimits(*values)


_LIMITS: Final = dsp_limits()
#: Statistics after the band energies in every feature vector, as the C DSP names them
#: (``VW_DSP_STAT_NAMES``): rms, peak, crest, kurtosis, diff_kurtosis.
STAT_NAMES: Final[tuple[str, ...]] = tuple(_core().vwpy_dsp_stat_names().decode().split(","))
MIN_WINDOW: Final = _LIMITS.min_window
"""Shortest DSP window (``VW_DSP_MIN_WINDOW``, read from the C core)."""
MAX_WINDOW: Final = _LIMITS.max_window
"""Longest DSP window (``VW_DSP_MAX_WINDOW``)."""
MAX_BANDS: Final = _LIMITS.max_bands
"""Most bands of a spec (``VW_DSP_MAX_BANDS``)."""
MAX_SAMPLE_RATE_HZ: Final = _LIMITS.max_sample_rate_hz
"""Highest sample rate (``VW_DSP_MAX_RATE_HZ``)."""


def _spec_fault(sample_rate_hz: int, window: int, band_bins: tuple[int, ...]) -> int:
    """The ``vw_spec_fault_t`` of a spec, from the C core; 0 when it is valid.

    A field that its C type cannot hold breaks that field's rule, as the value could
    never reach the device.
    """
    if not 0 <= sample_rate_hz <= _U32_MAX:
        return _FAULT_RATE
    if not 0 <= window <= _U16_MAX:
        return _FAULT_WINDOW
    if not 1 <= len(band_bins) - 1 <= _U16_MAX:
        return _FAULT_BANDS
    bins = (_U16 * len(band_bins))(*band_bins)
    fault = ctypes.c_int(0)
    status = _core().vwpy_dsp_check_spec(
        sample_rate_hz, window, len(band_bins) - 1, bins, ctypes.byref(fault)
    )
    if status != 0 and fault.value == 0:
        _lib.check(status, "checking a feature spec")
    return fault.value


@dataclass(frozen=True)
class FeatureSpec:
    """Sample rate, window length and FFT-bin band edges of the features.

    Validated by the C core on construction.

    Attributes:
        sample_rate_hz: Sensor sample rate in Hz, 1..1000000.
        window: Samples per window, a power of two in 256..4096.
        band_bins: ``n_bands + 1`` (2..1025) strictly increasing FFT bin edges; band ``b``
            sums the power of bins ``band_bins[b] <= k < band_bins[b + 1]``; the last edge
            is at most ``window // 2 + 1``.

    Raises:
        EdgeError: ``format``, naming the rule the spec breaks.
    """

    sample_rate_hz: int
    window: int
    band_bins: tuple[int, ...]

    def __post_init__(self) -> None:
        try:
            rate, window = operator.index(self.sample_rate_hz), operator.index(self.window)
            bins = tuple(operator.index(b) for b in self.band_bins)
        except TypeError:
            raise EdgeError(
                "format", f"sample rate, window and band edges must be integers: {self}"
            ) from None
        if any(not 0 <= b <= _U16_MAX for b in bins):
            raise EdgeError(
                "format", f"band bin edges {bins} are not all bin numbers in 0..{_U16_MAX}"
            )
        fault = _spec_fault(rate, window, bins)
        if fault:
            raise EdgeError("format", self._fault_message(fault))

    def _fault_message(self, fault: int) -> str:
        bins = self.band_bins
        if fault == _FAULT_RATE:
            return f"sample rate {self.sample_rate_hz} Hz not in 1..{MAX_SAMPLE_RATE_HZ}"
        if fault == _FAULT_WINDOW:
            return f"window {self.window} is not a power of two in {MIN_WINDOW}..{MAX_WINDOW}"
        if fault == _FAULT_BANDS:
            return f"{len(bins) - 1} bands, expected 1..{MAX_BANDS}"
        if fault == _FAULT_ORDER:
            return f"band bin edges {bins} are not strictly increasing"
        if fault == _FAULT_NYQUIST:
            return f"last band edge {bins[-1]} is past bin {self.window // 2} (Nyquist)"
        return f"the DSP refuses the spec {self} (fault {fault})"

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return len(self.band_bins) - 1

    @property
    def spec_id(self) -> str:
        """Short stable id of the spec, the ``spec`` of ``features`` messages.

        ``fs-{sample_rate_hz}-{window}-{n_bands}-{h}``, where ``h`` is the first 8 hex digits
        of the SHA-256 of the band edges written as decimal numbers joined by commas; the
        C core computes it (``vw_dsp_spec_id``), as the devices do.
        """
        bins = (_U16 * len(self.band_bins))(*self.band_bins)
        out = ctypes.create_string_buffer(_LIMITS.spec_id_max + 1)
        status = _core().vwpy_dsp_spec_id(self.sample_rate_hz, self.window, self.n_bands, bins, out)
        _lib.check(status, "computing the feature-spec id")
        return out.value.decode("ascii")

    @property
    def n_features(self) -> int:
        """Length of a feature vector: the bands, then :data:`STAT_NAMES`."""
        return self.n_bands + len(STAT_NAMES)

    @classmethod
    def from_edges_hz(
        cls, sample_rate_hz: int, window: int, edges_hz: Sequence[float]
    ) -> FeatureSpec:
        """A spec whose bands start at the first FFT bin at or above each edge in Hz."""
        bins = tuple(min(math.ceil(f * window / sample_rate_hz), window // 2 + 1) for f in edges_hz)
        return cls(sample_rate_hz, window, bins)

    @classmethod
    def default(cls, sample_rate_hz: int) -> FeatureSpec:
        """The spec vibewatch trains with unless told otherwise.

        A window of :data:`DEFAULT_WINDOW` samples and :data:`DEFAULT_BANDS` bands from the
        first FFT bin to Nyquist: one bin each at the low end (shaft harmonics), log-spaced
        above (bearing and structural resonances).
        """
        return cls.log_bands(
            sample_rate_hz,
            DEFAULT_WINDOW,
            DEFAULT_BANDS,
            sample_rate_hz / DEFAULT_WINDOW,
            sample_rate_hz / 2,
        )

    @classmethod
    def log_bands(
        cls, sample_rate_hz: int, window: int, n_bands: int, low_hz: float, high_hz: float
    ) -> FeatureSpec:
        """``n_bands`` bands with log-spaced edges from ``low_hz`` to ``high_hz``.

        Edges that would fall into the same FFT bin are moved up one bin each, so every band
        holds at least one bin.
        """
        ratio = high_hz / low_hz
        edges = [low_hz * ratio ** (i / n_bands) for i in range(n_bands + 1)]
        bins: list[int] = []
        for f in edges:
            b = math.ceil(f * window / sample_rate_hz)
            bins.append(max(b, bins[-1] + 1) if bins else b)
        if bins[-1] > window // 2 + 1:
            raise EdgeError(
                "format", f"{n_bands} bands from {low_hz} to {high_hz} Hz do not fit {window} bins"
            )
        return cls(sample_rate_hz, window, tuple(bins))
