"""``vibewatch demo``: the command line of the story in :mod:`vibewatch.demo.story`."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import threading
from typing import TYPE_CHECKING, Annotated, Final

import typer

from vibewatch.cliutil import ConfigOption, JsonOption, ProgressLine, fail, load
from vibewatch.errors import VibewatchError
from vibewatch.influx.query import parse_base_url
from vibewatch.logs import setup_logging

if TYPE_CHECKING:
    from vibewatch.config import Config

#: Environment variables that point the demo at running servers instead of local ones.
SERVER_VARIABLES: Final = ("VIBEWATCH_MQTT_HOST", "VIBEWATCH_MQTT_PORT", "VIBEWATCH_INFLUX_URL")


def _unreachable(config: Config) -> list[str]:
    """The configured servers that do not accept a connection, with the cause."""
    influx = parse_base_url(config.influx.url)
    out = []
    for what, host, port in (
        ("the MQTT broker", config.mqtt.host, config.mqtt.port),
        ("InfluxDB", influx.host, influx.port),
    ):
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            out.append(f"{what} at {host}:{port} ({exc.strerror or exc})")
    return out


def demo_command(
    devices: Annotated[int, typer.Option("--devices", help="Devices in the fleet.")] = 50,
    faulty: Annotated[
        int,
        typer.Option(
            "--faulty",
            help="Devices that develop a bearing fault (outer race, inner race, ball, then again).",
        ),
    ] = 3,
    duration: Annotated[
        float, typer.Option("--duration", help="Simulated seconds the fleet runs.")
    ] = 300.0,
    speedup: Annotated[
        float, typer.Option("--speedup", help="Simulated seconds per real second.")
    ] = 10.0,
    onset: Annotated[
        float, typer.Option("--onset", help="Simulated second at which the faults appear.")
    ] = 60.0,
    growth: Annotated[
        float,
        typer.Option("--growth", help="Simulated seconds over which the faults grow to full."),
    ] = 120.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the machines and of the faulty devices.")
    ] = 0,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Start Mosquitto and InfluxDB of the demo's own even when the configuration "
            "names servers.",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the whole system on embedded defaults: the broker, the database, `vibewatch
    serve` and a simulated fleet in which some devices develop bearing faults; then a
    new version of the model rolled out to the fleet, canary first; the alerts of `serve`
    go to a webhook receiver of the demo's own as signed notifications. Then say which
    faults the back end detected, when, which healthy devices raised false alarms,
    whether the rollout converged, and how many webhooks arrived, verified, with which
    devices' alerts.

    Mosquitto and InfluxDB are started from the system with temporary data on free
    loopback ports, unless a configuration file (--config) or `VIBEWATCH_MQTT_HOST`,
    `VIBEWATCH_MQTT_PORT` or `VIBEWATCH_INFLUX_URL` names running ones (then the demo's
    devices, `demo-0001` ..., write into the configured database). Progress goes to
    standard error; the report to standard output (one JSON object with --json). Nothing
    is left running. Exit status 0 when every fault was detected and its alert arrived
    verified, there was no false alarm, no reading was lost, the rollout converged and
    every webhook verified; 1 otherwise.
    """
    from vibewatch.demo.story import DemoPlan, run_demo  # imported here: keeps --help fast

    plan = DemoPlan(
        devices=devices,
        faulty=faulty,
        duration_s=duration,
        speedup=speedup,
        onset_s=onset,
        growth_s=growth,
        seed=seed,
    )
    problems = plan.problems()
    if problems:
        fail("; ".join(problems), 2)
    cfg = load(config)
    setup_logging("warning", cfg.log.format)  # the demo's own lines tell the story
    configured = not local and (
        config is not None or any(name in os.environ for name in SERVER_VARIABLES)
    )
    if configured:
        down = _unreachable(cfg)
        if down:
            fail(
                "the configuration names servers that do not answer: "
                + "; ".join(down)
                + " (start them, or run the demo on servers of its own with --local)",
                1,
            )
    line = ProgressLine()
    stop = threading.Event()
    handlers = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        report = run_demo(
            plan,
            config_path=config,
            servers={} if configured else None,
            say=line.say,
            on_progress=lambda progress: line.show(progress.line()),
            stop=stop,
        )
    except (VibewatchError, OSError) as exc:
        line.end()
        fail(str(exc), 1)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    line.end()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
    else:
        for text in report.lines():
            typer.echo(text)
    if not report.ok:
        raise typer.Exit(1)
