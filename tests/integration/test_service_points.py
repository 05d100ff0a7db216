"""The points of the OTA controller and the alerts service (``vibewatch serve``) when
InfluxDB is down: the rollout and the alert go on, the failed writes are logged and
counted, and the points reach InfluxDB once it is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.alerts.store import AlertStore
from vibewatch.edge.device import DeviceSettings
from vibewatch.ota.rollout import Phase, RolloutPlan
from vibewatch.ota.store import RolloutStore
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, rows

DEVICES = ("sim-0001", "sim-0002", "sim-0003")


def test_with_influxdb_down_rollouts_and_alerts_go_on_and_their_points_follow(
    tmp_path: Path,
    model_key: Ed25519PrivateKey,
    serve_with_model: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    serve = serve_with_model
    influxdb.stop()
    simulation, clock = manual_simulation(
        Scenario(devices=3, seed=5, faults=(FaultPlan("outer_race", count=1, severity=1.0),)),
        settings=DeviceSettings(batch_windows=5, features_every=0, trial_ms=5_000),
        public_key=model_key.public_key(),
        start_wall_ms=int(time.time() * 1000) - 600_000,
    )
    db = open_state_db(tmp_path / "home" / "state.db")
    plan = RolloutPlan("vibewatch-ae", 2, DEVICES, canary=1, waves=(1.0,), guard_factor=0.0)
    rollout_id = RolloutStore(db).create(plan).rollout_id
    simulation.start()
    try:
        deadline = time.monotonic() + 60
        while (
            RolloutStore(db).load(rollout_id).phase is not Phase.COMPLETED
            or not AlertStore(db).alerts()
        ):
            assert time.monotonic() < deadline, serve.log_tail()
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.02)
    finally:
        simulation.close()
        db.close()
    log = serve.log()
    for service in ("ota", "alerts"):
        assert f"{service}: cannot write to InfluxDB, retrying" in log, log
    assert serve.running

    influxdb.start()  # same port, same data: the points that waited are written

    def stored(query: str) -> int:
        return len(rows(influxdb, influx_db, query))

    wait_for(
        lambda: stored("""SELECT "phase" FROM "ota_rollout" WHERE "phase" = 'completed'""") == 1,
        30,
        "the rollout's last point",
    )
    assert stored("""SELECT "phase" FROM "ota_rollout" WHERE "phase" = 'running'""") >= 1
    assert stored('SELECT "devices" FROM "ota_wave"') >= 2  # its two waves, at least once
    wait_for(lambda: stored('SELECT "firing" FROM "alert" WHERE "firing" = true') >= 1, 30,
             "the alert's point")  # fmt: skip
    wait_for(
        lambda: all(
            f"{service}: InfluxDB takes points again" in serve.log()
            for service in ("ota", "alerts")
        ),
        30,
        "both services writing again",
    )
    assert serve.stop() == 0
    stopped = serve.log()
    assert "ota stopped;" in stopped and "alerts stopped;" in stopped
    for line in stopped.splitlines():
        if "ota stopped;" in line or "alerts stopped;" in line:
            assert "dropped 0, failed writes" in line and "waiting 0" in line, line
            assert "failed writes 0" not in line, line  # the outage was counted
