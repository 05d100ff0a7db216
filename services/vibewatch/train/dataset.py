"""Feature datasets: feature vectors of recordings with their spec and where they came from.

A dataset file is a NumPy ``.npz`` archive read without pickle:

==================  =====================================================================
``format``          the text ``vibewatch-features-1``
``features``        float32 ``[n, n_features]``, the rows of each source in turn
``sample_rate_hz``  the feature spec: sample rate, window and band edges (FFT bins)
``window``
``band_bins``
``spec_id``         :attr:`~vibewatch.edge.FeatureSpec.spec_id`, checked on load
``sources``         one JSON object per source (see :class:`Source`), in row order
==================  =====================================================================
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vibewatch.edge.spec import FeatureSpec
from vibewatch.errors import DataError, EdgeError
from vibewatch.train.recordings import (
    Normalise,
    RecordingRef,
    channel_features,
    file_problem,
    load_recording,
    window_hop,
)

#: The ``format`` entry of a dataset file this module writes and reads.
FORMAT: Final = "vibewatch-features-1"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_KEYS: Final = ("format", "features", "sample_rate_hz", "window", "band_bins", "spec_id", "sources")


@dataclass(frozen=True)
class Source:
    """Where a run of consecutive dataset rows came from: one channel of one recording.

    Attributes:
        recording: The recording argument as given, ``PATH[@CHANNEL][:START_S-END_S]``.
        channel: The channel read (one match of a glob in ``recording``).
        sample_rate_hz: Its sample rate in Hz.
        windows: Number of rows, one per window, in time order.
        hop: Samples from one window's start to the next.
        normalise: The amplitude normalisation of every window (``"rms"``) or ``None``.
    """

    recording: str
    channel: str
    sample_rate_hz: int
    windows: int
    hop: int
    normalise: str | None


@dataclass(frozen=True, eq=False)
class FeatureDataset:
    """Feature vectors, the spec that made them and their sources.

    Attributes:
        features: float32 ``[n, spec.n_features]``; the rows of ``sources[0]`` first.
        spec: The feature spec of every row.
        sources: One entry per channel read, in row order; their ``windows`` sum to ``n``.
    """

    features: npt.NDArray[np.float32]
    spec: FeatureSpec
    sources: tuple[Source, ...]

    def __post_init__(self) -> None:
        shape = (sum(s.windows for s in self.sources), self.spec.n_features)
        if self.features.dtype != np.float32 or self.features.shape != shape:
            raise DataError(
                f"features of dtype {self.features.dtype} and shape {self.features.shape} do "
                f"not fit the sources and spec {self.spec.spec_id}: expected float32 {shape}"
            )

    def save(self, path: Path) -> None:
        """Write the dataset to ``path`` (an ``.npz`` file; the name is kept as given).

        The file is written beside ``path`` first and renamed, so a reader never sees
        half of it.

        Raises:
            DataError: The file cannot be written; the message names it.
        """
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("wb") as file:
                np.savez(
                    file,
                    format=np.array(FORMAT),
                    features=self.features,
                    sample_rate_hz=np.array(self.spec.sample_rate_hz),
                    window=np.array(self.spec.window),
                    band_bins=np.array(self.spec.band_bins),
                    spec_id=np.array(self.spec.spec_id),
                    sources=np.array([json.dumps(asdict(s)) for s in self.sources], dtype=str),
                )
            os.replace(partial, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # it may not exist, nor its directory
                partial.unlink(missing_ok=True)
            raise DataError(f"cannot write dataset {path}: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> FeatureDataset:
        """Read a dataset that :meth:`save` wrote.

        Raises:
            DataError: The file is missing, is not a dataset file, or its parts do not
                agree (shapes, spec id, sources); the message names the file and the part.
        """
        problem = file_problem(path, "dataset")
        if problem:
            raise DataError(f"{path}: cannot read as a feature dataset: {problem}")
        try:
            # Opened here, not by np.load, which leaks its file when the archive is damaged.
            with path.open("rb") as file:
                if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                    # np.load would read it as .npy or a pickle and blame that instead.
                    raise DataError(
                        f"{path}: cannot read as a feature dataset: not an .npz archive "
                        "(datasets are written by `vibewatch dataset import`)"
                    )
                file.seek(0)
                archive = np.load(file, allow_pickle=False)
                with archive:
                    missing = [key for key in _KEYS if key not in archive.files]
                    if missing:
                        raise DataError(
                            f"{path}: not a feature dataset, missing {', '.join(missing)}"
                        )
                    parts = {key: archive[key] for key in _KEYS}
        except DataError:
            raise
        except Exception as exc:
            # np.load and the archive raise OSError, ValueError (pickled or damaged data),
            # zipfile.BadZipFile, EOFError ... for files that are not readable datasets.
            raise DataError(f"{path}: cannot read as a feature dataset: {exc}") from exc
        if str(parts["format"]) != FORMAT:
            raise DataError(f"{path}: format {str(parts['format'])!r}, expected {FORMAT!r}")
        try:
            spec = FeatureSpec(
                int(parts["sample_rate_hz"]),
                int(parts["window"]),
                tuple(int(b) for b in parts["band_bins"]),
            )
        except (TypeError, ValueError, EdgeError) as exc:
            raise DataError(f"{path}: invalid feature spec: {exc}") from exc
        if spec.spec_id != str(parts["spec_id"]):
            raise DataError(
                f"{path}: spec id {str(parts['spec_id'])!r} does not match its spec "
                f"({spec.spec_id})"
            )
        sources = tuple(_source(path, text) for text in parts["sources"].reshape(-1))
        try:
            return cls(parts["features"], spec, sources)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc


def import_recordings(
    recordings: Sequence[RecordingRef | str],
    spec: FeatureSpec | None = None,
    *,
    sample_rate_hz: int | None = None,
    hop: int | None = None,
    normalise: Normalise | None = None,
    progress: Callable[[RecordingRef], None] | None = None,
) -> FeatureDataset:
    """Feature vectors of recordings, computed by the devices' C DSP.

    Every argument is parsed before any file is read, so a mistyped one fails fast.

    Args:
        recordings: Recording arguments ``PATH[@CHANNEL][:START_S-END_S]`` or parsed ones.
        spec: The feature spec; by default :meth:`FeatureSpec.default` at the sample rate
            of the first recording. Every recording must have the spec's sample rate.
        sample_rate_hz: Sample rate for files that carry none (``--sample-rate``).
        hop: Samples from one window's start to the next (default an eighth of a
            window).
        normalise: ``"rms"`` divides each window by the RMS of its mean-removed samples.
        progress: Called with each argument once its features are computed.

    Returns:
        The dataset: each selected channel of each recording, in argument order.

    Raises:
        DataError: No recordings, or one cannot be read or windowed; see
            :mod:`vibewatch.train.recordings`.
    """
    if not recordings:
        raise DataError("no recordings given")
    # Sources keep each argument as the user wrote it, so they recognise it.
    refs = [
        (str(r), r if isinstance(r, RecordingRef) else RecordingRef.parse(r)) for r in recordings
    ]
    parts: list[npt.NDArray[np.float32]] = []
    sources: list[Source] = []
    for text, ref in refs:
        for recording in load_recording(ref, sample_rate_hz):
            if spec is None:
                try:
                    spec = FeatureSpec.default(recording.sample_rate_hz)
                except EdgeError as exc:
                    raise DataError(
                        f"{recording.name}: no feature spec for its sample rate of "
                        f"{recording.sample_rate_hz} Hz: {exc.detail}"
                    ) from exc
            rows = channel_features(recording, spec, hop=hop, normalise=normalise)
            parts.append(rows)
            sources.append(
                Source(
                    text,
                    recording.channel,
                    recording.sample_rate_hz,
                    len(rows),
                    window_hop(spec, hop),
                    normalise,
                )
            )
        if progress is not None:
            progress(ref)
    assert spec is not None  # load_recording returns at least one channel per argument
    return FeatureDataset(np.concatenate(parts), spec, tuple(sources))


def _source(path: Path, text: Any) -> Source:
    """One :class:`Source` from its JSON text in a dataset file."""
    try:
        fields = json.loads(str(text))
        source = Source(**fields)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: invalid source entry {str(text)!r}: {exc}") from exc
    if not (isinstance(source.windows, int) and source.windows >= 0):
        raise DataError(f"{path}: source {source.recording!r} has {source.windows!r} windows")
    return source
