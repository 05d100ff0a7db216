"""Where training data comes from: recordings, a saved dataset, or InfluxDB.

Each source gives the healthy rows in time order, their feature spec and a description
that goes into the manifest's ``training_data``; faulty recordings (for evaluation and the
quality gate) are read with the same spec and options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vibewatch.config import Config
from vibewatch.edge import FeatureSpec
from vibewatch.train.dataset import FeatureDataset, import_recordings
from vibewatch.train.influx_source import load_training_features
from vibewatch.train.job import TrainingData
from vibewatch.train.recordings import Normalise

Tick = Callable[[object], None]


def _recording_source(dataset: FeatureDataset, kind: str) -> dict[str, object]:
    return {"source": kind, "recordings": [asdict(s) for s in dataset.sources]}


def from_recordings(
    recordings: Sequence[str],
    *,
    spec: FeatureSpec | None = None,
    sample_rate_hz: int | None = None,
    hop: int | None = None,
    normalise: Normalise | None = None,
    progress: Tick | None = None,
) -> TrainingData:
    """Healthy rows from recording arguments (``PATH[@CHANNEL][:START_S-END_S]``)."""
    dataset = import_recordings(
        recordings,
        spec,
        sample_rate_hz=sample_rate_hz,
        hop=hop,
        normalise=normalise,
        progress=progress,
    )
    return TrainingData(dataset.features, dataset.spec, _recording_source(dataset, "recordings"))


def from_dataset(path: Path) -> TrainingData:
    """Healthy rows from a dataset file written by ``vibewatch dataset import``."""
    dataset = FeatureDataset.load(path)
    return TrainingData(
        dataset.features,
        dataset.spec,
        {**_recording_source(dataset, "dataset"), "dataset": str(path)},
    )


def from_influx(
    config: Config,
    spec: FeatureSpec,
    *,
    start: datetime,
    end: datetime,
    devices: Sequence[str] = (),
    min_windows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Healthy rows of ``spec`` published by devices, outside anomaly intervals."""
    loaded = load_training_features(
        config,
        spec_id=spec.spec_id,
        start=start,
        end=end,
        devices=list(devices) or None,
        min_windows=min_windows,
        progress=progress,
    )
    source = {
        "source": "influxdb",
        "start": loaded.start.isoformat(),
        "end": loaded.end.isoformat(),
        "devices": sorted(set(loaded.devices)),
        "excluded_in_anomalies": loaded.excluded_count,
    }
    return TrainingData(loaded.features, spec, source)


def faulty_recordings(
    recordings: Sequence[str],
    spec: FeatureSpec,
    *,
    sample_rate_hz: int | None = None,
    hop: int | None = None,
    normalise: Normalise | None = None,
    progress: Tick | None = None,
) -> dict[str, npt.NDArray[np.float32]]:
    """Feature rows of each faulty recording argument, keyed by the argument as given."""
    found = {}
    for text in recordings:
        dataset = import_recordings(
            [text], spec, sample_rate_hz=sample_rate_hz, hop=hop, normalise=normalise
        )
        found[text] = dataset.features
        if progress is not None:
            progress(text)
    return found
