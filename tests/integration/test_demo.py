"""``vibewatch demo`` end to end: servers of its own (or the configured ones), ``serve``
as a process, a fleet with bearing faults, the report; nothing left running."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

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
    assert report["events"] == 3
    assert report["readings_published"] >= 50 * 280 and report["lost"] == 0
    assert report["readings_stored"] == report["readings_published"]
    assert report["rollout_converged"] is True  # chapter two: version 2 to every device
    assert report["rollout"]["phase"] == "completed"
    assert report["rollout"]["counts"] == {"confirmed": 50}
    assert report["ok"] is True
    # the progress and the steps went to standard error; the servers are gone
    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)]
    assert len(ports) >= 2 and "vibewatch serve ready" in done.stderr
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
        "--devices", "8", "--faulty", "1", "--duration", "90", "--onset", "20", "--growth",
        "30", "--speedup", "10", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["servers"] == "configured" and report["faults_detected"] == 1
    assert report["rollout_converged"] is True
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
