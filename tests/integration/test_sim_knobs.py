"""The simulator's link and power knobs through real Mosquitto: broken links publish the
last will and come back with a birth message, power losses reboot devices that count
their sequence numbers on, and uplink loss only delays readings."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.sim import LinkPlan, ManualClock, PowerPlan, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.servers import LocalMosquitto

PREFIX = "vw/v1/"


def test_broken_links_and_power_losses(mosquitto: LocalMosquitto) -> None:
    seen: dict[tuple[str, str], list[bytes]] = {}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        _, _, device, kind = message.topic.split("/", 3)
        with lock:
            seen.setdefault((device, kind), []).append(bytes(message.payload))

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe(f"{PREFIX}#", qos=1)
    watcher.loop_start()
    scenario = Scenario(
        devices=8,
        seed=2,
        link=LinkPlan(loss=0.05, disconnect_mean_s=40),
        power=PowerPlan(loss_mean_s=60),
    )
    clock = ManualClock()
    simulation = Simulation(
        scenario,
        FACTORY_MODEL.read_bytes(),
        Ed25519PrivateKey.generate().public_key(),
        host="127.0.0.1",
        port=mosquitto.port,
        prefix=PREFIX,
        settings=DeviceSettings(batch_windows=5, features_every=0),
        clock=clock,
        reconnect_s=0.05,  # a step is a simulated second: reconnect within one
    )
    simulation.start()
    try:
        for _ in range(120):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.02)  # the network thread's turn: reconnections
        wait_for(lambda: simulation.progress().connected == 8, 10, "every device back")
        simulation.step()  # the last births
        summary = simulation.summary()
    finally:
        simulation.close()
    time.sleep(0.5)
    watcher.disconnect()
    watcher.loop_stop()
    assert summary.disconnects > 0 and summary.power_losses > 0, summary
    with lock:
        for device in scenario.device_ids():
            states = [json.loads(p)["state"] for p in seen.get((device, "status"), [])]
            assert states[0] == "online" and states[-1] in ("online", "offline"), states
            seqs = sorted(
                {
                    reading["seq"]
                    for payload in seen.get((device, "telemetry"), [])
                    for reading in json.loads(payload)["readings"]
                }
            )
            boots = [seq >> 32 for seq in seqs]
            assert len(seqs) > 60, (device, len(seqs))  # losses only delay most readings
            assert boots == sorted(boots)
        offline = [
            d for (d, kind), ps in seen.items() if kind == "status" and b"offline" in b"".join(ps)
        ]
        assert offline  # some last will was published
        rebooted = [
            d
            for (d, kind), ps in seen.items()
            if kind == "telemetry"
            and len({json.loads(p)["readings"][0]["seq"] >> 32 for p in ps}) > 1
        ]
        assert rebooted  # a device counted on in a new boot's range
