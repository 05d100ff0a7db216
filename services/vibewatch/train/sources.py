"""Where training data comes from: recordings, a saved dataset, or InfluxDB.

Each source gives the healthy rows in time order, their feature spec and a description
that goes into the manifest's ``training_data``; faulty recordings (for evaluation and the
quality gate) are read with the same spec and options.

The description names files by what stays true of them wherever the package goes: a
recording by its file name with the channel and range given
(``normal_0_97.mat@X097_DE_time:0-3.05``), its size in bytes and the SHA-256 of the file;
a dataset file by its name, size and SHA-256 (the recordings it was made from by name
only, since they were read when the dataset was made, not now).

For InfluxDB the feature spec is chosen by :func:`influx_spec`: vectors of one spec are
trained on, by default the spec of the champion model, which is what the fleet computes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vibewatch.config import Config
from vibewatch.edge import FeatureSpec
from vibewatch.errors import DataError, EdgeError, RegistryError
from vibewatch.models.registry import Registry
from vibewatch.train.dataset import FeatureDataset, Source, import_recordings
from vibewatch.train.influx_source import load_training_features, published_specs, specs_text
from vibewatch.train.job import TrainingData
from vibewatch.train.recordings import Normalise, RecordingRef, recording_name

Tick = Callable[[object], None]
_RATE_IN_ID = re.compile(r"fs-([0-9]+)-")


def file_record(path: Path) -> dict[str, Any]:
    """``{"file": name, "bytes": size, "sha256": hex}`` of a file, read now.

    Raises:
        DataError: The file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    return {"file": path.name, "bytes": size, "sha256": digest.hexdigest()}


def _recording_entry(source: Source) -> dict[str, Any]:
    return {
        "recording": recording_name(source.recording),
        "channel": source.channel,
        "sample_rate_hz": source.sample_rate_hz,
        "windows": source.windows,
        "hop": source.hop,
        "normalise": source.normalise,
    }


def recording_entries(sources: Iterable[Source], *, files: bool) -> list[dict[str, Any]]:
    """The manifest's entries of recordings, one per channel read.

    Args:
        sources: The dataset's sources.
        files: Also record each file's size and SHA-256, read now (the files must be the
            ones the features were computed from).
    """
    records: dict[Path, dict[str, Any]] = {}
    entries = []
    for source in sources:
        entry = _recording_entry(source)
        if files:
            path = RecordingRef.parse(source.recording).path
            if path not in records:
                records[path] = file_record(path)
            entry |= {k: records[path][k] for k in ("bytes", "sha256")}
        entries.append(entry)
    return entries


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
    source = {"source": "recordings", "recordings": recording_entries(dataset.sources, files=True)}
    return TrainingData(dataset.features, dataset.spec, source)


def from_dataset(path: Path) -> TrainingData:
    """Healthy rows from a dataset file written by ``vibewatch dataset import``."""
    dataset = FeatureDataset.load(path)
    source = {
        "source": "dataset",
        "dataset": file_record(path),
        "recordings": recording_entries(dataset.sources, files=False),
    }
    return TrainingData(dataset.features, dataset.spec, source)


def manifest_spec(manifest: dict[str, Any]) -> FeatureSpec:
    """The feature spec a verified package's manifest describes."""
    fields = manifest["feature_spec"]
    return FeatureSpec(fields["sample_rate_hz"], fields["window"], tuple(fields["band_bins"]))


def champion_spec(registry: Registry, model_id: str) -> FeatureSpec | None:
    """The feature spec of the champion of ``model_id``; None when it has no champion.

    Raises:
        RegistryError: The champion's package fails verification.
    """
    entry = registry.champion(model_id)
    if entry is None:
        return None
    return manifest_spec(registry.load(entry.model_id, entry.version).manifest)


def registered_specs(registry: Registry) -> list[FeatureSpec]:
    """The feature specs of every registered package that verifies, each once."""
    found: dict[str, FeatureSpec] = {}
    for entry in registry.entries():
        try:
            spec = manifest_spec(registry.load(entry.model_id, entry.version).manifest)
        except RegistryError:
            continue  # a damaged package is reported by `vibewatch models verify`
        found.setdefault(spec.spec_id, spec)
    return list(found.values())


