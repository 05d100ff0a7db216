"""``vibewatch sim`` on a real Mosquitto: a fleet with a developing fault, its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from vibewatch.testing.servers import LocalMosquitto


def test_a_simulated_fleet_with_a_developing_fault(
    mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    topics: dict[str, int] = {}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.split("/", 3)[3]
        with lock:
            topics[kind] = topics.get(kind, 0) + 1

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("vw/v1/#", qos=1)
    watcher.loop_start()
    env = {name: value for name, value in os.environ.items() if name != "VIBEWATCH_CONFIG"}
    env |= {"VIBEWATCH_MQTT_PORT": str(mosquitto.port), "VIBEWATCH_DATA_HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vibewatch",
            "sim",
            "--devices",
            "20",
            "--duration",
            "60",
            "--speedup",
            "4",
            "--seed",
            "1",
            "--faults",
            "outer_race@sim-0003,onset=10,growth=20,severity=1",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    watcher.disconnect()
    watcher.loop_stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["devices"] == 20 and summary["simulated_s"] >= 60
    assert summary["faults"] == {"sim-0003": ["outer_race"]}
    assert summary["events"] == {"sim-0003": 1}  # the faulty device, no false alarm
    assert summary["realtime"] and summary["windows"] >= 20 * 59
    assert "no fleet key" in done.stderr
    with lock:
        assert topics["status"] >= 20 and topics["telemetry"] >= 20 * 5 and topics["event"] >= 1
