"""vibewatch.train.recordings: the recording argument, the file formats and the features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.io
from scipy.io import wavfile

from vibewatch.edge import FeatureSpec, features_batch
from vibewatch.errors import DataError
from vibewatch.train.recordings import (
    Recording,
    RecordingRef,
    channel_features,
    load_recording,
    recording_features,
    recording_name,
    sample_windows,
)

RATE = 4096
SPEC = FeatureSpec.default(RATE)


def signal(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """A tone over noise, so that windows differ from each other."""
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * 97.0 * np.arange(n) / RATE) + 0.3 * rng.standard_normal(n)


def npy(path: Path, data: npt.ArrayLike) -> Path:
    with path.open("wb") as file:  # np.save(path) would add ".npy" to a name without it
        np.save(file, np.asarray(data))
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def refusal(text: str, sample_rate_hz: int | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_recording(text, sample_rate_hz)
    return str(info.value)


# --- the recording argument ------------------------------------------------------------


def test_parse_plain_path_channel_and_range(tmp_path: Path) -> None:
    path = npy(tmp_path / "a.npy", [1.0, 2.0])
    assert RecordingRef.parse(str(path)) == RecordingRef(path)
    ref = RecordingRef.parse(f"{path}@X097_DE_time:0-3.0")
    assert ref == RecordingRef(path, "X097_DE_time", 0.0, 3.0)
    assert RecordingRef.parse(f"{path}@*_DE_time") == RecordingRef(path, "*_DE_time")
    assert RecordingRef.parse(f"{path}:1.5-") == RecordingRef(path, None, 1.5, None)
    assert RecordingRef.parse(f"{path}:-2") == RecordingRef(path, None, 0.0, 2.0)
    assert RecordingRef.parse(f"{path}:.25-.5") == RecordingRef(path, None, 0.25, 0.5)


@pytest.mark.parametrize(
    "suffix", ["", "@ch", "@*_DE_time:0-3", ":1.5-", ":-2", ":0.125-0.3", "@[ab]x:7-", ":0.00001-1"]
)
def test_str_round_trips(tmp_path: Path, suffix: str) -> None:
    path = npy(tmp_path / "a.npy", [1.0, 2.0])
    ref = RecordingRef.parse(f"{path}{suffix}")
    assert RecordingRef.parse(str(ref)) == ref
    assert "e" not in str(ref).removeprefix(str(path)).split(":")[-1]


def test_str_of_a_full_range_is_the_canonical_text(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    assert str(RecordingRef(path, "X", 0.0, 3.0)) == f"{path}@X:-3"
    assert str(RecordingRef(path, None, 1.5, None)) == f"{path}:1.5-"
    assert str(RecordingRef(path)) == str(path)


def test_path_is_the_longest_existing_prefix(tmp_path: Path) -> None:
    short = npy(tmp_path / "rec", [1.0, 2.0])
    long = npy(tmp_path / "rec@x:1.npy", [1.0, 2.0])
    assert RecordingRef.parse(f"{long}@0:0-1") == RecordingRef(long, "0", 0.0, 1.0)
    assert RecordingRef.parse(str(long)) == RecordingRef(long)
    # With only the shorter file, the same characters become a channel and a range.
    assert RecordingRef.parse(f"{short}@x:1-2") == RecordingRef(short, "x", 1.0, 2.0)


def test_a_directory_is_not_a_recording(tmp_path: Path) -> None:
    (tmp_path / "dir@x").mkdir()
    message = refusal(f"{tmp_path}/dir@x")
    assert "no such file" in message
    assert "(it is a directory)" in message


@pytest.mark.parametrize("rng", ["abc", "3-1", "2-2", "1.5", "-", "", "-1-2", "1e3-", "+1-2"])
def test_bad_ranges_are_refused(tmp_path: Path, rng: str) -> None:
    path = npy(tmp_path / "a.npy", [1.0, 2.0])
    with pytest.raises(DataError, match="range") as info:
        RecordingRef.parse(f"{path}:{rng}")
    assert repr(rng) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file '.*nothere\.mat'"):
        RecordingRef.parse(f"{tmp_path}/nothere.mat@X097_DE_time:0-3")


def test_empty_channel_is_refused(tmp_path: Path) -> None:
    path = npy(tmp_path / "a.npy", [1.0, 2.0])
    with pytest.raises(DataError, match="empty channel"):
        RecordingRef.parse(f"{path}@:0-1")


def test_constructed_ref_checks_its_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="-1"):
        RecordingRef(tmp_path / "a.npy", None, -1.0)
    with pytest.raises(DataError, match="not after"):
        RecordingRef(tmp_path / "a.npy", None, 2.0, 1.0)


# --- formats ---------------------------------------------------------------------------


def test_csv_with_header_and_time_column_gives_rate_and_channels(tmp_path: Path) -> None:
    n = 64
    x, y = signal(n, 1), signal(n, 2)
    rows = zip(x.tolist(), y.tolist(), strict=True)
    lines = ["time_s,x,y"] + [f"{i / 1000:.6f},{a!r},{b!r}" for i, (a, b) in enumerate(rows)]
    path = write_csv(tmp_path / "r.csv", "\n".join(lines) + "\n")
    (rec,) = load_recording(f"{path}@y")
    assert (rec.channel, rec.sample_rate_hz, rec.start_sample) == ("y", 1000, 0)
    np.testing.assert_array_equal(rec.samples, y)
    assert [r.channel for r in load_recording(f"{path}@*")] == ["x", "y"]


def test_csv_time_column_with_rounded_times_gives_the_whole_rate(tmp_path: Path) -> None:
    n = 2000
    lines = ["t,a"] + [f"{i / 48000:.6f},{v}" for i, v in enumerate(signal(n))]
    path = write_csv(tmp_path / "r.csv", "\n".join(lines))
    (rec,) = load_recording(str(path))
    assert rec.sample_rate_hz == 48000


def test_csv_unevenly_spaced_time_column_is_refused(tmp_path: Path) -> None:
    times = [0.0, 0.001, 0.002, 0.0035, 0.004, 0.005]
    path = write_csv(tmp_path / "r.csv", "Time,a\n" + "".join(f"{t},1\n" for t in times))
    message = refusal(str(path))
    assert "not evenly spaced at 1000 Hz" in message
    assert "sample 3" in message


def test_csv_without_header_names_channels_by_column_and_needs_a_rate(tmp_path: Path) -> None:
    data = np.stack([signal(32, 1), signal(32, 2)], axis=1)
    path = write_csv(tmp_path / "r.csv", "\n".join(f"{a!r},{b!r}" for a, b in data.tolist()))
    assert "pass --sample-rate" in refusal(f"{path}@1")
    (rec,) = load_recording(f"{path}@1", RATE)
    assert (rec.channel, rec.sample_rate_hz) == ("1", RATE)
    np.testing.assert_array_equal(rec.samples, data[:, 1])


def test_csv_rate_conflict_names_both_rates(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "t,a\n0,1\n0.5,2\n1.0,3\n")
    message = refusal(str(path), 48000)
    assert "2 Hz" in message
    assert "48000 Hz" in message


def test_csv_non_numeric_cell_is_named_by_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "a,b\n1,2\n3,oops\n")
    message = refusal(f"{path}@a", RATE)
    assert "line 3, column 'b': 'oops' is not a number" in message
    assert str(path) in message


def test_csv_ragged_and_empty_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    ragged = write_csv(tmp_path / "ragged.csv", "a,b\n1,2\n3\n")
    assert "line 3 has 1 cells, expected 2" in refusal(str(ragged), RATE)
    empty = write_csv(tmp_path / "empty.csv", "")
    assert "empty CSV" in refusal(str(empty), RATE)
    header_only = write_csv(tmp_path / "header.csv", "a,b\n")
    assert "no samples" in refusal(str(header_only), RATE)
    twice = write_csv(tmp_path / "twice.csv", "a,a\n1,2\n")
    assert "header names a more than once" in refusal(str(twice), RATE)


def test_npy_one_and_two_dimensional(tmp_path: Path) -> None:
    one = npy(tmp_path / "one.npy", signal(100).astype(np.float32))
    (rec,) = load_recording(str(one), RATE)
    assert rec.channel == "0"
    assert rec.samples.dtype == np.float64
    np.testing.assert_array_equal(rec.samples, signal(100).astype(np.float32))
    table = np.stack([signal(100, s) for s in range(3)], axis=1)
    two = npy(tmp_path / "two.npy", table)
    recs = load_recording(f"{two}@*", RATE)
    assert [r.channel for r in recs] == ["0", "1", "2"]
    for i, rec in enumerate(recs):
        np.testing.assert_array_equal(rec.samples, table[:, i])


def test_npy_of_other_shapes_or_dtypes_is_refused(tmp_path: Path) -> None:
    assert "shape (2, 2, 2)" in refusal(str(npy(tmp_path / "c.npy", np.zeros((2, 2, 2)))), RATE)
    assert "complex128" in refusal(str(npy(tmp_path / "z.npy", np.zeros(4, complex))), RATE)
    objects = tmp_path / "o.npy"
    np.save(objects, np.array([1, "a"], dtype=object), allow_pickle=True)
    assert "cannot read as NPY" in refusal(str(objects), RATE)
    archive = tmp_path / "archive.npy"
    with archive.open("wb") as file:
        np.savez(file, a=np.zeros(3))
    assert "not an NPY file" in refusal(str(archive), RATE)


def test_wav_int16_is_scaled_and_carries_its_rate(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    data = np.array([[-32768, 16384], [0, -8192], [32767, 1]], dtype=np.int16)
    wavfile.write(path, 8000, data)
    recs = load_recording(f"{path}@*")
    assert [(r.channel, r.sample_rate_hz) for r in recs] == [("0", 8000), ("1", 8000)]
    np.testing.assert_array_equal(recs[0].samples, [-1.0, 0.0, 32767 / 32768])
    np.testing.assert_array_equal(recs[1].samples, [0.5, -0.25, 1 / 32768])
    message = refusal(f"{path}@0", 48000)
    assert "8000 Hz" in message
    assert "48000 Hz" in message


def test_wav_float32_and_uint8(tmp_path: Path) -> None:
    floats = tmp_path / "f.wav"
    wavfile.write(floats, 22050, np.array([0.5, -0.25, 2.0], dtype=np.float32))
    (rec,) = load_recording(str(floats), 22050)
    np.testing.assert_array_equal(rec.samples, [0.5, -0.25, 2.0])
    bytes8 = tmp_path / "u.wav"
    wavfile.write(bytes8, 1000, np.array([0, 128, 192], dtype=np.uint8))
    (rec,) = load_recording(str(bytes8))
    np.testing.assert_array_equal(rec.samples, [-1.0, 0.0, 0.5])


def test_mat_channels_and_rate_variable(tmp_path: Path) -> None:
    path = tmp_path / "r.mat"
    de, fe = signal(300, 1), signal(300, 2)
    scipy.io.savemat(
        path, {"X1_DE_time": de.reshape(-1, 1), "X1_FE_time": de * 0 + fe, "RPM": 1796, "Fs": 4096}
    )
    recs = load_recording(f"{path}@*_time")
    assert [(r.channel, r.sample_rate_hz) for r in recs] == [
        ("X1_DE_time", 4096),
        ("X1_FE_time", 4096),
    ]
    np.testing.assert_array_equal(recs[0].samples, de)
    np.testing.assert_array_equal(recs[1].samples, fe)
    message = refusal(str(path))
    assert "2 channels (X1_DE_time, X1_FE_time)" in message


def test_mat_without_rate_variable_needs_one(tmp_path: Path) -> None:
    path = tmp_path / "r.mat"
    scipy.io.savemat(path, {"x": signal(50), "rpm": 1796})
    assert "pass --sample-rate" in refusal(str(path))
    (rec,) = load_recording(str(path), RATE)
    assert rec.channel == "x"


def test_mat_with_a_fractional_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.mat"
    scipy.io.savemat(path, {"x": signal(50), "sample_rate": 100.5})
    assert "sample_rate = 100.5" in refusal(str(path))


@pytest.mark.parametrize("suffix", [".mat", ".wav", ".npy", ".csv"])
def test_damaged_files_are_refused_by_name(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"\x00\xff" * 40)
    message = refusal(str(path), RATE)
    assert str(path) in message


def test_truncated_mat_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.mat"
    scipy.io.savemat(path, {"x": signal(5000)})
    path.write_bytes(path.read_bytes()[:2000])
    assert "cannot read as a MATLAB file" in refusal(str(path), RATE)


@pytest.mark.parametrize("shape", [(0,), (0, 3)])
def test_npy_without_samples_is_refused_by_name(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = npy(tmp_path / "none.npy", np.zeros(shape))
    message = refusal(str(path), RATE)
    assert message == f"{path}: array of shape {shape} holds no samples"


@pytest.mark.parametrize("shape", [(0,), (0, 2)])
def test_wav_without_samples_is_refused_by_name(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = tmp_path / "none.wav"
    wavfile.write(path, RATE, np.zeros(shape, np.int16))
    assert refusal(str(path)) == f"{path}: WAV data of shape {shape} holds no samples"


@pytest.mark.parametrize(("suffix", "kind"), [(".csv", "CSV"), (".npy", "NPY"), (".wav", "WAV")])
def test_empty_files_are_refused_by_name_and_format(tmp_path: Path, suffix: str, kind: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert refusal(str(path), RATE) == f"{path}: empty {kind} file (0 bytes)"


def test_a_constructed_ref_to_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.npy: no such file$"):
        load_recording(RecordingRef(tmp_path / "gone.npy"), RATE)
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(DataError, match=r"dir\.npy: is a directory, not a file$"):
        load_recording(RecordingRef(tmp_path / "dir.npy"), RATE)


def test_a_sample_rate_without_a_default_spec_is_a_data_error(tmp_path: Path) -> None:
    from vibewatch.train.dataset import import_recordings

    path = npy(tmp_path / "fast.npy", signal(5000))
    with pytest.raises(DataError, match=r"fast\.npy@0: no feature spec for its sample rate of"):
        import_recordings([str(path)], sample_rate_hz=2_000_000)


def test_recording_name_leaves_out_the_directories(tmp_path: Path) -> None:
    path = npy(tmp_path / "a@b.npy", [1.0, 2.0])
    assert recording_name(f"{path}@*_DE:0-3.05") == "a@b.npy@*_DE:0-3.05"
    assert recording_name(str(path)) == "a@b.npy"
    # A file that is gone: the path ends where the channel starts.
    assert recording_name("/data/x/gone.mat@X097:1-") == "gone.mat@X097:1-"
    assert recording_name("gone.mat") == "gone.mat"


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.flac"
    path.write_bytes(b"fLaC")
    assert "unknown recording format '.flac'" in refusal(str(path), RATE)


def test_channel_selection_refusals_list_the_channels(tmp_path: Path) -> None:
    path = npy(tmp_path / "a.npy", np.zeros((10, 2)))
    assert "2 channels (0, 1)" in refusal(str(path), RATE)
    assert "no channel '7' (channels: 0, 1)" in refusal(f"{path}@7", RATE)
    assert "no channel matches '*_DE' (channels: 0, 1)" in refusal(f"{path}@*_DE", RATE)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_by_index(tmp_path: Path, bad: float) -> None:
    data = signal(100)
    data[42] = bad
    path = npy(tmp_path / "a.npy", data)
    message = refusal(str(path), RATE)
    assert f"{path}@0: sample 42" in message
    assert str(bad) in message
    # Outside the range, the sample does not matter.
    (rec,) = load_recording(f"{path}:0-0.01", RATE)
    assert len(rec.samples) == round(0.01 * RATE)


def test_range_selects_samples_and_refuses_past_the_end(tmp_path: Path) -> None:
    data = signal(RATE * 2)
    path = npy(tmp_path / "a.npy", data)
    (rec,) = load_recording(f"{path}:0.5-1.25", RATE)
    assert rec.start_sample == RATE // 2
    np.testing.assert_array_equal(rec.samples, data[RATE // 2 : RATE * 5 // 4])
    (rest,) = load_recording(f"{path}:1.5-", RATE)
    np.testing.assert_array_equal(rest.samples, data[RATE * 3 // 2 :])
    message = refusal(f"{path}:0-2.5", RATE)
    assert "range end 2.5 s is past the end" in message
    assert f"{RATE * 2} samples, 2 s at {RATE} Hz" in message
    assert "holds no samples" in refusal(f"{path}:3-", RATE)


def test_non_positive_sample_rate_is_refused(tmp_path: Path) -> None:
    path = npy(tmp_path / "a.npy", signal(10))
    assert "sample rate 0 Hz" in refusal(str(path), 0)


# --- windows and features --------------------------------------------------------------


def test_sample_windows_rows_are_hop_apart() -> None:
    data = np.arange(20.0)
    windows = sample_windows(data, 8, 5)
    assert windows.shape == (3, 8)  # samples 15..19 do not fill a fourth window
    for i, row in enumerate(windows):
        np.testing.assert_array_equal(row, data[5 * i : 5 * i + 8])
    assert sample_windows(data, 21, 1).shape == (0, 21)
    with pytest.raises(DataError, match="at least 1"):
        sample_windows(data, 8, 0)
    with pytest.raises(DataError, match="one-dimensional"):
        sample_windows(data.reshape(4, 5), 2, 1)


def recording(data: npt.NDArray[np.float64], rate: int = RATE) -> Recording:
    return Recording(RecordingRef(Path("mem.npy")), "0", rate, 0, data)


def test_features_are_those_of_the_c_dsp_on_the_same_windows() -> None:
    data = signal(10_000)
    got = channel_features(recording(data), SPEC, hop=300)
    want = features_batch(sample_windows(data, SPEC.window, 300), SPEC)
    assert got.dtype == np.float32
    assert got.shape == ((10_000 - SPEC.window) // 300 + 1, SPEC.n_features)
    np.testing.assert_array_equal(got, want)


def test_default_hop_is_an_eighth_of_a_window() -> None:
    data = signal(SPEC.window * 4)
    got = channel_features(recording(data), SPEC)
    assert len(got) == 25
    hop = SPEC.window // 8
    second = data[None, hop : hop + SPEC.window]
    np.testing.assert_array_equal(got[1], features_batch(second, SPEC)[0])


def test_many_windows_are_computed_in_chunks_like_one_batch() -> None:
    data = signal(SPEC.window + 5000)
    got = channel_features(recording(data), SPEC, hop=1)
    np.testing.assert_array_equal(got, features_batch(sample_windows(data, SPEC.window, 1), SPEC))


def test_rms_normalisation_divides_each_window_by_its_own_rms() -> None:
    data = signal(5000) * np.linspace(0.5, 3.0, 5000) + 2.0
    windows = sample_windows(data, SPEC.window, 256)
    centred = windows - windows.mean(axis=1, keepdims=True)
    scaled = windows / np.sqrt(np.mean(centred**2, axis=1, keepdims=True))
    got = channel_features(recording(data), SPEC, hop=256, normalise="rms")
    np.testing.assert_array_equal(got, features_batch(scaled, SPEC))
    rms = got[:, SPEC.n_bands]
    np.testing.assert_allclose(rms, 1.0, rtol=1e-5)
    # A louder copy of the signal has the same normalised features, but not the same raw ones.
    louder = channel_features(recording(data * 1000), SPEC, hop=256, normalise="rms")
    np.testing.assert_allclose(louder, got, rtol=1e-4, atol=1e-5)
    raw = channel_features(recording(data), SPEC, hop=256)
    assert not np.allclose(raw, got)


def test_rms_normalisation_refuses_a_constant_window() -> None:
    window = SPEC.window
    data = signal(4 * window)
    data[2 * window : 3 * window + window // 8] = 0.25  # all of window 2, a little of window 3
    message = ""
    with pytest.raises(DataError) as info:
        channel_features(recording(data), SPEC, hop=window, normalise="rms")
    message = str(info.value)
    assert f"window 2 (from {2 * window / RATE:g} s) is constant" in message
    assert "mem.npy@0" in message
    # Without normalisation the flat stretch is an ordinary (quiet) window.
    assert len(channel_features(recording(data), SPEC, hop=window)) == 4


def test_feature_refusals() -> None:
    with pytest.raises(DataError, match="48000 Hz differs from the feature spec's 4096 Hz"):
        channel_features(recording(signal(5000), 48000), SPEC)
    with pytest.raises(DataError, match=f"fewer than one window of {SPEC.window}"):
        channel_features(recording(signal(SPEC.window - 1)), SPEC)
    with pytest.raises(DataError, match="unknown normalisation 'peak'"):
        channel_features(recording(signal(5000)), SPEC, normalise="peak")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="hop 0"):
        channel_features(recording(signal(5000)), SPEC, hop=0)
    with pytest.raises(DataError, match=r"mem\.npy@0.*not a finite float32"):
        channel_features(recording(np.full(2 * SPEC.window, 1e300)), SPEC)


def test_recording_features_concatenate_the_channels(tmp_path: Path) -> None:
    n = 3 * SPEC.window - 100  # several windows and a part of one
    table = np.stack([signal(n, 1), signal(n, 2)], axis=1)
    path = npy(tmp_path / "two.npy", table)
    got = recording_features(f"{path}@*", SPEC, sample_rate_hz=RATE, hop=512)
    want = [features_batch(sample_windows(table[:, i], SPEC.window, 512), SPEC) for i in (0, 1)]
    np.testing.assert_array_equal(got, np.concatenate(want))


CWRU = Path(__file__).resolve().parents[1] / "data" / "cwru"


def test_real_cwru_recording() -> None:
    spec = FeatureSpec.default(48_000)
    ref = f"{CWRU / 'normal_0_97.mat'}@*_DE_time:0-1.0"
    (rec,) = load_recording(ref, 48_000)
    assert rec.channel == "X097_DE_time"
    assert len(rec.samples) == 48_000
    got = recording_features(ref, spec, sample_rate_hz=48_000, hop=256)
    assert got.shape == ((48_000 - spec.window) // 256 + 1, spec.n_features)
    assert np.all(np.isfinite(got))
    both = recording_features(
        f"{CWRU / 'normal_0_97.mat'}@X097_*_time:1-2", spec, sample_rate_hz=48_000
    )
    assert both.shape == (2 * ((48_000 - spec.window) // (spec.window // 8) + 1), spec.n_features)
