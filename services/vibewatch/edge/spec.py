"""The feature spec: what a model expects from the DSP (mirrors ``vw_feature_spec_t``)."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from vibewatch.errors import EdgeError

MIN_WINDOW = 256
MAX_WINDOW = 4096
MAX_BANDS = 1024
DEFAULT_WINDOW = 1024
DEFAULT_BANDS = 32
#: Statistics after the band energies in every feature vector: rms, peak, crest, kurtosis.
STAT_NAMES = ("rms", "peak", "crest", "kurtosis")


@dataclass(frozen=True)
class FeatureSpec:
    """Sample rate, window length and FFT-bin band edges of the features.

    Attributes:
        sample_rate_hz: Sensor sample rate in Hz.
        window: Samples per window, a power of two in 256..4096.
        band_bins: ``n_bands + 1`` strictly increasing FFT bin edges; band ``b`` sums the
            power of bins ``band_bins[b] <= k < band_bins[b + 1]``; the last edge is at most
            ``window // 2 + 1``.
    """

    sample_rate_hz: int
    window: int
    band_bins: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.sample_rate_hz <= 1_000_000:
            raise EdgeError("format", f"sample rate {self.sample_rate_hz} Hz not in 1..1000000")
        if not (MIN_WINDOW <= self.window <= MAX_WINDOW and self.window & (self.window - 1) == 0):
            raise EdgeError("format", f"window {self.window} is not a power of two in 256..4096")
        bins = self.band_bins
        if not 2 <= len(bins) <= MAX_BANDS + 1:
            raise EdgeError("format", f"{len(bins) - 1} bands, expected 1..{MAX_BANDS}")
        if any(b >= a for b, a in itertools.pairwise(bins)) or bins[0] < 0:
            raise EdgeError("format", f"band bin edges {bins} are not strictly increasing")
        if bins[-1] > self.window // 2 + 1:
            raise EdgeError(
                "format", f"last band edge {bins[-1]} is past bin {self.window // 2} (Nyquist)"
            )

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return len(self.band_bins) - 1

    @property
    def spec_id(self) -> str:
        """Short stable id of the spec, the ``spec`` of ``features`` messages.

        ``fs-{sample_rate_hz}-{window}-{n_bands}-{h}``, where ``h`` is the first 8 hex digits
        of the SHA-256 of the band edges written as decimal numbers joined by commas.
        """
        edges = ",".join(map(str, self.band_bins)).encode("ascii")
        digest = hashlib.sha256(edges).hexdigest()[:8]
        return f"fs-{self.sample_rate_hz}-{self.window}-{self.n_bands}-{digest}"

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
