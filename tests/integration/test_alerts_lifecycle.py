"""An alert's life through `vibewatch alerts serve` over real Mosquitto, with a real
receiver: it fires once, is repeated only after the repeat interval, stays firing across
a SIGKILL (and what was published meanwhile still arrives), and resolves; the
sustained-score and ingestion rules end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import standardwebhooks

from vibewatch.edge.device import DeviceSettings
from vibewatch.protocol import (
    DEFAULT_PREFIX,
    AnomalyEvent,
    DeviceState,
    EventKind,
    Kind,
    Status,
    topic_for,
)
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import ServiceReport, open_state_db, record_report
from vibewatch.testing.ingest import Publisher, ServiceProcess
from vibewatch.testing.webhooks import LocalReceiver


def anomaly(device: str, kind: EventKind) -> tuple[str, bytes]:
    event = AnomalyEvent(device, 1, time.time_ns() // 1_000_000, kind, 9.5, 1.5, "pump-ae", 1)
    return topic_for(DEFAULT_PREFIX, device, Kind.EVENT), event.encode()


def bodies(receiver: LocalReceiver, secret: str, count: int) -> list[dict[str, Any]]:
    receiver.wait_accepted(count, timeout=30)
    hook = standardwebhooks.Webhook(secret)
    return [hook.verify(r.body, r.headers) for r in receiver.requests if r.status == 200]


def devices(body: dict[str, Any]) -> list[str]:
    return sorted(a["labels"]["device"] for a in body["alerts"])


def listed(process: ServiceProcess, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "vibewatch", "alerts", "list", "--json", *args],
        env=process.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_fires_once_repeats_after_the_interval_survives_a_kill_and_resolves(
    start_alerts: Callable[..., ServiceProcess],
    publisher: Publisher,
    receiver: LocalReceiver,
    secret: str,
) -> None:
    env = {
        "VIBEWATCH_ALERTS_GROUP_WAIT": "0.5",
        "VIBEWATCH_ALERTS_GROUP_INTERVAL": "0.5",
        "VIBEWATCH_ALERTS_REPEAT_INTERVAL": "6",
    }
    alerts = start_alerts(**env)
    publisher.publish_all([anomaly("pump-a", EventKind.START)])
    (first,) = bodies(receiver, secret, 1)
    assert first["status"] == "firing" and devices(first) == ["pump-a"]
    publisher.publish_all([anomaly("pump-a", EventKind.START)])  # again: not news
    (firing,) = listed(alerts)
    assert firing["labels"]["device"] == "pump-a" and firing["status"] == "firing"

    alerts.kill()  # SIGKILL with pump-a firing; pump-b's anomaly comes while it is down
    publisher.publish_all([anomaly("pump-b", EventKind.START)])
    alerts.start()
    _, second = bodies(receiver, secret, 2)
    assert devices(second) == ["pump-a", "pump-b"]  # the new alert, not pump-a afresh
    assert second["alerts"][0]["startsAt"] == first["alerts"][0]["startsAt"]

    third = bodies(receiver, secret, 3)[2]  # nothing changed: the repeat
    assert devices(third) == ["pump-a", "pump-b"]
    seconds = [r.at for r in receiver.requests]
    assert seconds[2] - seconds[1] >= 6.0  # not before the repeat interval

    publisher.publish_all([anomaly("pump-a", EventKind.END), anomaly("pump-b", EventKind.END)])
    resolved = bodies(receiver, secret, 4)[3]
    assert resolved["status"] == "resolved" and devices(resolved) == ["pump-a", "pump-b"]
    assert listed(alerts) == []
    assert {a["status"] for a in listed(alerts, "--all")} == {"resolved"}
    assert alerts.stop() == 0
    assert len(receiver.accepted) == 4 == len(receiver.requests)


def test_a_sustained_high_score_and_ingestion_trouble_page(
    tmp_path: Path,
    start_alerts: Callable[..., ServiceProcess],
    receiver: LocalReceiver,
    secret: str,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> None:
    rules = {
        "DeviceAnomaly": {"enabled": False},
        "AnomalyScoreSustained": {"factor": 1.5, "share": 0.5, "span": 30, "min_windows": 5},
    }
    alerts = start_alerts(
        VIBEWATCH_ALERTS_RULES=json.dumps(rules),
        VIBEWATCH_ALERTS_GROUP_WAIT="1",
        VIBEWATCH_ALERTS_GROUP_BY="alertname",
    )
    scenario = Scenario(devices=3, seed=24, faults=(FaultPlan("ball", count=1, severity=1.0),))
    (faulty,) = [d for d, plans in scenario.faulty_devices().items() if plans]
    simulation, clock = manual_simulation(
        scenario,
        settings=DeviceSettings(features_every=0, batch_windows=2),
        start_wall_ms=time.time_ns() // 1_000_000,
    )
    simulation.start()
    try:
        deadline = time.monotonic() + 60
        while not receiver.accepted:
            assert time.monotonic() < deadline, "no notification"
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.05)
    finally:
        simulation.close()
    (sustained,) = bodies(receiver, secret, 1)
    assert sustained["groupLabels"] == {"alertname": "AnomalyScoreSustained"}
    assert devices(sustained) == [faulty]  # the healthy ones stay below 1.5 x

    db = open_state_db(tmp_path / "home" / "state.db")  # two reports of an ingest process
    try:
        now = time.time()
        figures = {"messages_in": 1000, "rejected": 0, "spool_records": 0}
        record_report(db, ServiceReport("ingest", "ingest-7", now - 10, 10, figures))
        time.sleep(1.5)  # the alerts service looks every second
        figures = {"messages_in": 2000, "rejected": 300, "spool_records": 0}
        record_report(db, ServiceReport("ingest", "ingest-7", now, 10, figures))
    finally:
        db.close()
    trouble = bodies(receiver, secret, 2)[1]
    (alert,) = trouble["alerts"]
    assert alert["labels"] == {"alertname": "IngestionTrouble", "instance": "ingest-7",
                               "severity": "critical"}  # fmt: skip
    assert alert["annotations"]["summary"] == "ingest ingest-7: 30.0% of 1000 messages rejected"
    assert alerts.stop() == 0


def test_an_offline_device_pages_for_being_offline_not_for_its_anomaly(
    start_alerts: Callable[..., ServiceProcess],
    publisher: Publisher,
    receiver: LocalReceiver,
    secret: str,
) -> None:
    alerts = start_alerts(VIBEWATCH_ALERTS_GROUP_WAIT="1")
    will = (
        topic_for(DEFAULT_PREFIX, "pump-c", Kind.STATUS),
        Status("pump-c", DeviceState.OFFLINE).encode(),
    )
    publisher.publish_all(
        [anomaly("pump-c", EventKind.START), will, anomaly("pump-d", EventKind.START)]
    )
    notified = {b["groupLabels"]["alertname"]: devices(b) for b in bodies(receiver, secret, 2)}
    assert notified == {"DeviceAnomaly": ["pump-d"], "DeviceOffline": ["pump-c"]}
    shown = listed(alerts, "--matcher", 'alertname="DeviceAnomaly"')
    assert {a["labels"]["device"] for a in shown} == {
        "pump-c",
        "pump-d",
    }  # both fire; the offline one's is muted
    assert alerts.stop() == 0
