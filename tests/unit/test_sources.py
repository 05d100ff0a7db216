"""vibewatch.train.sources: what the manifest records of training data, and the spec choice."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vibewatch.edge import FeatureSpec
from vibewatch.errors import DataError
from vibewatch.train import sources

RATE = 4096
DEFAULT = FeatureSpec.default(48_000)
OTHER = FeatureSpec.log_bands(48_000, 512, 16, 100.0, 20_000.0)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    folder = tmp_path / "some" / "where"
    folder.mkdir(parents=True)
    path = folder / "pump.npy"
    np.save(path, np.random.default_rng(0).standard_normal((RATE * 2, 2)))
    return path


def test_recordings_are_recorded_by_name_size_and_hash(recording: Path) -> None:
    data = sources.from_recordings(
        [f"{recording}@*:0.5-"], sample_rate_hz=RATE, hop=512, normalise="rms"
    )
    size, digest = recording.stat().st_size, _sha256(recording)
    windows = (RATE * 3 // 2 - FeatureSpec.default(RATE).window) // 512 + 1
    assert data.source == {
        "source": "recordings",
        "recordings": [
            {
                "recording": "pump.npy@*:0.5-",
                "channel": channel,
                "sample_rate_hz": RATE,
                "windows": windows,
                "hop": 512,
                "normalise": "rms",
                "bytes": size,
                "sha256": digest,
            }
            for channel in ("0", "1")
        ],
    }


def test_a_dataset_is_recorded_by_name_size_and_hash(recording: Path, tmp_path: Path) -> None:
    from vibewatch.train.dataset import import_recordings

    dataset = tmp_path / "healthy.npz"
    import_recordings([f"{recording}@0"], sample_rate_hz=RATE).save(dataset)
    recording.unlink()  # what a dataset was made from need not be around any more
    source = sources.from_dataset(dataset).source
    assert source["dataset"] == {
        "file": "healthy.npz",
        "bytes": dataset.stat().st_size,
        "sha256": _sha256(dataset),
    }
    assert [r["recording"] for r in source["recordings"]] == ["pump.npy@0"]
    assert "bytes" not in source["recordings"][0]
    assert str(tmp_path) not in repr(source)


def test_the_champion_spec_is_the_default() -> None:
    assert sources.influx_spec(None, champion=OTHER) == OTHER
    assert sources.influx_spec(None, champion=OTHER, sample_rate_hz=48_000) == OTHER
    assert sources.influx_spec(None, champion=None, sample_rate_hz=48_000) == DEFAULT


def test_a_spec_id_names_a_known_spec() -> None:
    assert sources.influx_spec(OTHER.spec_id, champion=None, known=[DEFAULT, OTHER]) == OTHER
    assert sources.influx_spec(OTHER.spec_id, champion=OTHER) == OTHER
    # The default spec of the rate in the id needs no registered model.
    assert sources.influx_spec(DEFAULT.spec_id, champion=OTHER) == DEFAULT
    eight = FeatureSpec.default(8000)
    assert sources.influx_spec(eight.spec_id, champion=None) == eight


@pytest.mark.parametrize(
    ("spec_id", "champion", "rate", "message"),
    [
        (
            "fs-48000-512-16-00000000",
            OTHER,
            None,
            f"feature spec fs-48000-512-16-00000000 is unknown: band edges are known for the "
            f"default spec at the sample rate of its id and for registered models' specs "
            f"({', '.join(sorted([DEFAULT.spec_id, OTHER.spec_id]))})",
        ),
        ("nonsense", None, None, "feature spec nonsense is unknown"),
        (None, None, None, "InfluxDB training needs --spec or --sample-rate"),
        (
            None,
            OTHER,
            8000,
            f"the champion's feature spec {OTHER.spec_id} is at 48000 Hz, not the "
            "--sample-rate 8000 Hz",
        ),
        (DEFAULT.spec_id, None, 8000, f"feature spec {DEFAULT.spec_id} is at 48000 Hz"),
    ],
    ids=["unknown-id", "not-an-id", "no-champion-no-rate", "champion-other-rate", "id-other-rate"],
)
def test_spec_choices_that_cannot_work_are_refused(
    spec_id: str | None, champion: FeatureSpec | None, rate: int | None, message: str
) -> None:
    with pytest.raises(DataError) as refused:
        sources.influx_spec(spec_id, champion=champion, sample_rate_hz=rate)
    assert message in str(refused.value)
