"""vibewatch.train.dataset and ``vibewatch dataset import``: feature datasets of recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from vibewatch.edge import FeatureSpec
from vibewatch.errors import DataError
from vibewatch.train.cli import dataset_app
from vibewatch.train.dataset import FeatureDataset, Source, import_recordings
from vibewatch.train.recordings import RecordingRef, recording_features

RATE = 4096
SPEC = FeatureSpec.default(RATE)
#: Lengths of the fixture's recordings: a little short of six and of five default windows.
NPY_SAMPLES, WAV_SAMPLES = 6 * SPEC.window - SPEC.window // 8, 5 * SPEC.window - SPEC.window // 8
runner = CliRunner()


def n_windows(n_samples: int, hop: int) -> int:
    """Windows of :data:`SPEC` that fit in ``n_samples`` samples, ``hop`` apart."""
    return (n_samples - SPEC.window) // hop + 1


def signal(n: int, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * 50.0 * np.arange(n) / RATE) + 0.3 * rng.standard_normal(n)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A two-channel NPY without a rate and a mono float WAV at :data:`RATE`."""
    table = np.stack([signal(NPY_SAMPLES, 1), signal(NPY_SAMPLES, 2)], axis=1)
    npy = tmp_path / "two@ch.npy"
    np.save(npy, table)
    wav = tmp_path / "one.wav"
    wavfile.write(wav, RATE, signal(WAV_SAMPLES, 3).astype(np.float32))
    return npy, wav


