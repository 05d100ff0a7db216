"""``vibewatch demo`` end to end: servers of its own (or the configured ones), ``serve``
as a process, a fleet with bearing faults, a model rollout, the faults' alerts as signed
webhooks at the demo's receiver, the report; nothing left running."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vibewatch.alerts.signing import new_secret, sign
from vibewatch.demo.story import DemoReport, DetectedFault, _AlertsChapter
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.vwm import decode_header
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, free_port


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("VIBEWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "vibewatch", "demo", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=300,
    )


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_demo_detects_the_bearing_faults_and_leaves_nothing_running() -> None:
    done = demo("--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["devices"] == 50 and report["servers"] == "local"
    assert report["simulated_s"] >= 300
    injected = report["faults_injected"]
    assert sorted(fault["kind"] for fault in injected) == ["ball", "inner_race", "outer_race"]
    assert len({fault["device"] for fault in injected}) == 3
    assert report["faults_detected"] == 3
    for fault in injected:  # detected after the onset, while the fault grew
        assert fault["onset_s"] <= fault["detected_s"] <= fault["onset_s"] + 120
    assert report["false_alarm_devices"] == []
    assert report["events"] >= 3  # a growing fault's anomaly may end and start again
    assert report["readings_published"] >= 50 * 280 and report["lost"] == 0
    assert report["readings_stored"] == report["readings_published"]
    assert report["rollout_converged"] is True  # chapter two: version 2 to every device
    assert report["rollout"]["phase"] == "completed"
    assert report["rollout"]["counts"] == {"confirmed": 50}
    # chapter three: the faults' alerts arrived as signed webhooks, and only theirs
    assert all(fault["alerted"] for fault in injected) and report["faults_alerted"] == 3
    assert report["alerted_devices"] == sorted(fault["device"] for fault in injected)
    assert report["webhooks_verified"] == report["webhooks_received"] >= 1
    # chapter four: every device calibrated, within the factory model's ceiling
    ceiling = decode_header(FACTORY_MODEL.read_bytes()).threshold_ceiling
    assert len(report["thresholds"]) == 50
    assert all(0 < t <= ceiling * (1 + 1e-6) for t in report["thresholds"].values())
    assert set(report["capped"]) <= set(report["thresholds"])
    assert report["false_alarms"] == {}
    assert "chapter four: every device learns its baseline over 40 windows" in done.stderr
    assert report["ok"] is True
    # the progress and the steps went to standard error; the servers are gone
    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)]
    assert len(ports) >= 3 and "vibewatch serve ready" in done.stderr
    assert "webhook receiver on http://127.0.0.1:" in done.stderr
    assert "chapter two: rollout-1, version 2 in waves of 2 + 23 + 25" in done.stderr
    assert not any(listening(port) for port in ports)


def test_the_demo_runs_on_configured_servers(
    mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, influx_db: str
) -> None:
    env = {
        "VIBEWATCH_MQTT_PORT": str(mosquitto.port),
        "VIBEWATCH_INFLUX_URL": influxdb.url,
        "VIBEWATCH_INFLUX_DATABASE": influx_db,
    }
    done = demo(
        "--devices", "8", "--faulty", "1", "--duration", "120", "--onset", "45", "--growth",
        "30", "--speedup", "10", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["servers"] == "configured" and report["faults_detected"] == 1
    assert report["rollout_converged"] is True
    assert report["faults_alerted"] == 1 and report["webhooks_verified"] >= 1
    stored = influxdb.count(influx_db, "reading", "score", "device =~ /^demo-/")
    assert stored == report["readings_stored"] > 0
    assert mosquitto.running and influxdb.running  # the configured servers are left alone


def test_the_demo_names_configured_servers_that_do_not_answer() -> None:
    port = free_port()
    done = demo("--json", env={"VIBEWATCH_MQTT_PORT": str(port)})
    assert done.returncode == 1
    assert f"the MQTT broker at 127.0.0.1:{port} (Connection refused)" in done.stderr
    assert "--local" in done.stderr and done.stdout == ""


def test_a_bad_plan_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = demo("--duration", "0", "--faulty", "60")
    assert done.returncode == 2
    assert "faulty must be between 0 and devices (50), not 60" in done.stderr
    assert "duration must be > 0 simulated seconds, not 0" in done.stderr


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_alerts_chapter_counts_what_verified_and_a_missing_alert_is_a_problem() -> None:
    chapter = _AlertsChapter()
    try:
        table = json.loads(chapter.settings["VIBEWATCH_ALERTS_RECEIVERS"])
        (secret,) = table["demo"]["secrets"]
        assert chapter.settings["VIBEWATCH_ALERTS_ALERTMANAGER_URL"] == ""

        def body(*alerts: tuple[str, str]) -> bytes:
            listed = [
                {"labels": {"alertname": n, "device": d}, "status": "firing"} for n, d in alerts
            ]
            return json.dumps({"version": "4", "alerts": listed}).encode()

        signed = body(("DeviceAnomaly", "demo-0001"), ("DeviceOffline", "demo-0002"))
        forged = body(("DeviceAnomaly", "demo-0003"))
        now = int(time.time())
        assert post(chapter.receiver.url, signed, sign([secret], "msg_1", now, signed)) == 200
        assert post(chapter.receiver.url, forged, sign([new_secret()], "msg_2", now, forged)) == 401
        assert chapter.alerted() == {"demo-0001"}  # verified, and an anomaly alert
        assert [request.verified for request in chapter.requests()] == [True, False]
    finally:
        chapter.close()
    report = DemoReport(
        devices=2, simulated_s=60, seconds=6, servers="local",
        faults_injected=[
            DetectedFault("demo-0001", "ball", 10, 30, alerted=True),
            DetectedFault("demo-0003", "ball", 10, 35, alerted=False),
        ],
        faults_detected=2, false_alarm_devices=[], events=2, windows=120,
        readings_published=60, readings_stored=60, lost=0,
        rollout={"id": "rollout-1", "phase": "completed", "reason": "", "counts": {}, "seconds": 5},
        rollout_converged=True, webhooks_received=2, webhooks_verified=1,
        alerted_devices=["demo-0001"], faults_alerted=1, model_threshold=2.0,
        thresholds={"demo-0001": 1.5}, capped=[], false_alarms={}, ok=False,
    )  # fmt: skip
    assert report.problems() == [
        "1 of 2 faults' alerts did not arrive",
        "1 of 2 webhooks did not verify",
        "1 of 2 devices did not calibrate",
    ]
    assert "  demo-0001 1.5 0" in report.lines()
    lines = report.lines()
    assert (
        "  demo-0003  ball        onset 10 s, detected at 35 s, 25 s after its onset; NO alert"
        in lines
    )
    assert lines[-2:] == [
        "webhooks: 2 received by the demo's receiver, 1 verified; DeviceAnomaly alerts for "
        "demo-0001 (1 of 2 faults)",
        "NOT ok: 1 of 2 faults' alerts did not arrive; 1 of 2 webhooks did not verify; 1 of 2 "
        "devices did not calibrate",
    ]
