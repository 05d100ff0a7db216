"""Vibration recordings (CSV, NPY, WAV, MATLAB ``.mat``) turned into feature vectors.

A recording argument is ``PATH[@CHANNEL][:START_S-END_S]``, for example
``normal_0_97.mat@X097_DE_time:0-3.0``:

* ``PATH`` is the longest prefix of the argument that names an existing file, so file
  names may themselves contain ``@`` and ``:``.
* ``CHANNEL`` names one channel, or is an :mod:`fnmatch` glob (``@*_DE_time``) whose every
  match is read as a series of its own. Without it, a file with a single channel uses that
  channel and a file with several is refused with the list of their names. Channel names
  cannot contain ``:``.
* ``START_S-END_S`` is a range in seconds from the start of the file (decimal numbers, no
  sign or exponent). Either end may be left out: ``:1.5-`` runs to the end of the file,
  ``:-2`` from its start. An end past the end of the file is refused with the file's length.

What each format holds:

* CSV: one column per channel, comma-separated. A first row with a cell that is not a
  number is a header of channel names; without one the channels are ``"0"``, ``"1"``, ...
  A header column named ``t``, ``time`` or ``time_s`` (seconds) is not a channel: its
  spacing gives the sample rate.
* NPY: a 1-D array (channel ``"0"``) or a 2-D array ``[samples, channels]`` (channels
  ``"0"`` .. ``"n-1"``); no sample rate.
* WAV: one channel per WAV channel (``"0"``, ``"1"``, ...); the sample rate is the file's.
  Integer PCM is scaled to [-1, 1).
* MATLAB ``.mat`` (up to v7; v7.3 files are HDF5 and not read): every numeric variable
  with one dimension of at least two samples (``[n]``, ``[n, 1]`` or ``[1, n]``) is a
  channel named after the variable. A scalar variable named ``fs``, ``sample_rate``,
  ``samplerate``, ``sample_rate_hz`` or ``sampling_rate`` (any case) gives the sample rate.

The sample rate is the file's when it has one, else the one passed in
(``--sample-rate``); a file whose own rate differs from the one passed in is refused,
and so is a file with neither. Samples that are not finite are refused by index.

Features come from the devices' own C DSP (:func:`vibewatch.edge.features_batch`) over
windows of ``spec.window`` samples, one every ``hop`` samples (default an eighth of a
window, :data:`HOPS_PER_WINDOW`);
samples after the last whole window are left out. There is no resampling: a recording's
sample rate must equal the spec's. With ``normalise="rms"`` each window is divided by the
RMS of its mean-removed samples, so that only the spectral shape and the shape statistics
remain; a window that is constant (zero RMS) is refused by its start time, since it holds
no vibration to learn from.

Every refusal is a :class:`vibewatch.errors.DataError` naming the file, the channel and
the value at fault.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from vibewatch.edge import features_batch
from vibewatch.edge.spec import FeatureSpec
from vibewatch.errors import DataError, EdgeError

Normalise = Literal["rms"]
#: Amplitude normalisations :func:`channel_features` knows.
NORMALISATIONS: Final = ("rms",)
#: File name extensions that can be read (compared in lower case).
EXTENSIONS: Final = (".csv", ".npy", ".wav", ".mat")
#: Header names of a CSV time column (compared in lower case).
TIME_COLUMNS: Final = frozenset({"t", "time", "time_s"})
#: Names of a MATLAB sample-rate variable, in lower case and without underscores.
RATE_VARIABLES: Final = frozenset({"fs", "samplerate", "sampleratehz", "samplingrate"})
# Windows handed to the C DSP per call: bounds the float copies a small hop would make.
_CHUNK_WINDOWS = 4096
#: Windows start every ``window // HOPS_PER_WINDOW`` samples unless told otherwise: 512 at
#: the default 4,096-sample window, so three seconds at 48 kHz give 274 windows, enough to
#: train on (``train.min_healthy_windows``).
HOPS_PER_WINDOW: Final = 8

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"(?P<start>{_NUMBER})?-(?P<end>{_NUMBER})?")
_SUFFIX = re.compile(r"(?:@(?P<channel>[^:]*))?(?::(?P<range>.*))?", re.DOTALL)
_GLOB_CHARS = frozenset("*?[")
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class RecordingRef:
    """One recording argument: a file, an optional channel (or glob) and a time range.

    Attributes:
        path: The recording file.
        channel: Channel name or :mod:`fnmatch` glob; ``None`` takes the file's only channel.
        start_s: Start of the range in seconds from the start of the file.
        end_s: End of the range in seconds, ``None`` for the end of the file.
    """

    path: Path
    channel: str | None = None
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.start_s) and self.start_s >= 0):
            raise DataError(f"{self.path}: range start {self.start_s} s is not a time >= 0")
        if self.end_s is not None and not (np.isfinite(self.end_s) and self.end_s > self.start_s):
            raise DataError(
                f"{self.path}: range end {self.end_s} s is not after its start {self.start_s} s"
            )
        if self.channel == "":
            raise DataError(f"{self.path}: empty channel name after '@'")

    @classmethod
    def parse(cls, text: str) -> RecordingRef:
        """Parse ``PATH[@CHANNEL][:START_S-END_S]`` (see the module documentation).

        Raises:
            DataError: No prefix of ``text`` names an existing file, or what follows it is
                not ``@CHANNEL`` and/or ``:START_S-END_S``; the message names the part.
        """
        end = _path_end(text)
        if end:
            path, rest = Path(text[:end]), text[end:]
            match = _SUFFIX.fullmatch(rest)
            assert match is not None  # rest is empty or starts with '@' or ':'
            start_s, end_s = (0.0, None)
            if match["range"] is not None:
                start_s, end_s = _parse_range(match["range"], text)
            return cls(path, match["channel"], start_s, end_s)
        path_text = next((p for p in (text, _likely_path(text)) if os.path.isdir(p)), "")
        what = " (it is a directory)" if path_text else ""
        path_text = path_text or _likely_path(text)
        raise DataError(
            f"recording {text!r}: no such file {path_text!r}{what}; "
            "expected PATH[@CHANNEL][:START_S-END_S]"
        )

    def __str__(self) -> str:
        text = str(self.path)
        if self.channel is not None:
            text += f"@{self.channel}"
        if self.start_s != 0 or self.end_s is not None:
            start = _format_seconds(self.start_s) if self.start_s != 0 else ""
            end = _format_seconds(self.end_s) if self.end_s is not None else ""
            text += f":{start}-{end}"
        return text


@dataclass(frozen=True, eq=False)
class Recording:
    """The samples of one channel of a recording, over the range its argument selects.

    Attributes:
        ref: The recording argument it was read for.
        channel: The channel's name in the file.
        sample_rate_hz: Sample rate in Hz.
        start_sample: Index in the file of ``samples[0]``.
        samples: The samples, float64, one dimension, all finite.
    """

    ref: RecordingRef
    channel: str
    sample_rate_hz: int
    start_sample: int
    samples: npt.NDArray[np.float64]

    @property
    def name(self) -> str:
        """``PATH@CHANNEL``, how messages name the recording."""
        return f"{self.ref.path}@{self.channel}"


@dataclass(frozen=True)
class _Contents:
    """The channels of a file, in file order, and the sample rate it carries if any."""

    channels: dict[str, npt.NDArray[Any]]
    sample_rate_hz: int | None


def load_recording(ref: RecordingRef | str, sample_rate_hz: int | None = None) -> list[Recording]:
    """Read the channels a recording argument selects, over its time range.

    Args:
        ref: A parsed argument, or its text ``PATH[@CHANNEL][:START_S-END_S]``.
        sample_rate_hz: Sample rate for a file that carries none (``--sample-rate``).

    Returns:
        One :class:`Recording` per selected channel, in file order.

    Raises:
        DataError: The argument, the file, a channel, the sample rate, the range or a sample
            cannot be used; the message names the file, the channel and the value.
    """
    if isinstance(ref, str):
        ref = RecordingRef.parse(ref)
    if sample_rate_hz is not None and sample_rate_hz <= 0:
        raise DataError(f"sample rate {sample_rate_hz} Hz is not a positive number")
    contents = _read(ref.path)
    rate = _sample_rate(ref.path, contents.sample_rate_hz, sample_rate_hz)
    return [
        _select(ref, name, contents.channels[name], rate)
        for name in _channel_names(ref, list(contents.channels))
    ]


def sample_windows(
    samples: npt.NDArray[np.floating[Any]], window: int, hop: int
) -> npt.NDArray[np.floating[Any]]:
    """Windows of ``window`` samples starting every ``hop`` samples, one per row.

    A read-only strided view of ``samples``; samples after the last whole window are left
    out, and fewer than ``window`` samples give no rows.

    Raises:
        DataError: ``samples`` is not one-dimensional, or ``window`` or ``hop`` is below 1.
    """
    if samples.ndim != 1:
        raise DataError(f"samples must be one-dimensional, got shape {samples.shape}")
    if window < 1 or hop < 1:
        raise DataError(f"window ({window}) and hop ({hop}) must be at least 1 sample")
    if len(samples) < window:
        return np.empty((0, window), dtype=samples.dtype)
    return np.lib.stride_tricks.sliding_window_view(samples, window)[::hop]


def channel_features(
    recording: Recording,
    spec: FeatureSpec,
    *,
    hop: int | None = None,
    normalise: Normalise | None = None,
) -> npt.NDArray[np.float32]:
    """Feature vectors of the windows of one channel, from the C DSP.

    Args:
        recording: The channel's samples.
        spec: The feature spec; its sample rate must be the recording's.
        hop: Samples from one window's start to the next (default
            ``spec.window // HOPS_PER_WINDOW``).
        normalise: ``"rms"`` divides each window by the RMS of its mean-removed samples.

    Returns:
        float32 ``[n_windows, spec.n_features]``, windows in time order.

    Raises:
        DataError: Another sample rate, a bad hop or normalisation, a range shorter than a
            window, a constant window under ``"rms"``, or samples the DSP refuses.
    """
    if recording.sample_rate_hz != spec.sample_rate_hz:
        raise DataError(
            f"{recording.name}: sample rate {recording.sample_rate_hz} Hz differs from the "
            f"feature spec's {spec.sample_rate_hz} Hz ({spec.spec_id}); recordings are not "
            "resampled"
        )
    hop = _check_options(spec, hop, normalise)
    windows = sample_windows(recording.samples, spec.window, hop)
    if len(windows) == 0:
        n = len(recording.samples)
        raise DataError(
            f"{recording.name}: the range holds {n} samples ({n / recording.sample_rate_hz:g} "
            f"s), fewer than one window of {spec.window}"
        )
    out = np.empty((len(windows), spec.n_features), dtype=np.float32)
    for first in range(0, len(windows), _CHUNK_WINDOWS):
        chunk = windows[first : first + _CHUNK_WINDOWS]
        if normalise == "rms":
            chunk = _rms_normalised(chunk, recording, hop, first)
        try:
            out[first : first + len(chunk)] = features_batch(chunk, spec)
        except EdgeError as exc:
            raise DataError(f"{recording.name} (windows from {first}): {exc}") from exc
    return out


def device_windows(
    text: str,
    spec: FeatureSpec,
    *,
    sample_rate_hz: int | None = None,
    normalise: Normalise | None = None,
) -> list[tuple[str, npt.NDArray[np.floating[Any]]]]:
    """Each channel's samples as a sensor delivers them: windows of ``spec.window``,
    one after another without overlap (divided by their RMS with ``normalise="rms"``).

    Returns:
        ``(PATH@CHANNEL, windows [n, spec.window])`` per selected channel.

    Raises:
        DataError: As :func:`channel_features` for the same recording.
    """
    _check_options(spec, spec.window, normalise)
    out = []
    for recording in load_recording(text, sample_rate_hz):
        if recording.sample_rate_hz != spec.sample_rate_hz:
            raise DataError(
                f"{recording.name}: sample rate {recording.sample_rate_hz} Hz differs from "
                f"the model's {spec.sample_rate_hz} Hz"
            )
        windows = sample_windows(recording.samples, spec.window, spec.window)
        if normalise == "rms" and len(windows):
            windows = _rms_normalised(windows, recording, spec.window, 0)
        out.append((recording.name, windows))
    return out


def recording_features(
    ref: RecordingRef | str,
    spec: FeatureSpec,
    *,
    sample_rate_hz: int | None = None,
    hop: int | None = None,
    normalise: Normalise | None = None,
) -> npt.NDArray[np.float32]:
    """Feature vectors of every channel a recording argument selects, one after the other.

    Args:
        ref: A parsed argument, or its text ``PATH[@CHANNEL][:START_S-END_S]``.
        spec: The feature spec; its sample rate must be the recording's.
        sample_rate_hz: Sample rate for a file that carries none (``--sample-rate``).
        hop: Samples from one window's start to the next (default
            ``spec.window // HOPS_PER_WINDOW``).
        normalise: ``"rms"`` divides each window by the RMS of its mean-removed samples.

    Returns:
        float32 ``[n_windows, spec.n_features]``: the first channel's windows, then the next.

    Raises:
        DataError: As :func:`load_recording` and :func:`channel_features`.
    """
    _check_options(spec, hop, normalise)
    parts = [
        channel_features(recording, spec, hop=hop, normalise=normalise)
        for recording in load_recording(ref, sample_rate_hz)
    ]
    return np.concatenate(parts)


def window_hop(spec: FeatureSpec, hop: int | None) -> int:
    """The hop to use: ``hop``, by default ``spec.window // HOPS_PER_WINDOW``.

    Raises:
        DataError: ``hop`` is below 1.
    """
    hop = spec.window // HOPS_PER_WINDOW if hop is None else hop
    if hop < 1:
        raise DataError(f"hop {hop} is not a positive number of samples")
    return hop


def _check_options(spec: FeatureSpec, hop: int | None, normalise: str | None) -> int:
    """The hop to use; refuses a hop below 1 or an unknown normalisation."""
    if normalise is not None and normalise not in NORMALISATIONS:
        raise DataError(f"unknown normalisation {normalise!r} (known: {', '.join(NORMALISATIONS)})")
    return window_hop(spec, hop)


def _rms_normalised(
    windows: npt.NDArray[np.floating[Any]], recording: Recording, hop: int, first: int
) -> npt.NDArray[np.float64]:
    """Each window divided by the RMS of its mean-removed samples.

    A window constant to rounding (its RMS at most 1e-12 of its largest magnitude, which
    includes an all-zero window) is refused: dividing would only amplify rounding noise.
    """
    data = windows.astype(np.float64)
    rms = np.sqrt(np.mean((data - data.mean(axis=1, keepdims=True)) ** 2, axis=1))
    flat = np.flatnonzero(rms <= 1e-12 * np.max(np.abs(data), axis=1))
    if flat.size:
        index = first + int(flat[0])
        at = (recording.start_sample + index * hop) / recording.sample_rate_hz
        raise DataError(
            f"{recording.name}: window {index} (from {at:g} s) is constant, so it has no RMS "
            "to normalise by; choose a range without it"
        )
    normalised: npt.NDArray[np.float64] = data / rms[:, np.newaxis]
    return normalised


def _parse_range(text: str, argument: str) -> tuple[float, float | None]:
    """``START_S-END_S`` with either end optional."""
    match = _RANGE.fullmatch(text)
    if match is None or (match["start"] is None and match["end"] is None):
        raise DataError(
            f"recording {argument!r}: range {text!r} is not START_S-END_S in seconds "
            "(for example 0-3.0, 1.5- or -2)"
        )
    start = float(match["start"]) if match["start"] is not None else 0.0
    end = float(match["end"]) if match["end"] is not None else None
    if end is not None and end <= start:
        raise DataError(f"recording {argument!r}: range {text!r} ends before it starts")
    return start, end


def recording_name(text: str) -> str:
    """A recording argument with the file's directories left out, as a manifest records it.

    ``data/cwru/normal_0_97.mat@*_DE_time:0-3.05`` becomes
    ``normal_0_97.mat@*_DE_time:0-3.05``: the channel and range stay as given.
    """
    end = _path_end(text) or len(_likely_path(text))
    return os.path.basename(text[:end]) + text[end:]


def _path_end(text: str) -> int:
    """Length of the longest prefix of ``text`` that names an existing file (0: none).

    Only prefixes followed by ``@`` or ``:`` (or the end) count.
    """
    for end in range(len(text), 0, -1):
        if end < len(text) and text[end] not in "@:":
            continue
        if os.path.isfile(text[:end]):
            return end
    return 0


def _format_seconds(seconds: float) -> str:
    """Shortest decimal that reads back as the same float, never in exponent form."""
    return np.format_float_positional(seconds, trim="-")


def _likely_path(text: str) -> str:
    """The path part of an argument whose file does not exist, for the message."""
    match = re.fullmatch(r"(.+?)(?:@[^:]*)?(?::[^:@]*)?", text, re.DOTALL)
    return match[1] if match else text


def _read(path: Path) -> _Contents:
    """The channels of a file, by its extension."""
    suffix = path.suffix.lower()
    readers = {".csv": _read_csv, ".npy": _read_npy, ".wav": _read_wav, ".mat": _read_mat}
    kinds = {".csv": "CSV", ".npy": "NPY", ".wav": "WAV", ".mat": "MATLAB"}
    problem = file_problem(path, kinds.get(suffix, ""))
    if problem:
        raise DataError(f"{path}: {problem}")
    if suffix not in readers:
        raise DataError(
            f"{path}: unknown recording format {suffix or '(no extension)'!r} "
            f"(known: {', '.join(EXTENSIONS)})"
        )
    contents = readers[suffix](path)
    if not contents.channels:
        raise DataError(f"{path}: holds no channel of samples")
    return contents


def file_problem(path: Path, kind: str = "") -> str | None:
    """Why ``path`` cannot be a data file: missing, a directory, not readable or empty.

    Args:
        path: The file.
        kind: Its format (``"CSV"``), to name in the message about an empty file.

    Returns:
        The problem, for a message that names the file; ``None`` if there is none.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot read: permission denied"
    if info.st_size == 0:
        return f"empty {kind} file (0 bytes)" if kind else "empty file (0 bytes)"
    return None


