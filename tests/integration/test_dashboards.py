"""Every dashboard query against the real InfluxDB, filled by simulated devices through the
real services (``vibewatch serve``: ingest, and the OTA controller and the alerts service
for a rollout and an alert): each returns rows of the shape its panel needs, sent as
Grafana would send it (variables and time range substituted)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.dashboards.boards import DASHBOARDS
from vibewatch.dashboards.check import QueryCheck, check_dashboard
from vibewatch.edge.device import DeviceSettings
from vibewatch.influx.query import InfluxQL
from vibewatch.ota.rollout import Phase, RolloutPlan
from vibewatch.ota.store import RolloutStore
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, rows

DEVICES = [f"sim-{i:04d}" for i in range(1, 7)]
FAULTY = "sim-0004"
#: A target of the rollout that never answers: its job times out, a failure.
GHOST = "sim-ghost"


def by_where(checks: list[QueryCheck]) -> dict[str, QueryCheck]:
    return {c.where: c for c in checks}


def test_every_panel_query_returns_series_of_its_shape(
    tmp_path: Path,
    model_key: Ed25519PrivateKey,
    serve_with_model: ServiceProcess,
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
        settings=DeviceSettings(batch_windows=5, features_every=0, trial_ms=5_000),
        public_key=model_key.public_key(),
        start_wall_ms=began_ms - 120_000,
    )
    db = open_state_db(tmp_path / "home" / "state.db")
    store = RolloutStore(db)
    plan = RolloutPlan(
        "vibewatch-ae",
        2,
        (*DEVICES, GHOST),
        canary=1,
        waves=(0.5, 1.0),
        max_failure_rate=0.5,
        timeout_s=6.0,
        guard_factor=0.0,  # the faulty device's events are no regression
    )
    rollout_id = store.create(plan).rollout_id
    simulation.start()
    try:
        steps, deadline = 0, time.monotonic() + 60
        while steps < 90 or store.load(rollout_id).phase is Phase.RUNNING:
            assert time.monotonic() < deadline, store.load(rollout_id).counts()
            if clock.wall_ms() < time.time() * 1000 - 1000:  # device time stays behind
                clock.advance(1.0)
                steps += 1
            simulation.step()
            time.sleep(0.02)
        simulation.step()
    finally:
        simulation.close()
        db.close()
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
    wait_for(
        lambda: stored("""SELECT "phase" FROM "ota_rollout" WHERE "phase" = 'completed'""") == 1,
        30,
        "the rollout's last point",
    )
    wait_for(lambda: stored('SELECT "alerts" FROM "alerts_firing"') >= 1, 30, "an alert count")
    client = InfluxQL(url=influxdb.url, database=influx_db)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - 3_600_000
    checks = {
        uid: check_dashboard(client, uid, start_ms=start_ms, end_ms=end_ms) for uid in DASHBOARDS
    }
    failed = [c for cs in checks.values() for c in cs if c.error or not c.rows]
    assert not failed, failed  # queries of events too: this fleet has them

    fleet = by_where(checks["vibewatch-fleet"])
    online = fleet["panel 'Devices online' A"]
    assert online.rows == 1 and online.columns == [["time", "count"]]
    in_progress = fleet["panel 'Rollouts in progress' A"]
    assert in_progress.columns == [["time", "sum"]] and in_progress.rows == 1
    firing = fleet["panel 'Firing alerts' A"]
    assert {"severity": "warning"} in firing.tags, firing  # the faulty device's anomaly
    assert all(c == ["time", "sum"] for c in firing.columns)
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

    rollouts = by_where(checks["vibewatch-rollouts"])
    assert rollouts["variable rollout"].rows == 1
    latest = rollouts["panel 'Rollouts' A"]
    assert latest.tags == [{"rollout": rollout_id, "model_id": "vibewatch-ae"}]
    assert latest.columns == [
        ["time", "phase", "version", "wave", "waves", "devices", "confirmed", "failed",
         "rolled_back", "timed_out"]
    ]  # fmt: skip
    (shown,) = rows(
        influxdb,
        influx_db,
        'SELECT last("phase") AS "phase", last("devices_confirmed") AS "confirmed", '
        'last("devices_timed_out") AS "timed_out" FROM "ota_rollout"',
    )
    assert (shown["phase"], shown["confirmed"], shown["timed_out"]) == ("completed", 6, 1)
    per_state = rollouts["panel 'Devices per state' A"]
    assert per_state.tags == [{"rollout": rollout_id}]
    assert per_state.columns[0][:3] == ["time", "queued", "sent"]
    waves = rollouts["panel 'Progress per wave' A"]
    assert [t["wave"] for t in waves.tags] == ["0", "1", "2"]
    assert rollouts["panel 'Failures by reason' A"].tags == [{"reason": "timeout"}]
    failed = rows(influxdb, influx_db, 'SELECT "detail", "device", "outcome" FROM "ota_failure"')
    assert [(row["device"], row["outcome"]) for row in failed] == [(GHOST, "timed_out")]
    alerts = rows(
        influxdb,
        influx_db,
        """SELECT "firing" FROM "alert" WHERE "alertname" = 'DeviceAnomaly' """
        f"""AND "device" = '{FAULTY}'""",
    )
    assert alerts and alerts[0]["firing"] is True  # it fired

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
    # an empty database has no events either: said, not failed
    assert (
        "ok   vibewatch-fleet: panel 'Anomaly events' A: 0 series, 0 rows (events: none in the "
        "range)" in result.output
    )
    assert "FAIL vibewatch-fleet: panel 'Devices online' A: 0 series, 0 rows" in result.output


def test_check_reports_an_unreachable_influxdb() -> None:
    env = {"VIBEWATCH_INFLUX_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(app, ["dashboards", "check", "--json"], env=env)
    assert result.exit_code == 1
    answer = json.loads(result.output)
    assert answer["failed"] == len(answer["checks"]) > 0
    assert "InfluxDB at 127.0.0.1:9" in answer["checks"][0]["error"]
