"""End to end: simulated devices with bearing faults raise anomaly events over real
Mosquitto; `vibewatch alerts serve` (a process of its own) makes alerts of them and a
real HTTP receiver gets them as signed webhooks in Alertmanager's format."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import standardwebhooks

from vibewatch.alerts.signing import new_secret
from vibewatch.edge.device import DeviceSettings
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.servers import LocalMosquitto
from vibewatch.testing.webhooks import LocalReceiver


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[LocalReceiver]:
    with LocalReceiver([secret]) as local:
        yield local


@pytest.fixture
def alerts(
    tmp_path: Path, mosquitto: LocalMosquitto, receiver: LocalReceiver, secret: str
) -> Iterator[ServiceProcess]:
    table = {"oncall": {"url": receiver.url, "secrets": [secret], "timeout": 5}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")} | {
        "VIBEWATCH_DATA_HOME": str(tmp_path / "home"),
        "VIBEWATCH_MQTT_PORT": str(mosquitto.port),
        "VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table),
        "VIBEWATCH_ALERTS_GROUP_WAIT": "4",
        "VIBEWATCH_ALERTS_GROUP_INTERVAL": "1",
        "VIBEWATCH_ALERTS_EXTERNAL_URL": "http://vibewatch.example/",
    }
    process = ServiceProcess(env, tmp_path, ("serve",), command="alerts", name="alerts")
    process.start()
    yield process
    process.close()


def notifications(receiver: LocalReceiver, secret: str) -> list[dict[str, object]]:
    out = []
    for request in receiver.requests:
        out.append(standardwebhooks.Webhook(secret).verify(request.body, request.headers))
    return out


def test_fifty_faulty_devices_make_one_signed_notification_then_an_offline_one(
    alerts: ServiceProcess,
    receiver: LocalReceiver,
    secret: str,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> None:
    faults = FaultPlan("outer_race", count=50, severity=1.0)
    scenario = Scenario(devices=52, seed=21, faults=(faults,))
    simulation, clock = manual_simulation(scenario, settings=DeviceSettings(features_every=0))
    faulty = {d for d, plans in scenario.faulty_devices().items() if plans}
    simulation.start()
    try:
        for _ in range(10):  # ten simulated seconds, within the group wait
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.05)
        receiver.wait_accepted(1, timeout=30)
        (first,) = notifications(receiver, secret)
        assert first["status"] == "firing" and first["version"] == "4"
        assert first["groupKey"] == '{}:{alertname="DeviceAnomaly"}'
        assert first["externalURL"] == "http://vibewatch.example"
        listed = first["alerts"]
        assert isinstance(listed, list) and len(listed) == 50
        assert {a["labels"]["device"] for a in listed} == faulty  # healthy ones stay quiet
        assert first["commonLabels"] == {"alertname": "DeviceAnomaly", "severity": "warning"}
        # a device goes away: its last will makes a critical alert
        gone = sorted(faulty)[0]
        simulation.kill(gone)
        receiver.wait_accepted(2, timeout=30)
    finally:
        simulation.close()
    second = notifications(receiver, secret)[1]
    assert second["groupKey"] == '{}:{alertname="DeviceOffline"}'
    (offline,) = second["alerts"]  # type: ignore[misc]
    assert offline["labels"] == {
        "alertname": "DeviceOffline",
        "device": gone,
        "severity": "critical",
    }
    assert alerts.stop() == 0