def _read_csv(path: Path) -> _Contents:
    """Channels of a comma-separated file; see the module documentation."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = [(n, row) for n, row in enumerate(csv.reader(file), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    first = rows[0][1]
    has_header = not all(_is_number(cell) for cell in first)
    names = [cell.strip() for cell in first] if has_header else [str(i) for i in range(len(first))]
    body = rows[1:] if has_header else rows
    _check_names(path, names)
    for line, row in body:
        if len(row) != len(names):
            raise DataError(f"{path}: line {line} has {len(row)} cells, expected {len(names)}")
    if not body:
        raise DataError(f"{path}: CSV file has a header but no samples")
    try:
        table = np.array([row for _, row in body], dtype=np.float64)
    except ValueError:
        # NumPy parses text with Python's float(), so this finds the cell it refused.
        line, column, cell = next(
            (line, name, cell)
            for line, row in body
            for name, cell in zip(names, row, strict=True)
            if not _is_number(cell)
        )
        raise DataError(
            f"{path}: line {line}, column {column!r}: {cell!r} is not a number"
        ) from None
    rate = None
    columns: dict[str, npt.NDArray[Any]] = {}
    for i, name in enumerate(names):
        if has_header and name.lower() in TIME_COLUMNS:
            rate = _rate_from_times(path, name, table[:, i])
        else:
            columns[name] = table[:, i]
    return _Contents(columns, rate)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_names(path: Path, names: Sequence[str]) -> None:
    """Channel names must be non-empty and distinct, or they could not be selected."""
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"{path}: column {i} of the header has no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: header names {', '.join(duplicates)} more than once")


def _rate_from_times(path: Path, name: str, times: npt.NDArray[np.float64]) -> int:
    """Whole-Hz sample rate of an evenly spaced time column in seconds.

    The rate comes from the whole span, so times written with few decimals still give the
    right rate; every time must then lie within a quarter of a sample period of its place
    on that rate's grid.
    """
    if len(times) < 2:
        raise DataError(f"{path}: time column {name!r} needs two rows to give a sample rate")
    if not np.all(np.isfinite(times)):
        row = int(np.flatnonzero(~np.isfinite(times))[0])
        raise DataError(f"{path}: time column {name!r}, sample {row}: {times[row]} is not finite")
    span = float(times[-1] - times[0])
    if span <= 0:
        raise DataError(f"{path}: time column {name!r} does not increase")
    rate = round((len(times) - 1) / span)
    if rate < 1:
        raise DataError(f"{path}: time column {name!r} implies less than 1 Hz")
    expected = times[0] + np.arange(len(times)) / rate
    off = np.flatnonzero(np.abs(times - expected) > 0.25 / rate)
    if off.size:
        row = int(off[0])
        raise DataError(
            f"{path}: time column {name!r} is not evenly spaced at {rate} Hz: sample {row} "
            f"is at {times[row]} s, expected {expected[row]:.9g} s"
        )
    return rate


def _read_npy(path: Path) -> _Contents:
    """Channels of a 1-D or ``[samples, channels]`` NumPy array; no sample rate."""
    try:
        with path.open("rb") as file:
            magic = file.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            # np.load would try the file as a pickle and blame that instead.
            raise DataError(f"{path}: not an NPY file (it does not start with the NPY magic)")
        array = np.load(path, allow_pickle=False)
    except DataError:
        raise
    except Exception as exc:
        # np.load reports damaged or foreign files with many exception types (ValueError,
        # OSError, EOFError, zipfile.BadZipFile ...): each means "not a readable .npy".
        raise DataError(f"{path}: cannot read as NPY: {exc}") from exc
    if array.ndim not in (1, 2):
        raise DataError(
            f"{path}: array of shape {array.shape}; expected [samples] or [samples, channels]"
        )
    _check_numeric(path, "array", array)
    _check_samples(path, "array", array)
    table = array.reshape(len(array), -1)
    return _Contents({str(i): table[:, i] for i in range(table.shape[1])}, None)


def _read_wav(path: Path) -> _Contents:
    """Channels of a WAV file, integer PCM scaled to [-1, 1), and its sample rate."""
    from scipy.io import wavfile  # imported here: scipy is only needed to read files

    try:
        rate, data = wavfile.read(path)
    except Exception as exc:
        # scipy's reader raises ValueError, OSError, EOFError ... on damaged files.
        raise DataError(f"{path}: cannot read as WAV: {exc}") from exc
    _check_numeric(path, "WAV data", data)
    _check_samples(path, "WAV data", data)
    if rate < 1:
        raise DataError(f"{path}: WAV header gives a sample rate of {rate} Hz")
    if data.dtype.kind == "u":  # 8-bit WAV is unsigned with its zero at 128
        scaled = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        scaled = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        scaled = data.astype(np.float64)
    table = scaled.reshape(len(scaled), -1)
    return _Contents({str(i): table[:, i] for i in range(table.shape[1])}, int(rate))


def _read_mat(path: Path) -> _Contents:
    """Channels of a MATLAB file (up to v7) and the sample rate of a rate variable."""
    from scipy.io import loadmat  # imported here: scipy is only needed to read files

    try:
        variables = loadmat(path)
    except NotImplementedError as exc:
        raise DataError(f"{path}: cannot read MATLAB v7.3 (HDF5) files: {exc}") from exc
    except Exception as exc:
        # loadmat reports damaged files with MatReadError, IndexError, ValueError, OSError,
        # zlib errors ...: each means "not a readable .mat file".
        raise DataError(f"{path}: cannot read as a MATLAB file: {exc}") from exc
    channels: dict[str, npt.NDArray[Any]] = {}
    rates: dict[str, float] = {}
    for name, value in variables.items():
        if name.startswith("__") or not isinstance(value, np.ndarray):
            continue
        if value.dtype.kind not in "iuf":
            continue
        if value.size == 1 and name.lower().replace("_", "") in RATE_VARIABLES:
            rates[name] = float(value.item())
        elif value.size >= 2 and max(value.shape) == value.size:
            channels[name] = value.reshape(-1)
    rate = None
    for name, value in rates.items():
        if not (np.isfinite(value) and value >= 1 and value == round(value)):
            raise DataError(f"{path}: sample rate variable {name} = {value} is not a whole Hz")
        if rate is not None and rate != round(value):
            raise DataError(f"{path}: sample rate variables disagree: {rates}")
        rate = round(value)
    return _Contents(channels, rate)


def _check_numeric(path: Path, what: str, array: npt.NDArray[Any]) -> None:
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: {what} has dtype {array.dtype}, not real numbers")


def _check_samples(path: Path, what: str, array: npt.NDArray[Any]) -> None:
    """Refuse an array without a sample: reshaping it to ``[samples, -1]`` would fail."""
    if array.ndim == 0 or array.shape[0] == 0:
        raise DataError(f"{path}: {what} of shape {array.shape} holds no samples")


def _sample_rate(path: Path, in_file: int | None, given: int | None) -> int:
    """The file's rate, else the one given; refuses a conflict or neither."""
    if in_file is not None and given is not None and in_file != given:
        raise DataError(
            f"{path}: the file's sample rate is {in_file} Hz but {given} Hz was given "
            "(--sample-rate)"
        )
    rate = in_file if in_file is not None else given
    if rate is None:
        raise DataError(f"{path}: the file carries no sample rate; pass --sample-rate")
    return rate