def test_import_recordings_keeps_rows_and_sources_in_order(files: tuple[Path, Path]) -> None:
    npy, wav = files
    args = [f"{npy}@*:0.25-", str(wav)]
    seen: list[RecordingRef] = []
    dataset = import_recordings(args, sample_rate_hz=RATE, hop=400, progress=seen.append)
    assert seen == [RecordingRef.parse(a) for a in args]
    assert dataset.spec == FeatureSpec.default(RATE)
    want = np.concatenate([recording_features(a, SPEC, sample_rate_hz=RATE, hop=400) for a in args])
    np.testing.assert_array_equal(dataset.features, want)
    windows = [n_windows(NPY_SAMPLES - RATE // 4, 400)] * 2 + [n_windows(WAV_SAMPLES, 400)]
    assert dataset.sources == (
        Source(f"{npy}@*:0.25-", "0", RATE, windows[0], 400, None),
        Source(f"{npy}@*:0.25-", "1", RATE, windows[1], 400, None),
        Source(str(wav), "0", RATE, windows[2], 400, None),
    )


def test_import_with_a_given_spec_and_normalisation(files: tuple[Path, Path]) -> None:
    _, wav = files
    spec = FeatureSpec.log_bands(RATE, 512, 8, 20.0, 2000.0)
    dataset = import_recordings([str(wav)], spec, normalise="rms")
    assert dataset.spec == spec
    np.testing.assert_array_equal(
        dataset.features, recording_features(str(wav), spec, normalise="rms")
    )
    assert dataset.sources[0].hop == 64  # an eighth of the window
    assert dataset.sources[0].normalise == "rms"


def test_import_refusals(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, wav = files
    with pytest.raises(DataError, match="no recordings"):
        import_recordings([])
    # Every argument is parsed before any file is read: nothing gets done.
    seen: list[RecordingRef] = []
    with pytest.raises(DataError, match="range '2-1'"):
        import_recordings([str(wav), f"{wav}:2-1"], progress=seen.append)
    assert seen == []
    # The default spec is that of the first recording's rate; others are not resampled.
    fast = tmp_path / "fast.wav"
    wavfile.write(fast, 2 * RATE, signal(5000, 4))
    with pytest.raises(DataError, match="4096 Hz differs from the feature spec's 8192 Hz"):
        import_recordings([str(fast), str(wav)])


def test_save_and_load_round_trip(files: tuple[Path, Path], tmp_path: Path) -> None:
    npy, wav = files
    dataset = import_recordings([f"{npy}@1", str(wav)], sample_rate_hz=RATE, normalise="rms")
    path = tmp_path / "features.data"  # the name is kept as given
    dataset.save(path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("features")) == [
        "features.data"
    ]
    loaded = FeatureDataset.load(path)
    assert loaded.spec == dataset.spec
    assert loaded.sources == dataset.sources
    assert loaded.features.dtype == np.float32
    np.testing.assert_array_equal(loaded.features, dataset.features)


def test_dataset_checks_its_shape() -> None:
    sources = (Source("a.npy", "0", RATE, 3, 512, None),)
    FeatureDataset(np.zeros((3, SPEC.n_features), np.float32), SPEC, sources)
    with pytest.raises(DataError, match=rf"expected float32 \(3, {SPEC.n_features}\)"):
        FeatureDataset(np.zeros((4, SPEC.n_features), np.float32), SPEC, sources)
    with pytest.raises(DataError, match="dtype float64"):
        FeatureDataset(np.zeros((3, SPEC.n_features)), SPEC, sources)  # type: ignore[arg-type]


SOURCE = {
    "recording": "a.npy",
    "channel": "0",
    "sample_rate_hz": RATE,
    "windows": 2,
    "hop": 512,
    "normalise": None,
}


def saved(tmp_path: Path, **changes: npt.ArrayLike) -> Path:
    """A valid dataset file with some entries replaced (or removed, given ``None``)."""
    good = tmp_path / "good.npz"
    sources = (Source("a.npy", "0", RATE, 2, 512, None),)
    FeatureDataset(np.ones((2, SPEC.n_features), np.float32), SPEC, sources).save(good)
    with np.load(good) as archive:
        entries = {key: archive[key] for key in archive.files}
    entries.update(changes)
    path = tmp_path / "changed.npz"
    np.savez(path, **{k: v for k, v in entries.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": np.array("other-1")}, "format 'other-1'"),
        ({"spec_id": np.array("fs-1-2-3-x")}, "spec id 'fs-1-2-3-x' does not match"),
        ({"window": np.array(1000)}, "invalid feature spec"),
        ({"features": np.ones((3, SPEC.n_features), np.float32)}, "do not fit the sources"),
        ({"features": np.ones((2, SPEC.n_features - 1), np.float32)}, "do not fit the sources"),
        ({"sources": np.array(["{not json"])}, "invalid source entry"),
        ({"sources": np.array(['{"recording": "a"}'])}, "invalid source entry"),
        ({"sources": np.array([json.dumps({**SOURCE, "windows": -2})])}, "-2 windows"),
        ({"band_bins": None}, "missing band_bins"),
    ],
)
def test_load_refuses_inconsistent_files(
    tmp_path: Path, changes: dict[str, npt.ArrayLike], message: str
) -> None:
    path = saved(tmp_path, **changes)
    with pytest.raises(DataError, match=message) as info:
        FeatureDataset.load(path)
    assert str(path) in str(info.value)


def test_load_refuses_damaged_and_foreign_files(tmp_path: Path) -> None:
    good = saved(tmp_path)
    FeatureDataset.load(good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:300])
    noise = tmp_path / "noise.npz"
    noise.write_bytes(bytes(range(256)) * 4)
    pickled = saved(tmp_path, features=np.array([{"not": "numbers"}], dtype=object))
    for path in (cut, noise, pickled, tmp_path / "missing.npz"):
        with pytest.raises(DataError, match="cannot read as a feature dataset") as info:
            FeatureDataset.load(path)
        assert str(path) in str(info.value)


def test_load_says_what_is_wrong_with_a_file_that_is_no_dataset(tmp_path: Path) -> None:
    array = tmp_path / "features.npy"
    np.save(array, np.zeros((3, SPEC.n_features), np.float32))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    (tmp_path / "dir.npz").mkdir()
    for path, problem in (
        (array, "not an .npz archive (datasets are written by `vibewatch dataset import`)"),
        (empty, "empty dataset file (0 bytes)"),
        (tmp_path / "dir.npz", "is a directory, not a file"),
        (tmp_path / "missing.npz", "no such file"),
    ):
        with pytest.raises(DataError) as info:
            FeatureDataset.load(path)
        assert str(info.value) == f"{path}: cannot read as a feature dataset: {problem}"


def test_save_failure_names_the_file(tmp_path: Path) -> None:
    dataset = FeatureDataset(np.zeros((0, SPEC.n_features), np.float32), SPEC, ())
    target = tmp_path / "no-such-dir" / "out.npz"
    with pytest.raises(DataError, match=r"cannot write dataset .*out\.npz"):
        dataset.save(target)


# --- the command -----------------------------------------------------------------------


def test_cli_import_prints_a_table_and_writes_the_dataset(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    npy, wav = files
    out = tmp_path / "out.npz"
    result = runner.invoke(
        dataset_app,
        ["import", f"{npy}@*", str(wav), "--sample-rate", str(RATE), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["recording", "channel", "sample", "rate", "windows"]
    hop = SPEC.window // 8  # the default
    npy_windows, wav_windows = n_windows(NPY_SAMPLES, hop), n_windows(WAV_SAMPLES, hop)
    assert lines[1].split() == [f"{npy}@*", "0", str(RATE), "Hz", str(npy_windows)]
    assert lines[3].split() == [str(wav), "0", str(RATE), "Hz", str(wav_windows)]
    assert SPEC.spec_id in lines[-1]
    assert len(FeatureDataset.load(out).features) == 2 * npy_windows + wav_windows


def test_cli_import_json(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, wav = files
    out = tmp_path / "out.npz"
    result = runner.invoke(
        dataset_app,
        ["import", f"{wav}:0-2", "--out", str(out), "--hop", "100", "--normalise", "rms", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spec"] == SPEC.spec_id
    assert summary["windows"] == n_windows(2 * RATE, 100)
    assert summary["sources"] == [
        {
            "recording": f"{wav}:0-2",
            "channel": "0",
            "sample_rate_hz": RATE,
            "windows": summary["windows"],
            "hop": 100,
            "normalise": "rms",
        }
    ]
    assert summary["out"] == str(out)


def test_cli_input_error_exits_2_without_traceback(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    npy, _ = files
    out = tmp_path / "out.npz"
    result = runner.invoke(dataset_app, ["import", f"{npy}@*", "--out", str(out)])
    assert result.exit_code == 2
    assert "pass --sample-rate" in result.stderr
    assert str(npy) in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not out.exists()


def test_cli_write_error_exits_1(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, wav = files
    out = tmp_path / "missing" / "out.npz"
    result = runner.invoke(dataset_app, ["import", str(wav), "--out", str(out)])
    assert result.exit_code == 1
    assert "cannot write dataset" in result.stderr


def test_cli_help_explains_the_recording_argument() -> None:
    result = runner.invoke(dataset_app, ["import", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "PATH[@CHANNEL][:START_S-END_S]" in result.stdout
    assert "glob" in result.stdout
