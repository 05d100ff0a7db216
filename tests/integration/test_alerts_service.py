"""End to end: simulated devices with bearing faults raise anomaly events over real
Mosquitto; `vibewatch alerts serve` (a process of its own) makes alerts of them and a
real HTTP receiver gets them as signed webhooks in Alertmanager's format."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import standardwebhooks

from vibewatch.alerts.outbox import Outbox, State
from vibewatch.edge.device import DeviceSettings
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.webhooks import LocalReceiver, Reply


@pytest.fixture
def alerts(start_alerts: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_alerts()


class Fleet:
    """A started simulation whose clock starts now (its alerts' times are today's)."""

    def __init__(self, simulation: Simulation, clock: ManualClock) -> None:
        self.simulation = simulation
        self._clock = clock

    def run(self, seconds: int) -> None:
        """Simulated seconds, one step each, a little real time apart."""
        for _ in range(seconds):
            self._clock.advance(1.0)
            self.simulation.step()
            time.sleep(0.05)


@pytest.fixture
def fleet(
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> Iterator[Callable[[Scenario], Fleet]]:
    """Starts a scenario's simulation (no feature vectors); closes it after the test."""
    started: list[Simulation] = []

    def start(scenario: Scenario) -> Fleet:
        simulation, clock = manual_simulation(
            scenario,
            settings=DeviceSettings(features_every=0),
            start_wall_ms=time.time_ns() // 1_000_000,
        )
        simulation.start()
        started.append(simulation)
        return Fleet(simulation, clock)

    yield start
    for simulation in started:
        simulation.close()


def notifications(receiver: LocalReceiver, secret: str) -> list[dict[str, object]]:
    out = []
    for request in receiver.requests:
        out.append(standardwebhooks.Webhook(secret).verify(request.body, request.headers))
    return out


def test_fifty_faulty_devices_make_one_signed_notification_then_an_offline_one(
    alerts: ServiceProcess,
    receiver: LocalReceiver,
    secret: str,
    fleet: Callable[[Scenario], Fleet],
) -> None:
    faults = FaultPlan("outer_race", count=50, severity=1.0)
    scenario = Scenario(devices=52, seed=21, faults=(faults,))
    running = fleet(scenario)
    faulty = {d for d, plans in scenario.faulty_devices().items() if plans}
    running.run(10)  # ten simulated seconds, well within the group wait
    receiver.wait_accepted(1, timeout=30)
    (first,) = notifications(receiver, secret)
    assert first["status"] == "firing" and first["version"] == "4"
    assert first["groupKey"] == '{}:{alertname="DeviceAnomaly"}'
    assert first["externalURL"] == "http://vibewatch.example"
    listed = first["alerts"]
    assert isinstance(listed, list)
    shown = {a["labels"]["device"] for a in listed}
    assert shown == faulty, (len(shown), faulty - shown, shown - faulty)  # healthy: quiet
    assert first["commonLabels"] == {"alertname": "DeviceAnomaly", "severity": "warning"}
    # a device goes away: its last will makes a critical alert
    gone = sorted(faulty)[0]
    running.simulation.kill(gone)
    receiver.wait_accepted(2, timeout=30)
    second = notifications(receiver, secret)[1]
    assert second["groupKey"] == '{}:{alertname="DeviceOffline"}'
    (offline,) = second["alerts"]  # type: ignore[misc]
    assert offline["labels"] == {
        "alertname": "DeviceOffline",
        "device": gone,
        "severity": "critical",
    }
    assert alerts.stop() == 0


def test_notifications_pending_when_the_service_is_killed_go_out_after_a_restart(
    tmp_path: Path,
    alerts: ServiceProcess,
    receiver: LocalReceiver,
    secret: str,
    fleet: Callable[[Scenario], Fleet],
) -> None:
    receiver.script([Reply(503)] * 1000)  # the receiver is down
    scenario = Scenario(devices=5, seed=22, faults=(FaultPlan("ball", count=5, severity=1.0),))
    running = fleet(scenario)
    deadline = time.monotonic() + 30
    while not pending_tried(tmp_path / "home" / "state.db"):
        assert time.monotonic() < deadline, receiver.requests
        running.run(1)
    running.simulation.close()
    alerts.kill()  # SIGKILL, with the notification pending
    receiver.unscript()
    alerts.start()
    accepted = receiver.wait_accepted(1, timeout=30)
    time.sleep(2.0)  # nothing more comes
    assert len(accepted) == 1 and len(receiver.accepted) == 1
    (body,) = accepted.values()
    assert len(json.loads(body)["alerts"]) == 5
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == set(accepted)  # every attempt, before and after the kill, one id
    assert alerts.stop() == 0


def pending_tried(state_db: Path) -> bool:
    """Whether the outbox holds a pending notification that was tried at least once."""
    if not state_db.exists():
        return False
    db = open_state_db(state_db)
    try:
        return any(n.attempts > 0 for n in Outbox(db).notifications(state=State.PENDING))
    finally:
        db.close()


def test_a_silenced_device_is_left_out_of_the_notification(
    alerts: ServiceProcess,
    receiver: LocalReceiver,
    secret: str,
    fleet: Callable[[Scenario], Fleet],
) -> None:
    scenario = Scenario(
        devices=4, seed=23, faults=(FaultPlan("inner_race", count=3, severity=1.0),)
    )
    faulty = sorted(d for d, plans in scenario.faulty_devices().items() if plans)
    silenced = subprocess.run(
        [sys.executable, "-m", "vibewatch", "alerts", "silence", "--matcher",
         f'device="{faulty[0]}"', "--duration", "1h", "--comment", "bearing swap"],
        env=alerts.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert silenced.returncode == 0, silenced.stderr
    fleet(scenario).run(10)
    receiver.wait_accepted(1, timeout=30)
    (body,) = notifications(receiver, secret)
    assert sorted(a["labels"]["device"] for a in body["alerts"]) == faulty[1:]  # type: ignore[union-attr]
    assert alerts.stop() == 0
