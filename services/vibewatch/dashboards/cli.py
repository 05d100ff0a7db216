"""``vibewatch dashboards …``: write the Grafana dashboards, check their queries, upload them.

Exit codes: 0 success; 1 a failure (a query InfluxDB refused or that returned nothing,
Grafana refused or could not be reached, a file that cannot be written); 2 bad input (a
bad duration, URL, path or token file).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from vibewatch.cliutil import App, ConfigOption, JsonOption, duration, exits, fail, load
from vibewatch.dashboards import DEFAULT_DASHBOARDS_PATH
from vibewatch.errors import DataError

__all__ = ["dashboards_app"]

dashboards_app = App(
    help="Grafana dashboards: the JSON models, provisioning, query checks, upload."
)


@dashboards_app.command("export")
def dashboards_export(
    out: Annotated[
        Path, typer.Argument(help="Directory for the dashboards and provisioning files.")
    ] = Path("dashboards"),
    dashboards_path: Annotated[
        str,
        typer.Option(
            "--dashboards-path",
            metavar="PATH",
            help="Where Grafana finds the JSON files (the provider's path).",
        ),
    ] = DEFAULT_DASHBOARDS_PATH,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Write every dashboard as Grafana JSON (OUT/UID.json) and the provisioning files
    of its InfluxDB data source and dashboard provider (OUT/provisioning/), pointed at the
    configuration's InfluxDB. Secrets are not written: Grafana reads them from
    $VIBEWATCH_INFLUX_PASSWORD (v1) or $VIBEWATCH_INFLUX_TOKEN (v2)."""
    from vibewatch.dashboards.export import export

    cfg = load(config)
    with exits():
        written = export(out, cfg.influx, dashboards_path=dashboards_path)
    if as_json:
        typer.echo(json.dumps({"files": [str(p) for p in written]}))
        return
    for path in written:
        typer.echo(str(path))


@dashboards_app.command("check")
def dashboards_check(
    since: Annotated[
        str,
        typer.Option(
            "--since", metavar="DURATION", help="Time range: from this long ago until now."
        ),
    ] = "6h",
    device: Annotated[
        list[str] | None,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="Value of the device variable (repeat for several); default: every "
            "device the variable's own query finds.",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run every panel, variable and annotation query of every dashboard against the
    configuration's InfluxDB, as Grafana would send it, and list what each returned
    (exit 1 if any query fails or returns no rows)."""
    from vibewatch.dashboards.boards import DASHBOARDS
    from vibewatch.dashboards.check import check_dashboard
    from vibewatch.influx.query import InfluxQL

    seconds = duration(since, "--since")
    if seconds <= 0:
        fail(f"--since must be longer than 0, not {since!r}", 2)
    cfg = load(config)
    client = InfluxQL.from_config(cfg.influx)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - int(seconds * 1000)
    variables = {"device": device} if device else None
    checks = [
        check
        for uid in DASHBOARDS
        for check in check_dashboard(
            client, uid, start_ms=start_ms, end_ms=end_ms, variables=variables
        )
    ]
    failed = [c for c in checks if not c.ok]
    if as_json:
        shown = [{**dataclasses.asdict(c), "ok": c.ok} for c in checks]
        typer.echo(json.dumps({"checks": shown, "failed": len(failed)}))
    else:
        for c in checks:
            outcome = c.error or f"{c.series} series, {c.rows} rows"
            if c.ok and not c.rows:
                outcome += " (events: none in the range)"
            typer.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.dashboard}: {c.where}: {outcome}")
        quiet = sum(c.ok and not c.rows for c in checks)
        typer.echo(
            f"{len(checks) - len(failed) - quiet} of {len(checks)} queries returned rows"
            + (f"; {quiet} queries of events found none in the range" if quiet else "")
        )
    if failed:
        raise typer.Exit(1)


@dashboards_app.command("push")
def dashboards_push(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Grafana's base URL \\[default: grafana.url of the configuration].",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="PATH",
            help="File holding a Grafana service account token (Editor role) "
            "\\[default: grafana.token of the configuration, e.g. from "
            "$VIBEWATCH_GRAFANA_TOKEN or the file $VIBEWATCH_GRAFANA_TOKEN_FILE names; "
            "empty: no authentication].",
            show_default=False,
        ),
    ] = None,
    message: Annotated[
        str,
        typer.Option("--message", help="Version message; default: the vibewatch version."),
    ] = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Upload every dashboard into the "vibewatch" folder of a Grafana server (created if
    missing), each under its own uid with overwrite: pushing again saves new versions of
    the same dashboards."""
    from vibewatch.config import read_secret_file
    from vibewatch.dashboards.push import push

    cfg = load(config)
    token = cfg.grafana.token.reveal()
    if token_file is not None:
        try:
            token = read_secret_file(token_file)
        except DataError as exc:
            fail(f"--token-file: {exc}", 2)
    with exits():
        pushed = push(url or str(cfg.grafana.url), token, message=message)
    if as_json:
        typer.echo(json.dumps({"dashboards": [dataclasses.asdict(p) for p in pushed]}))
        return
    for p in pushed:
        typer.echo(f"{p.uid}: version {p.version} {p.url}")
