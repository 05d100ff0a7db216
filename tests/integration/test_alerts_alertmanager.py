"""Side by side with the real Prometheus Alertmanager (Debian's 0.25): the same alerts
posted to it and put to vibewatch's dispatcher give the same webhook bodies, byte for
byte: fingerprints, group key, alert order, common labels, escaping, resolved alerts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vibewatch.alerts.alertmanager import alert_json
from vibewatch.alerts.dispatch import Dispatcher, Route
from vibewatch.alerts.model import Alert
from vibewatch.alerts.service import receiver_routes
from vibewatch.alerts.signing import new_secret
from vibewatch.config import load_config
from vibewatch.edge.device import DeviceSettings
from vibewatch.sim import FaultPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.servers import LocalAlertmanager, LocalMosquitto
from vibewatch.testing.webhooks import LocalReceiver

S = 1_000_000_000


@pytest.fixture
def receiver() -> Iterator[LocalReceiver]:
    with LocalReceiver([]) as local:  # Alertmanager does not sign
        yield local


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: LocalReceiver) -> Iterator[LocalAlertmanager]:
    config = f"""\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}
        send_resolved: true
"""
    with LocalAlertmanager(workdir=tmp_path / "am", config=config) as am:
        yield am


def bodies(receiver: LocalReceiver, count: int, timeout: float = 30.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, [r.body for r in receiver.requests]
        time.sleep(0.05)
    return [r.body for r in receiver.requests]


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def test_the_same_alerts_give_the_same_webhook_bodies(
    alertmanager: LocalAlertmanager, receiver: LocalReceiver
) -> None:
    # now, to the millisecond: the group waits for all three (an alert that started
    # longer ago than the group wait would be notified at once, alone)
    start = _now_ms() * 1_000_000
    name = {"alertname": "DeviceAnomaly"}
    alerts = [
        Alert(
            name | {"device": "pump-02", "instance": "i2", "job": "sim"},
            {"summary": "pump-02 <scores> 3.2 & rising", "runbook_url": "https://x/rb?a=1&b=2"},
            start,
            generator_url="http://vibewatch.example/devices/pump-02",
        ),
        Alert(name | {"device": "pump-01", "instance": "i1"}, {"summary": "pump-01"}, start),
        Alert(name | {"device": "pump-03", "site": "north\tline é"}, {"summary": "s"}, start + 7),
    ]
    ours = Dispatcher(Route("hook", ("alertname",), 1, 2, 3600), external_url=alertmanager.url)
    t0 = time.time_ns()
    for alert in alerts:
        ours.put(alert, t0)
    alertmanager.post_alerts([alert_json(a, time.time_ns()) for a in alerts])
    (first,) = ours.due(t0 + 1 * S)
    assert bodies(receiver, 1)[0] == first.body, (bodies(receiver, 1)[0], first.body)

    # one resolves: a firing notification that shows it resolved
    ended = (_now_ms() - 100) * 1_000_000  # in the past: resolved when it arrives
    gone = Alert(alerts[1].labels, alerts[1].annotations, start, ended)
    ours.put(gone, t0 + 2 * S)
    alertmanager.post_alerts([alert_json(gone, time.time_ns())])
    (second,) = ours.due(t0 + 3 * S)
    assert json.loads(second.body)["status"] == "firing"
    assert bodies(receiver, 2)[1] == second.body, (bodies(receiver, 2)[1], second.body)

    # the others resolve: a resolved notification without the one sent already
    rest = [Alert(a.labels, a.annotations, a.starts_at_ns, ended) for a in (alerts[0], alerts[2])]
    for alert in rest:
        ours.put(alert, t0 + 4 * S)
    alertmanager.post_alerts([alert_json(a, time.time_ns()) for a in rest])
    (third,) = ours.due(t0 + 5 * S)
    assert json.loads(third.body)["status"] == "resolved"
    assert bodies(receiver, 3)[2] == third.body, (bodies(receiver, 3)[2], third.body)


def test_a_receiver_with_matchers_is_a_child_route_as_in_alertmanager(
    tmp_path: Path, receiver: LocalReceiver
) -> None:
    config = f"""\
route:
  receiver: nobody
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: pager
      matchers: ['severity="critical"', 'device=~"pump-.*"']
      continue: true
receivers:
  - name: nobody
  - name: pager
    webhook_configs:
      - url: {receiver.url}
        send_resolved: true
"""
    table = {"pager": {"url": receiver.url, "secrets": [new_secret()],
                       "matchers": ['severity="critical"', 'device=~"pump-.*"']}}  # fmt: skip
    env = {"VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table), "VIBEWATCH_ALERTS_GROUP_WAIT": "1",
           "VIBEWATCH_ALERTS_GROUP_INTERVAL": "2"}  # fmt: skip
    (pager,) = receiver_routes(load_config(environ=env))
    start = _now_ms() * 1_000_000
    alerts = [
        Alert(
            {"alertname": "DeviceOffline", "device": "pump-1", "severity": "critical"}, {}, start
        ),
        Alert({"alertname": "DeviceOffline", "device": "fan-1", "severity": "critical"}, {}, start),
        Alert({"alertname": "DeviceOffline", "device": "pump-2", "severity": "warning"}, {}, start),
    ]
    with LocalAlertmanager(workdir=tmp_path / "am", config=config) as alertmanager:
        ours = Dispatcher(pager.route, external_url=alertmanager.url)
        t0 = time.time_ns()
        for alert in filter(pager.takes, alerts):
            ours.put(alert, t0)
        alertmanager.post_alerts([alert_json(a, time.time_ns()) for a in alerts])
        (notice,) = ours.due(t0 + 1 * S)
        assert bodies(receiver, 1)[0] == notice.body, (bodies(receiver, 1)[0], notice.body)
    assert [a["labels"]["device"] for a in json.loads(notice.body)["alerts"]] == ["pump-1"]


def test_with_an_alertmanager_configured_the_alerts_go_there(
    tmp_path: Path,
    alertmanager: LocalAlertmanager,
    receiver: LocalReceiver,
    mosquitto: LocalMosquitto,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")} | {
        "VIBEWATCH_DATA_HOME": str(tmp_path / "home"),
        "VIBEWATCH_MQTT_PORT": str(mosquitto.port),
        "VIBEWATCH_ALERTS_ALERTMANAGER_URL": alertmanager.url,
        "VIBEWATCH_ALERTS_RULES": json.dumps({"AnomalyScoreSustained": {"enabled": False}}),
    }
    service = ServiceProcess(env, tmp_path, ("serve",), command="alerts", name="alerts")
    service.start()
    scenario = Scenario(devices=4, seed=24, faults=(FaultPlan("ball", count=2, severity=1.0),))
    faulty = sorted(d for d, plans in scenario.faulty_devices().items() if plans)
    simulation, clock = manual_simulation(scenario, settings=DeviceSettings(features_every=0))
    simulation.start()
    try:
        for _ in range(10):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while True:  # Alertmanager groups them (1 s wait) and sends its own webhook
            sent = [json.loads(r.body) for r in receiver.requests]
            shown = sorted({a["labels"]["device"] for body in sent for a in body["alerts"]})
            if shown == faulty:
                break
            assert time.monotonic() < deadline, sent
            time.sleep(0.1)
    finally:
        simulation.close()
        assert service.stop() == 0
        service.close()
    assert all(r.headers["user-agent"].startswith("Alertmanager/") for r in receiver.requests)
    assert sent[-1]["groupKey"] == '{}:{alertname="DeviceAnomaly"}'
