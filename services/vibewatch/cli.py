"""The ``vibewatch`` command line."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from vibewatch import __version__
from vibewatch.alerts.cli import alerts_app
from vibewatch.cliutil import App, ConfigOption, JsonOption, config_json, exits, fail, load
from vibewatch.dashboards.cli import dashboards_app
from vibewatch.demo.cli import demo_command
from vibewatch.errors import VibewatchError
from vibewatch.logs import setup_logging
from vibewatch.models.cli import keys_app, models_app
from vibewatch.ota.cli import devices_app, ota_app
from vibewatch.serve import SERVICES, build_services, run_services
from vibewatch.sim.cli import sim_command
from vibewatch.sim.soak import soak_command
from vibewatch.train.cli import dataset_app
from vibewatch.train.commands import evaluate_command, train_command

log = logging.getLogger("vibewatch")

app = App(help="vibewatch: predictive maintenance for fleets of vibration sensors.")
config_app = App(help="Inspect the configuration.")
app.add_typer(config_app, name="config")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(dataset_app, name="dataset")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(ota_app, name="ota")
app.add_typer(devices_app, name="devices")
app.add_typer(alerts_app, name="alerts")
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("sim")(sim_command)
app.command("soak")(soak_command)
app.command("demo")(demo_command)


def main() -> None:
    """The console entry point."""
    app(prog_name="vibewatch")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def vibewatch(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """vibewatch: predictive maintenance for fleets of vibration sensors."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the effective configuration (defaults, file and environment); secrets are masked."""
    values = config_json(load(config))
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    # Top-level keys first, then one [section] each, as a TOML file has them.
    tables = {name: keys for name, keys in values.items() if isinstance(keys, dict)}
    for key, value in values.items():
        if key not in tables:
            typer.echo(f"{key} = {json.dumps(value)}")
    for section, keys in tables.items():
        typer.echo(f"\n[{section}]")
        for key, value in keys.items():
            typer.echo(f"{key} = {json.dumps(value)}")


@app.command()
def ingest(
    config: ConfigOption = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Join the MQTT 5 shared subscription $share/NAME/... so several ingest "
            "processes split the load (overrides mqtt.group). Give each process its own "
            "mqtt.client_id.",
            show_default=False,
        ),
    ] = None,
    retire: Annotated[
        bool,
        typer.Option(
            "--retire",
            help="Retire this client id for good: unsubscribe, ingest what the broker kept "
            "for its session, end the session and exit (see docs/broker.md, Retiring a "
            "group member).",
        ),
    ] = False,
) -> None:
    """Run the ingestion service: MQTT telemetry, events, features and status into InfluxDB.

    Messages are acknowledged to the broker only once their points are in InfluxDB or
    in the on-disk spool. SIGTERM or Ctrl-C flushes everything and exits.
    """
    from vibewatch.ingest.service import IngestService  # imported here: keeps --help fast

    cfg = load(config, **({"VIBEWATCH_MQTT_GROUP": group} if group is not None else {}))
    setup_logging(cfg.log.level, cfg.log.format)
    log.info(
        "vibewatch %s ingest starting; configuration: %s", __version__, json.dumps(config_json(cfg))
    )
    with exits():
        service = IngestService.from_config(cfg)
    if not retire:
        raise typer.Exit(run_services([service]))
    try:
        service.start()
    except (VibewatchError, OSError, TimeoutError) as exc:
        log.error("cannot retire the session: %s", exc)
        service.stop()
        raise typer.Exit(1) from exc
    raise typer.Exit(0 if service.retire() else 1)


@app.command()
def serve(
    config: ConfigOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="SERVICE",
            help=f"Run only this service ({', '.join(SERVICES)}); repeat for more "
            "[default: all of them].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the back end's services in one process: ingest (MQTT into InfluxDB), the
    OTA controller (rollouts) and the alerts service (signed webhooks).

    Services start in order and stop in reverse order; readiness is reported on
    $NOTIFY_SOCKET (systemd Type=notify). SIGTERM or Ctrl-C flushes everything and exits
    0 when every service stopped clean.
    """
    cfg = load(config)
    setup_logging(cfg.log.level, cfg.log.format)
    log.info(
        "vibewatch %s serve starting; configuration: %s", __version__, json.dumps(config_json(cfg))
    )
    try:
        with exits():
            services = build_services(cfg, only or ())
    except ValueError as exc:
        fail(str(exc), 2)
    raise typer.Exit(run_services(services))
