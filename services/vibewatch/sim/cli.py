"""``vibewatch sim``: a simulated fleet on the configured broker."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from vibewatch.cliutil import ConfigOption, JsonOption, ProgressLine, exits, fail, load
from vibewatch.errors import ConfigError, EdgeError, KeyFileError, MqttError
from vibewatch.logs import setup_logging

log = logging.getLogger("vibewatch.sim")


def sim_command(
    devices: Annotated[
        int | None,
        typer.Option(
            "--devices",
            help="Devices in the fleet [default: the scenario's, or 50].",
            show_default=False,
        ),
    ] = None,
    faults: Annotated[
        list[str] | None,
        typer.Option(
            "--faults",
            metavar="FAULT",
            help="A developing fault: KIND:COUNT (on COUNT devices the seed picks) or "
            "KIND@ID+ID, then ,onset=S ,growth=S ,severity=X (simulated seconds; severity "
            "in (0, 1]); e.g. outer_race:3,onset=60,growth=600. Repeat for more.",
            show_default=False,
        ),
    ] = None,
    scenario_file: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="Scenario file (TOML: [fleet], [[fault]], [link], [power]; see "
            "docs/simulator.md); the other options override it.",
            show_default=False,
        ),
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            "--speedup", help="Simulated seconds per real second [default: 1].", show_default=False
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            help="Simulated seconds to run; 0 runs until Ctrl-C [default: the scenario's, 0].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed of machines, faults and link [default: 0].", show_default=False
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="The devices' factory model (.vwm) [default: the "
            "factory model shipped with vibewatch].",
            show_default=False,
        ),
    ] = None,
    public: Annotated[
        Path | None,
        typer.Option(
            "--public",
            help="The fleet's Ed25519 public key (PEM): OTA jobs must be signed with its "
            "private half [default: train.verify_key; when that file does not exist, a key "
            "of the run's own, and no OTA job verifies].",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a fleet of simulated devices on the configured broker (the [mqtt] host, port,
    credentials, TLS and topic prefix; each device is its own client).

    Each device runs the firmware's C device layer on a machine of its own; faults develop
    as the scenario says. A progress line goes to standard error every second (every 10 s
    when it is not a terminal); at the end (the scenario's duration, or Ctrl-C) a summary
    goes to standard output, one JSON object with --json.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vibewatch.edge.engine import Model
    from vibewatch.edge.m4 import FACTORY_MODEL
    from vibewatch.models.keys import load_public_key
    from vibewatch.sim.run import Simulation
    from vibewatch.sim.scenario import Scenario, load_scenario, parse_fault

    cfg = load(config)
    setup_logging(cfg.log.level, cfg.log.format)
    with exits(ConfigError):
        base = load_scenario(scenario_file) if scenario_file is not None else Scenario()
        overrides: dict[str, Any] = {
            name: value
            for name, value in (
                ("devices", devices),
                ("speedup", speedup),
                ("duration_s", duration),
                ("seed", seed),
            )
            if value is not None
        }
        extra = tuple(parse_fault(text) for text in faults or ())
        scenario = dataclasses.replace(base, **overrides, faults=base.faults + extra)
    blob_path = model or FACTORY_MODEL
    try:
        blob = blob_path.read_bytes()
        Model(blob)  # the checks the devices make, before a thousand of them make them
    except OSError as exc:
        fail(f"cannot read the model {blob_path}: {exc.strerror}", 2)
    except EdgeError as exc:
        fail(f"{blob_path} is not a model the devices can run: {exc}", 2)
    key_path = public if public is not None else cfg.train.verify_key
    if public is None and not key_path.exists():
        log.warning(
            "no fleet key at %s: the devices check OTA jobs with a key of this run", key_path
        )
        key = Ed25519PrivateKey.generate().public_key()
    else:
        with exits(KeyFileError):
            key = load_public_key(key_path)
    with exits(ConfigError):
        simulation = Simulation.from_config(scenario, blob, key, cfg.mqtt)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        simulation.start()
    except (MqttError, TimeoutError, OSError) as exc:
        simulation.close()
        fail(f"cannot connect the fleet to {cfg.mqtt.host}:{cfg.mqtt.port}: {exc}", 1)
    line = ProgressLine()
    try:
        simulation.run(stop.is_set, lambda progress: line.show(progress.line()))
    finally:
        simulation.close()
    summary = simulation.summary()
    line.end()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
        return
    typer.echo(
        f"{summary.devices} devices, {summary.simulated_s:.0f} simulated s in "
        f"{summary.seconds:.0f} s: {summary.windows} windows ({summary.windows_per_s:.0f}/s, "
        f"{'real time' if summary.realtime else 'behind real time'}), "
        f"{summary.published} messages ({summary.readings_published} readings acknowledged)"
    )
    if summary.disconnects or summary.power_losses:
        typer.echo(
            f"  broken connections {summary.disconnects}, power losses {summary.power_losses} "
            f"({summary.install_power_losses} during a model install)"
        )
    for device_id, kinds in summary.faults.items():
        started = summary.events.get(device_id, 0)
        typer.echo(f"  {device_id}: {', '.join(kinds)}; anomaly events: {started}")
    false_alarms = sorted(set(summary.events) - set(summary.faults))
    typer.echo(f"  anomaly events on healthy devices: {', '.join(false_alarms) or 'none'}")
