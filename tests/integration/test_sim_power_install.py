"""Power lost in the middle of model installs, through real Mosquitto: a back end publishes
a signed job to every simulated device and serves the chunks; ``[power] during_install = 1``
cuts every install's power once, during the download, at verification or in the trial.
Each device boots again with what its storage holds and ends with the new model installed
and confirmed, or, cut during its trial, back on the previous model with the new one
marked invalid: never without a valid model, and still scoring windows, its sequence
numbers counting on from a new boot."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.ota import Manifest
from vibewatch.edge.vwm import decode_header
from vibewatch.protocol import Kind, OtaChunk, OtaJob, topic_for
from vibewatch.sim import ManualClock, PowerPlan, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.models import reseal
from vibewatch.testing.servers import LocalMosquitto

PREFIX = "vw/v1/"
BLOB = FACTORY_MODEL.read_bytes()
HEADER = decode_header(BLOB)
JOB = "job-2"
#: The ota/req states a device reports for the job, by where its power went.
REPORTS = {
    "download": ["downloading", "downloading", "verifying", "activated", "installed"],
    "verify": ["downloading", "verifying", "downloading", "verifying", "activated", "installed"],
    "trial": ["downloading", "verifying", "activated", "rolled_back"],
}


class FleetBackEnd:
    """Publishes each device's retained job, serves the chunk requests of every device,
    records what the devices publish."""

    def __init__(self, port: int, blob: bytes) -> None:
        self.blob = blob
        self.lock = threading.Lock()
        self.reports: dict[str, list[str]] = {}  # without QoS 1 redeliveries
        self.status: dict[str, list[dict[str, object]]] = {}
        self.seqs: dict[str, list[int]] = {}
        self.seen: set[tuple[str, int, str]] = set()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="back-end", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{PREFIX}#", qos=1)

    def publish_job(self, job: OtaJob) -> None:
        topic = topic_for(PREFIX, job.device, Kind.OTA_JOB)
        self.client.publish(topic, job.encode(), qos=1, retain=True).wait_for_publish(10)

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        _, _, device, kind = message.topic.split("/", 3)
        if kind not in ("ota/req", "status", "telemetry"):
            return
        body = json.loads(message.payload)
        with self.lock:
            if kind == "status":
                self.status.setdefault(device, []).append(body)
            elif kind == "telemetry":
                self.seqs.setdefault(device, []).extend(r["seq"] for r in body["readings"])
            elif body["kind"] == "state":
                assert body["job"] == JOB
                report = (device, body["t"], body["state"])
                if report not in self.seen:  # sent again after a reconnection
                    self.seen.add(report)
                    self.reports.setdefault(device, []).append(body["state"])
            else:
                offset, length = body["offset"], body["length"]
                data = self.blob[offset : offset + length]
                chunk = OtaChunk.for_job(device, body["job"], offset, data)
                topic = topic_for(PREFIX, device, Kind.OTA_CHUNK)
                self.client.publish(topic, chunk.encode(), qos=1)

    def ended(self, device: str) -> bool:
        with self.lock:
            return self.reports.get(device, [""])[-1] in ("installed", "rolled_back")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_power_lost_mid_install_resumes_or_falls_back(
    mosquitto: LocalMosquitto, manual_simulation: Callable[..., tuple[Simulation, ManualClock]]
) -> None:
    key = Ed25519PrivateKey.generate()
    v2 = bytearray(BLOB)
    struct.pack_into("<I", v2, 16, 2)  # the header's model version
    blob = reseal(v2)
    manifest = Manifest.for_blob(HEADER.model_id, 2, blob, chunk_size=256)
    signature = manifest.sign(key)
    # seed 3: the six installs lose power twice in each of the three places
    scenario = Scenario(devices=6, seed=3, power=PowerPlan(during_install=1.0))
    devices = scenario.device_ids()
    back_end = FleetBackEnd(mosquitto.port, blob)
    simulation, clock = manual_simulation(
        scenario,
        blob=BLOB,
        public_key=key.public_key(),
        prefix=PREFIX,
        settings=DeviceSettings(batch_windows=5, features_every=0, trial_ms=20_000),
    )

    def step() -> None:
        clock.advance(1.0)
        simulation.step()
        time.sleep(0.02)  # the network thread's turn: chunks, reconnections

    simulation.start()
    try:
        for _ in range(5):
            step()  # windows of the first boot
        for device in devices:
            back_end.publish_job(
                OtaJob(
                    device=device,
                    job=JOB,
                    model_id=manifest.model_id,
                    model_version=2,
                    size=manifest.size,
                    sha256=manifest.sha256,
                    chunk_size=manifest.chunk_size,
                    signature=signature,
                )
            )
        ota_seen: set[str] = set()
        for _ in range(300):
            step()
            progress = simulation.progress()
            ota_seen |= set(progress.ota)
            assert sum(progress.ota.values()) <= len(devices)
            if all(back_end.ended(device) for device in devices):
                break
        assert {"downloading", "trial"} <= ota_seen  # the progress line shows the installs
        assert "OTA idle" in simulation.progress().line()
        for _ in range(20):
            step()  # windows after the install
        wait_for(lambda: simulation.progress().connected == 6, 10, "every device connected")
        summary = simulation.summary()
        states = {d: simulation.fleet.devices[d].slots.state for d in devices}
        active = {d: simulation.fleet.devices[d].slots.active_blob for d in devices}
    finally:
        simulation.close()
    time.sleep(0.5)
    back_end.close()

    assert summary.install_power_losses == summary.power_losses == 6, summary
    new, old = hashlib.sha256(blob).hexdigest(), hashlib.sha256(BLOB).hexdigest()
    points = set()
    with back_end.lock:
        for device in devices:
            reports = back_end.reports.get(device)
            point = next((p for p, r in REPORTS.items() if r == reports), None)
            assert point is not None, (device, reports)
            points.add(point)
            state = states[device]
            slots = {slot.state: slot for slot in state.slots.values()}
            if point == "trial":  # the boot fell back; the new model is not tried again
                assert state.model_version == 1 and active[device] == BLOB
                assert state.last_event == "rolled_back"
                assert slots["invalid"].version == 2 and slots["invalid"].sha256 == new
            else:
                assert state.model_version == 2 and active[device] == blob
                assert state.last_event == "confirmed"
                assert slots["standby"].version == 1 and slots["standby"].sha256 == old
            assert state.state == "idle"
            births = [s for s in back_end.status[device] if s["state"] == "online"]
            assert len(births) >= 2  # the first boot's, the second's: on the factory model
            assert {birth["model_version"] for birth in births} == {1}, births
            seqs = back_end.seqs[device]
            assert seqs == sorted(seqs), device  # counting on across the reboot
            boots = sorted({seq >> 32 for seq in seqs})
            assert len(boots) == 2, (device, boots)  # one power loss: a second boot
            after = [seq for seq in seqs if seq >> 32 == boots[-1]]
            assert len(after) >= 20, (device, len(after))  # still scoring windows
    assert points == set(REPORTS)
