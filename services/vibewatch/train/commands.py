"""``vibewatch train`` and ``vibewatch evaluate``.

Exit codes: 0 success, 1 a failure (a package or model card cannot be written, the state
database fails), 2 bad input (options, recordings, datasets, keys, packages, too little
data).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vibewatch.cliutil import (
    ConfigOption,
    JsonOption,
    PublicOption,
    check_key_for,
    exits,
    fail,
    load,
    load_signing_key,
    package_dir,
    public_key_path,
)
from vibewatch.errors import PackageError
from vibewatch.train.cli import HopOption, NormaliseChoice, NormaliseOption

if TYPE_CHECKING:
    from vibewatch.config import Config
    from vibewatch.edge import FeatureSpec
    from vibewatch.models.registry import Registry
    from vibewatch.train.detectors import Progress
    from vibewatch.train.job import TrainingData

_REC_HELP = (
    "PATH[@CHANNEL][:START_S-END_S]: PATH is the longest prefix naming an existing file, "
    "CHANNEL may be a glob (@*_DE_time), the range is in seconds. Repeat the flag for several."
)
_RATE_HELP = (
    "Sample rate in Hz of recordings that carry none (NPY, .mat without fs, CSV without a "
    "time column)"
)
TrainSampleRateOption = Annotated[
    int | None,
    typer.Option(
        "--sample-rate",
        min=1,
        help=f"{_RATE_HELP}. With --start/--end, the rate of the default feature spec to "
        "train on when there is no champion model and no --spec.",
        show_default=False,
    ),
]
EvaluateSampleRateOption = Annotated[
    int | None,
    typer.Option(
        "--sample-rate",
        min=1,
        help=f"{_RATE_HELP}; it must be the model's.",
        show_default=False,
    ),
]


FaultyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--faulty", metavar="REC", help=f"Faulty recordings, {_REC_HELP}", show_default=False
    ),
]


def _normalise(choice: NormaliseChoice | None) -> Any:
    return None if choice is None else choice.value


@contextmanager
def _phases(enabled: bool) -> Iterator[Any]:
    """Progress bars on stderr, one per phase; the context gives the ``phases`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bars

    with Bars(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    ) as bars:

        def phase(name: str) -> Progress:
            task = bars.add_task(name, total=None)

            def update(done: int, total: int) -> None:
                bars.update(task, completed=done, total=total)

            return update

        yield phase


def _healthy_data(
    config: Config,
    *,
    recordings: list[str],
    dataset: Path | None,
    start: datetime | None,
    end: datetime | None,
    devices: list[str],
    faulty_devices: list[str],
    spec_id: str | None,
    registry: Registry | None,
    model_id: str,
    sample_rate: int | None,
    hop: int | None,
    normalise: NormaliseChoice | None,
    generator: int | None,
    seed: int,
    phases: Any,
) -> TrainingData:
    from vibewatch.train import sources

    chosen = [
        bool(recordings),
        dataset is not None,
        start is not None or end is not None,
        generator is not None,
    ]
    if sum(chosen) != 1:
        fail(
            "give exactly one data source: --recordings, --dataset, --start/--end or --generator",
            2,
        )
    if spec_id is not None and start is None and end is None:
        fail("--spec chooses the vectors read from InfluxDB: it goes with --start/--end", 2)
    if faulty_devices and start is None and end is None:
        fail("--faulty-device reads anomalies from InfluxDB: it goes with --start/--end", 2)
    if generator is not None:
        from vibewatch.train.factory import generator_data

        return generator_data(seed=seed, windows=generator, progress=phases("generate"))
    if recordings:
        tick = phases("read")
        count = iter(range(1, len(recordings) + 1))
        return sources.from_recordings(
            recordings,
            sample_rate_hz=sample_rate,
            hop=hop,
            normalise=_normalise(normalise),
            progress=lambda _ref: tick(next(count), len(recordings)),
        )
    if dataset is not None:
        return sources.from_dataset(dataset)
    if start is None or end is None:
        fail("InfluxDB training needs both --start and --end", 2)
    # Times without an offset are UTC, as --start's help says.
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    assert registry is not None  # opened for InfluxDB training: the champion names the spec
    spec = sources.influx_spec_or_published(
        config,
        spec_id,
        champion=sources.champion_spec(registry, model_id),
        known=sources.registered_specs(registry) if spec_id is not None else (),
        sample_rate_hz=sample_rate,
        start=start,
        end=end,
        devices=devices,
    )
    return sources.from_influx(
        config,
        spec,
        start=start,
        end=end,
        devices=devices,
        faulty_devices=faulty_devices,
        progress=phases("query"),
    )


def _spec_text(spec: FeatureSpec) -> str:
    return f"{spec.spec_id} ({spec.sample_rate_hz} Hz, {spec.window}-sample windows)"


def train_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Directory for the package (OUT/package) and its model card.",
            show_default=False,
        ),
    ],
    recordings: Annotated[
        list[str] | None,
        typer.Option(
            "--recordings",
            metavar="REC",
            help=f"Healthy recordings, {_REC_HELP}",
            show_default=False,
        ),
    ] = None,
    faulty: FaultyOption = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Healthy feature vectors from `vibewatch dataset import`.",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            "--start",
            help="InfluxDB: start of the time range (UTC unless an offset is given).",
            show_default=False,
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--end", help="InfluxDB: end of the time range.", show_default=False),
    ] = None,
    devices: Annotated[
        list[str] | None,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="InfluxDB: a device id or glob; repeat the flag for several "
            "\\[default: every device].",
            show_default=False,
        ),
    ] = None,
    faulty_devices: Annotated[
        list[str] | None,
        typer.Option(
            "--faulty-device",
            metavar="DEVICE",
            help="InfluxDB: a device id or glob whose feature vectors inside its anomaly "
            "events are a faulty set for the evaluation and the gate (the fleet's own "
            "faults); repeat the flag for several.",
            show_default=False,
        ),
    ] = None,
    spec_id: Annotated[
        str | None,
        typer.Option(
            "--spec",
            metavar="SPEC_ID",
            help="InfluxDB: the feature-spec id of the vectors to train on: the default spec "
            "of a sample rate or a registered model's \\[default: the champion model's spec; "
            "without a champion, the default spec at --sample-rate].",
            show_default=False,
        ),
    ] = None,
    generator: Annotated[
        int | None,
        typer.Option(
            "--generator",
            min=100,
            metavar="WINDOWS",
            help="Train on WINDOWS healthy windows of the vibration generator over its "
            "range of speeds and loads, and evaluate on each fault kind at severity 0.5 "
            "(how the factory model is made).",
            show_default=False,
        ),
    ] = None,
    sample_rate: TrainSampleRateOption = None,
    hop: HopOption = None,
    normalise: NormaliseOption = None,
    model_id: Annotated[str, typer.Option("--model-id", help="Id of the model.")] = "vibewatch-ae",
    hidden: Annotated[
        str, typer.Option("--hidden", help="Hidden layer sizes down to the bottleneck.")
    ] = "32,8",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most training epochs.")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random choice.")] = 0,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="File the package in the registry and run the quality gate.",
        ),
    ] = True,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            min=1,
            help="Version of an unregistered package \\[default: the registry's next].",
            show_default=False,
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="Ed25519 private key \\[default: train.signing_key; `vibewatch keys generate` "
            "makes one].",
            show_default=False,
        ),
    ] = None,
    flash_bytes: Annotated[
        int, typer.Option("--device-flash", min=1, help="Bytes of the devices' model slot.")
    ] = 65536,
    ram_bytes: Annotated[
        int, typer.Option("--device-ram", min=1, help="Engine RAM of the devices, bytes.")
    ] = 8192,
    device_rate: Annotated[
        int | None,
        typer.Option(
            "--device-sample-rate",
            min=1,
            help="The devices' sample rate \\[default: the training data's].",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train, export, evaluate and sign an int8 model; register it behind the quality gate.

    The data is healthy vibration: recordings (--recordings), a dataset file (--dataset),
    the feature vectors devices published to InfluxDB (--start/--end, windows inside
    anomaly events left out; of the champion model's feature spec unless --spec says
    otherwise), or the vibration generator (--generator). --faulty recordings serve only
    for evaluation and the gate.

    The package lands in OUT/package and the model card (MODEL_CARD.md and plots) in OUT.
    With --register (the default) it is filed in the registry as a candidate and promoted
    only if the gate passes; the reasons are printed either way.
    """
    from vibewatch.models.registry import Registry
    from vibewatch.train.card import write_card
    from vibewatch.train.factory import FACTORY_VERSION
    from vibewatch.train.gate import DeviceLimits
    from vibewatch.train.job import PACKAGE_DIR, TrainingData, TrainSettings, train
    from vibewatch.train.job import register as file_in_registry
    from vibewatch.train.sources import faulty_recordings

    cfg = load(config)
    if register and version is not None:
        fail("--version is for --no-register packages; the registry numbers its own", 2)
    try:
        layers = tuple(int(h) for h in hidden.split(","))
    except ValueError:
        fail(f"--hidden {hidden!r} is not a comma-separated list of sizes", 2)
    key = load_signing_key(signing_key or cfg.train.signing_key, given=signing_key is not None)
    # Checked now, not after training: writing the package would fail at the end.
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a directory", 2)
    target = out / PACKAGE_DIR
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        fail(f"{target} already exists and is not empty: give another --out", 2)
    registry: Registry | None = None
    # InfluxDB training asks the registry for the champion's feature spec, also unregistered.
    if register or start is not None or end is not None:
        with exits():
            registry = Registry(cfg.train.registry_dir, cfg.state_db, key.public_key())
    try:
        with exits(), _phases(not as_json and sys.stderr.isatty()) as phases:
            data = _healthy_data(
                cfg,
                recordings=recordings or [],
                dataset=dataset,
                start=start,
                end=end,
                devices=devices or [],
                faulty_devices=faulty_devices or [],
                spec_id=spec_id,
                registry=registry,
                model_id=model_id,
                sample_rate=sample_rate,
                hop=hop,
                normalise=normalise,
                generator=generator,
                seed=seed,
                phases=phases,
            )
            faults = dict(data.faulty)
            faults |= faulty_recordings(
                faulty or [],
                data.spec,
                sample_rate_hz=sample_rate,
                hop=hop,
                normalise=_normalise(normalise),
            )
            settings = TrainSettings(
                model_id=model_id,
                hidden=layers,
                epochs=epochs,
                random_state=seed,
                false_alarm_rate=cfg.train.false_alarm_rate,
                min_healthy_windows=cfg.train.min_healthy_windows,
                auc_margin=cfg.train.auc_margin,
                limits=DeviceLimits(
                    flash_bytes=flash_bytes,
                    ram_bytes=ram_bytes,
                    sample_rate_hz=device_rate or data.spec.sample_rate_hz,
                ),
            )
            # Version 1 is the factory model the devices ship with: retrained ones go above.
            number = (
                max(registry.next_version(model_id), FACTORY_VERSION + 1)
                if registry is not None and register
                else (version or FACTORY_VERSION)
            )
            trained = train(
                TrainingData(data.healthy, data.spec, data.source, faults),
                settings,
                version=number,
                private_key=key,
                out_dir=out,
                phases=phases,
            )
        with exits():
            decision = (
                file_in_registry(trained, registry, settings)
                if registry is not None and register
                else None
            )
            card = write_card(
                out,
                trained.package.manifest,
                trained.int8,
                trained.detector.history_,
                decision=decision[1].reasons if decision else (),
            )
    finally:
        if registry is not None:
            registry.close()
    m = trained.metrics
    summary: dict[str, Any] = {
        "model_id": model_id,
        "version": number,
        "package": str(trained.package.path),
        "card": str(card),
        "spec": data.spec.spec_id,
        "threshold": trained.engine.threshold,
        "far": m["far"],
        "auc": m["auc"],
        "auc_float": m["auc_float"],
        "detected": m["detected"],
        "status": decision[0].status if decision else "unregistered",
        "gate": list(decision[1].reasons) if decision else [],
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{model_id} v{number}: {trained.package.path}")
    typer.echo(f"  feature spec  {_spec_text(data.spec)}")
    typer.echo(f"  threshold     {trained.engine.threshold:.6g}")
    typer.echo(f"  false alarms  {m['far']:.2%} of {m['held_out_healthy_windows']} held-out")
    for name, value in m["auc"].items():
        typer.echo(f"  {name}: AUC {value:.4f}, detected {m['detected'][name]:.1%}")
    typer.echo(f"  model card    {card}")
    if decision:
        entry, verdict = decision
        typer.echo(f"{'promoted' if verdict.promote else 'not promoted'} ({entry.status}):")
        for reason in verdict.reasons:
            typer.echo(f"  - {reason}")


def evaluate_command(
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            help="Model package directory, or the OUT directory of `vibewatch train` "
            "that holds it.",
            show_default=False,
        ),
    ],
    healthy: Annotated[
        list[str],
        typer.Option(
            "--healthy", metavar="REC", help=f"Healthy recordings, {_REC_HELP}", show_default=False
        ),
    ],
    faulty: FaultyOption = None,
    sample_rate: EvaluateSampleRateOption = None,
    hop: HopOption = None,
    normalise: Annotated[
        NormaliseChoice | None,
        typer.Option(
            "--normalise",
            help="rms: divide each window by its own RMS \\[default: as the model was trained].",
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            metavar="K",
            min=1,
            max=32,
            help="Windows at or above the threshold, of the last --n, that start an anomaly "
            "event \\[default: the firmware's, 3].",
            show_default=False,
        ),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            metavar="N",
            min=1,
            max=32,
            help="Windows the device looks back over \\[default: the firmware's, 5].",
            show_default=False,
        ),
    ] = None,
    m: Annotated[
        int | None,
        typer.Option(
            "--m",
            metavar="M",
            min=1,
            help="Consecutive quiet windows that end an anomaly event \\[default: the "
            "firmware's, 5].",
            show_default=False,
        ),
    ] = None,
    public: PublicOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score recordings with a package's int8 model through the C engine, as devices do.

    Prints the false-alarm rate on the healthy windows at the shipped threshold and, per
    faulty recording, the AUC against the healthy windows and the share of its windows
    detected. Then the anomaly events the firmware's device layer raises, running the
    model on each recording's windows back to back (K of N windows start one, M quiet
    windows end it): false events on the healthy recordings (and per hour), and per
    faulty recording its events and the seconds from its first window to the first
    event. The package's signature and hashes are checked first.
    """
    from vibewatch.edge import Model
    from vibewatch.edge.device import DeviceSettings
    from vibewatch.models.keys import load_public_key
    from vibewatch.models.package import verify_package
    from vibewatch.train import sources
    from vibewatch.train.events import RecordingEvents, recording_events
    from vibewatch.train.job import evaluate

    key_path = public_key_path(public, config)
    try:
        model = package_dir(model)
    except PackageError as exc:
        fail("; ".join(exc.problems), 2)
    check_key_for(model, key_path)
    # A package the user points at that fails verification is bad input, not a failure.
    with exits(PackageError):
        package = verify_package(model, load_public_key(key_path))
        engine = Model(package.vwm)
        trained_with = package.manifest.get("training_data", {}).get("recordings") or [{}]
        norm = _normalise(normalise) or trained_with[0].get("normalise")
        options: dict[str, Any] = {"sample_rate_hz": sample_rate, "hop": hop, "normalise": norm}
        good = sources.from_recordings(healthy, spec=engine.spec, **options).healthy
        bad = sources.faulty_recordings(faulty or [], engine.spec, **options)
        given = {"k": k, "n": n, "m": m}
        device = DeviceSettings(**{key: v for key, v in given.items() if v is not None})
        if device.k > device.n:
            fail(f"--k {device.k} is more than --n {device.n}: no anomaly could ever start", 2)

        def events_of(text: str) -> list[RecordingEvents]:
            return recording_events(
                package.vwm, text, sample_rate_hz=sample_rate, normalise=norm, settings=device
            )

        calm = [e for text in healthy for e in events_of(text)]
        sick = {text: events_of(text) for text in faulty or []}
    result = {"model": str(model), "normalise": norm, **evaluate(engine, good, bad)}
    seconds = sum(e.seconds for e in calm)
    false_events = sum(e.events for e in calm)
    result["events"] = {
        "k": device.k,
        "n": device.n,
        "m": device.m,
        "healthy": [e.as_json() for e in calm],
        "false_events": false_events,
        "healthy_seconds": seconds,
        "false_events_per_hour": false_events * 3600 / seconds if seconds else None,
    }
    for row in result["files"]:
        found = sick[row["path"]]
        firsts = [e.starts_s[0] for e in found if e.starts_s]
        row["events"] = sum(e.events for e in found)
        row["first_event_s"] = min(firsts) if firsts else None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"{engine.model_id} v{engine.version}, threshold {engine.threshold:.6g}: "
        f"false alarms {result['far']:.2%} of {result['healthy_windows']} healthy windows"
    )
    for row in result["files"]:
        typer.echo(
            f"  {row['path']}: AUC {row['auc']:.4f}, detected {row['detected']:.1%} "
            f"of {row['windows']} windows"
        )
    typer.echo(
        f"anomaly events ({device.k} of {device.n} windows start one, {device.m} quiet end "
        f"it): {false_events} "
        f"on {seconds:.1f} s of healthy recording"
    )
    for row in result["files"]:
        first = row["first_event_s"]
        when = f", the first {first:.3f} s after its start" if first is not None else ""
        typer.echo(f"  {row['path']}: {row['events']} events{when}")