def influx_spec(
    spec_id: str | None,
    *,
    champion: FeatureSpec | None,
    known: Iterable[FeatureSpec] = (),
    sample_rate_hz: int | None = None,
) -> FeatureSpec:
    """The feature spec whose vectors to train on from InfluxDB.

    A spec id names a spec without its band edges, so ``spec_id`` must be one whose edges
    are known here: the champion's, one of ``known`` (the registered models'), or the
    default spec at the sample rate the id names. Without ``spec_id``, the champion's
    spec; without a champion either, the default spec at ``sample_rate_hz``.

    Args:
        spec_id: The id asked for (``--spec``), or None.
        champion: The champion's spec, or None.
        known: Other specs whose band edges are known.
        sample_rate_hz: ``--sample-rate``, or None; if given it must be the spec's rate.

    Raises:
        DataError: The id is unknown, there is neither champion nor sample rate, or the
            sample rate is not the spec's; the message says which.
    """
    if spec_id is not None:
        candidates = [s for s in (champion, *known) if s is not None]
        rate = _RATE_IN_ID.match(spec_id)
        if rate is not None:
            # A rate without a default spec: the id can only be one of the others.
            with contextlib.suppress(EdgeError):
                candidates.append(FeatureSpec.default(int(rate[1])))
        spec = next((s for s in candidates if s.spec_id == spec_id), None)
        if spec is None:
            ids = ", ".join(sorted({s.spec_id for s in candidates})) or "none"
            raise DataError(
                f"feature spec {spec_id} is unknown: band edges are known for the default "
                f"spec at the sample rate of its id and for registered models' specs ({ids})"
            )
        what = f"feature spec {spec_id}"
    elif champion is not None:
        spec, what = champion, f"the champion's feature spec {champion.spec_id}"
    elif sample_rate_hz is None:
        raise DataError(
            "InfluxDB training needs --spec or --sample-rate: there is no champion model "
            "whose feature spec to use"
        )
    else:
        try:
            return FeatureSpec.default(sample_rate_hz)
        except EdgeError as exc:
            raise DataError(f"--sample-rate {sample_rate_hz}: {exc.detail}") from exc
    if sample_rate_hz is not None and sample_rate_hz != spec.sample_rate_hz:
        raise DataError(
            f"{what} is at {spec.sample_rate_hz} Hz, not the --sample-rate {sample_rate_hz} Hz; "
            "leave --sample-rate out, or choose the spec with --spec"
        )
    return spec


def influx_spec_or_published(
    config: Config,
    spec_id: str | None,
    *,
    champion: FeatureSpec | None,
    known: Iterable[FeatureSpec],
    sample_rate_hz: int | None,
    start: datetime,
    end: datetime,
    devices: Sequence[str] = (),
) -> FeatureSpec:
    """:func:`influx_spec`; an unknown ``spec_id``'s message adds the specs devices published.

    Raises:
        DataError: As :func:`influx_spec`.
        QueryError: InfluxDB could not be queried for the published specs.
    """
    try:
        return influx_spec(spec_id, champion=champion, known=known, sample_rate_hz=sample_rate_hz)
    except DataError as exc:
        if spec_id is None:
            raise
        counts = published_specs(config, start=start, end=end, devices=list(devices) or None)
        raise DataError(
            f"{exc}; specs with vectors from {start.isoformat()} to {end.isoformat()}: "
            f"{specs_text(counts)}"
        ) from exc


def from_influx(
    config: Config,
    spec: FeatureSpec,
    *,
    start: datetime,
    end: datetime,
    devices: Sequence[str] = (),
    faulty_devices: Sequence[str] = (),
    min_windows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Healthy rows of ``spec`` published by ``devices``, outside anomaly intervals; and,
    for each of ``faulty_devices`` (ids or globs) with any, the rows inside its anomaly
    intervals as a faulty set named ``<device> anomalies``.

    Raises:
        DataError: As :func:`load_training_features`; or ``faulty_devices`` were given
            and none of them has a vector inside an anomaly in the range.
        QueryError: InfluxDB could not be queried.
    """
    loaded = load_training_features(
        config,
        spec_id=spec.spec_id,
        start=start,
        end=end,
        devices=list(devices) or None,
        min_windows=min_windows,
        progress=progress,
    )
    faulty: dict[str, npt.NDArray[np.float32]] = {}
    if faulty_devices:
        events = load_training_features(
            config, spec_id=spec.spec_id, start=start, end=end, devices=faulty_devices,
            min_windows=0,
        )  # fmt: skip
        faulty = {f"{name} anomalies": rows for name, rows in events.anomalous.items()}
        if not faulty:
            raise DataError(
                f"no feature vectors of spec {spec.spec_id} inside an anomaly of "
                f"{', '.join(faulty_devices)} from {start.isoformat()} to {end.isoformat()}: "
                "nothing to evaluate the faults on"
            )
    source = {
        "source": "influxdb",
        "start": loaded.start.isoformat(),
        "end": loaded.end.isoformat(),
        "devices": sorted(set(loaded.devices)),
        "excluded_in_anomalies": loaded.excluded_count,
    }
    if faulty:
        source["faulty_devices"] = sorted(name.removesuffix(" anomalies") for name in faulty)
    return TrainingData(loaded.features, spec, source, faulty)


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
