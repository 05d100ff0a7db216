"""Every dashboard query against the real InfluxDB, filled by simulated devices through the
real ingest service (``vibewatch serve``): each returns rows of the shape its panel needs,
sent as Grafana would send it (variables and time range substituted)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.dashboards.boards import DASHBOARDS
from vibewatch.dashboards.check import QueryCheck, check_dashboard
from vibewatch.edge.device import DeviceSettings
from vibewatch.influx.query import InfluxQL
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, rows

DEVICES = [f"sim-{i:04d}" for i in range(1, 7)]
FAULTY = "sim-0004"


def by_where(checks: list[QueryCheck]) -> dict[str, QueryCheck]:
    return {c.where: c for c in checks}


def test_every_panel_query_returns_series_of_its_shape(
    serve: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    began_ms = int(time.time() * 1000)
    simulation, clock = manual_simulation(
        Scenario(
            devices=len(DEVICES),
            seed=3,
            faults=(FaultPlan("outer_race", devices=(FAULTY,), onset_s=20, growth_s=20),),
        ),
        settings=DeviceSettings(batch_windows=5, features_every=0),
        start_wall_ms=began_ms - 120_000,
    )
    simulation.start()
    try:
        for _ in range(90):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.005)
        simulation.step()
    finally:
        simulation.close()
    publisher.publish(f"vw/v1/{DEVICES[0]}/telemetry", b"{not json")
    published = simulation.summary().readings_published

    def stored(query: str) -> int:
        return len(rows(influxdb, influx_db, query))

    wait_for(lambda: stored('SELECT "score" FROM "reading"') >= published, 30, "every reading")
    wait_for(
        lambda: stored('SELECT * FROM "vibewatch_ingest" WHERE "rejected_bad_json" > 0') >= 5,
        30,
        "the reject in five statistics snapshots",
    )
    client = InfluxQL(url=influxdb.url, database=influx_db)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - 3_600_000
    checks = {
        uid: check_dashboard(client, uid, start_ms=start_ms, end_ms=end_ms) for uid in DASHBOARDS
    }
    failed = [c for cs in checks.values() for c in cs if not c.ok]
    assert not failed, failed

    fleet = by_where(checks["vibewatch-fleet"])
    online = fleet["panel 'Devices online' A"]
    assert online.rows == 1 and online.columns == [["time", "count"]]
    top = fleet["panel 'Devices with most anomaly events' A"]
    assert top.columns[0] == ["time", "events", "device"]
    models = fleet["panel 'Model versions in the fleet' A"]
    assert models.series == len(DEVICES)
    assert all(c == ["time", "version", "model"] for c in models.columns)
    assert {t["device"] for t in models.tags} == set(DEVICES)

    device = by_where(checks["vibewatch-device"])
    assert device["variable device"].rows == len(DEVICES)
    score = device["panel 'Score and threshold' A"]
    assert {t["device"] for t in score.tags} == set(DEVICES)
    assert all(c == ["time", "mean"] for c in score.columns)
    threshold = device["panel 'Score and threshold' B"]
    assert [t["device"] for t in threshold.tags] == [FAULTY]
    for name in ("RMS", "Crest", "Kurtosis"):
        assert device[f"panel {name!r} A"].series == len(DEVICES)
    assert device["annotation 'Anomaly events'"].rows >= 1
    assert device["annotation 'Model changes'"].rows >= len(DEVICES)

    ingest = by_where(checks["vibewatch-ingest"])
    rejects = ingest["panel 'Rejects by reason' A"]
    assert any(
        column.startswith("non_negative_difference_rejected_")
        for columns in rejects.columns
        for column in columns
    ), rejects
    assert [t["instance"] for t in ingest["panel 'Messages per second' A"].tags] == ["serve-test"]

    # one device chosen, as a user picks it in the variable
    chosen = by_where(
        check_dashboard(
            client,
            "vibewatch-device",
            start_ms=start_ms,
            end_ms=end_ms,
            variables={"device": [FAULTY]},
        )
    )
    assert [t["device"] for t in chosen["panel 'Score and threshold' A"].tags] == [FAULTY]

    # the command a user runs, with its JSON
    env = {"VIBEWATCH_INFLUX_URL": influxdb.url, "VIBEWATCH_INFLUX_DATABASE": influx_db}
    result = CliRunner().invoke(app, ["dashboards", "check", "--since", "1h", "--json"], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["failed"] == 0 and all(c["ok"] for c in answer["checks"])


def test_check_reports_queries_that_return_nothing(influxdb: LocalInfluxDB, influx_db: str) -> None:
    env = {"VIBEWATCH_INFLUX_URL": influxdb.url, "VIBEWATCH_INFLUX_DATABASE": influx_db}
    result = CliRunner().invoke(app, ["dashboards", "check", "--since", "1h"], env=env)
    assert result.exit_code == 1
    assert "FAIL vibewatch-device: variable device: 0 series, 0 rows" in result.output
    assert "variable $device has no value selected" in result.output
    assert "queries returned rows" in result.output


def test_check_reports_an_unreachable_influxdb() -> None:
    env = {"VIBEWATCH_INFLUX_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(app, ["dashboards", "check", "--json"], env=env)
    assert result.exit_code == 1
    answer = json.loads(result.output)
    assert answer["failed"] == len(answer["checks"]) > 0
    assert "InfluxDB at 127.0.0.1:9" in answer["checks"][0]["error"]
