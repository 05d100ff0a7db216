"""``vibewatch demo``: the command line of the story in :mod:`vibewatch.demo.story`."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from vibewatch.cliutil import ConfigOption, JsonOption, ProgressLine, fail, load
from vibewatch.errors import VibewatchError
from vibewatch.influx.query import parse_base_url
from vibewatch.logs import setup_logging

if TYPE_CHECKING:
    from vibewatch.config import Config

#: The plan of ``--quick`` (:class:`~vibewatch.demo.story.DemoPlan` fields): the same
#: story with fewer devices over a shorter span.
QUICK: Final = {"devices": 12, "faulty": 3, "duration_s": 200.0, "onset_s": 50.0, "growth_s": 60.0}

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


def _keep_up(settings: Mapping[str, str], since_ms: int, stop: threading.Event) -> None:
    """Say how to reach the stack, with Grafana, and wait for Ctrl-C (or SIGTERM)."""
    exports = " ".join(
        f"{name}={shlex.quote(settings[name])}"
        for name in ("VIBEWATCH_INFLUX_URL", "VIBEWATCH_INFLUX_DATABASE", "VIBEWATCH_MQTT_PORT")
        if name in settings
    )
    hours = math.ceil((time.time() * 1000 - since_ms) / 3_600_000)
    say = functools.partial(typer.echo, err=True)
    say(
        "the stack stays up (--keep) until Ctrl-C; the fleet's points are in the last "
        f"{hours} h. To look at them:"
    )
    say(f"  export {exports}")
    say(f"  vibewatch dashboards check --since {hours}h   # every panel's query, against it")
    say("  vibewatch dashboards export grafana   # the dashboards for a Grafana of yours")
    say("  vibewatch dashboards push --url URL --token-file FILE   # or into a running Grafana")
    stop.wait()


def demo_command(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help=f"The same story smaller: {QUICK['devices']} devices, {QUICK['duration_s']:g} "
            "simulated seconds (the options below still override it).",
        ),
    ] = False,
    devices: Annotated[
        int | None,
        typer.Option("--devices", help="Devices in the fleet \\[default: 50].", show_default=False),
    ] = None,
    faulty: Annotated[
        int | None,
        typer.Option(
            "--faulty",
            help="Devices that develop a bearing fault (outer race, inner race, ball, then "
            "again) \\[default: 3].",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            help="Simulated seconds before the retraining \\[default: 300].",
            show_default=False,
        ),
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            "--speedup",
            help="Simulated seconds per real second \\[default: 20].",
            show_default=False,
        ),
    ] = None,
    onset: Annotated[
        float | None,
        typer.Option(
            "--onset",
            help="Simulated second at which the faults appear \\[default: 60].",
            show_default=False,
        ),
    ] = None,
    growth: Annotated[
        float | None,
        typer.Option(
            "--growth",
            help="Simulated seconds over which the faults grow to full \\[default: 120].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the machines and of the faulty devices.")
    ] = 0,
    report_dir: Annotated[
        Path,
        typer.Option(
            "--report",
            help="Directory of the HTML report and its plots (index.html, *.png); an earlier "
            "report there is replaced.",
        ),
    ] = Path("vibewatch-demo-report"),
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Keep the broker, InfluxDB and `vibewatch serve` up at the end, say how to "
            "point Grafana at them, and stop them at Ctrl-C.",
        ),
    ] = False,
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
    """Run the whole system on embedded defaults, as one story: the broker, the database,
    `vibewatch serve` and a simulated fleet; every device learns its baseline; some devices
    develop bearing faults, which are detected and alerted as signed webhooks to a receiver
    of the demo's own; `vibewatch train` makes a new model of the feature vectors the fleet
    published to InfluxDB, judged by the quality gate against the factory model on the
    fleet's own faults; the promoted model goes to the fleet, canary first, then waves.

    At the end: a summary, and an HTML report with plots (scores and alerts, the rollout,
    the fleet's model versions) whose path it prints. Mosquitto and InfluxDB are started
    from the system with temporary data on free loopback ports, unless a configuration
    file (--config) or `VIBEWATCH_MQTT_HOST`, `VIBEWATCH_MQTT_PORT` or
    `VIBEWATCH_INFLUX_URL` names running ones (then the demo's devices, `demo-0001` ...,
    write into the configured database). Progress goes to standard error; the summary to
    standard output (one JSON object with --json). Nothing is left running unless --keep.
    Exit status 0 when every fault was detected and its alert arrived verified, there was
    no false alarm, no reading was lost, the new model was promoted and converged on, and
    every webhook verified; 1 otherwise.
    """
    from vibewatch.demo.story import DemoPlan, run_demo  # imported here: keeps --help fast

    given = {
        "devices": devices,
        "faulty": faulty,
        "duration_s": duration,
        "speedup": speedup,
        "onset_s": onset,
        "growth_s": growth,
    }
    chosen = {name: value for name, value in given.items() if value is not None}
    plan = DemoPlan(**{**(QUICK if quick else {}), **chosen}, seed=seed)  # type: ignore[arg-type]
    problems = plan.problems()
    if problems:
        fail("; ".join(problems), 2)
    if report_dir.exists() and not report_dir.is_dir():
        fail(f"--report {report_dir} is a file, not a directory", 2)
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

    def keep_up(settings: Mapping[str, str], since_ms: int) -> None:
        line.end()
        stop.clear()  # a Ctrl-C during the story ended the story; this one ends the stack
        _keep_up(settings, since_ms, stop)

    try:
        report = run_demo(
            plan,
            config_path=config,
            servers={} if configured else None,
            report_dir=report_dir,
            say=line.say,
            on_progress=lambda progress: line.show(progress.line()),
            stop=stop,
            keep=keep_up if keep else None,
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