def _channel_names(ref: RecordingRef, names: list[str]) -> list[str]:
    """The channels ``ref`` selects, in file order."""
    known = ", ".join(names)
    if ref.channel is None:
        if len(names) > 1:
            raise DataError(
                f"{ref.path}: holds {len(names)} channels ({known}); choose one with "
                "PATH@CHANNEL (a glob such as PATH@*_DE_time selects several)"
            )
        return names
    if _GLOB_CHARS.isdisjoint(ref.channel):
        if ref.channel not in names:
            raise DataError(f"{ref.path}: no channel {ref.channel!r} (channels: {known})")
        return [ref.channel]
    chosen = [name for name in names if fnmatch.fnmatchcase(name, ref.channel)]
    if not chosen:
        raise DataError(f"{ref.path}: no channel matches {ref.channel!r} (channels: {known})")
    return chosen


def _select(ref: RecordingRef, channel: str, data: npt.NDArray[Any], rate: int) -> Recording:
    """The finite float64 samples of one channel over the range of ``ref``."""
    name = f"{ref.path}@{channel}"
    n = len(data)
    length = f"{n} samples, {n / rate:g} s at {rate} Hz"
    start = round(ref.start_s * rate)
    stop = n if ref.end_s is None else round(ref.end_s * rate)
    if stop > n:
        raise DataError(f"{name}: range end {ref.end_s:g} s is past the end ({length})")
    if start >= stop:
        raise DataError(f"{name}: range from {ref.start_s:g} s holds no samples ({length})")
    samples = np.asarray(data[start:stop], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(samples))
    if bad.size:
        index = start + int(bad[0])
        raise DataError(
            f"{name}: sample {index} (at {index / rate:g} s) is {data[index]}, not a finite number"
        )
    return Recording(ref, channel, rate, start, samples)
