"""A device installs a signed model through a real Mosquitto: the back end publishes the
retained job and answers the device's chunk requests; the device's downlink loses,
duplicates and reorders messages."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import Device, DeviceCapabilities, DeviceSettings, SlotDevice
from vibewatch.edge.ota import Manifest
from vibewatch.edge.vwm import decode_header
from vibewatch.protocol import (
    Kind,
    Limits,
    OtaChunk,
    OtaJob,
    OtaRequest,
    OtaRequestKind,
    Status,
    decode_message,
    topic_for,
)
from vibewatch.sim import DeviceLink, LinkFaults
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.models import reseal
from vibewatch.testing.servers import LocalMosquitto

ROOT = Path(__file__).resolve().parents[2]
BLOB = (ROOT / "models" / "factory" / "package" / "model.vwm").read_bytes()
HEADER = decode_header(BLOB)
PREFIX = "vw/v1/"


class BackEnd:
    """Publishes the job, serves chunk requests, records the device's reports."""

    def __init__(self, port: int, device: str, job: OtaJob, blob: bytes) -> None:
        self.device, self.job, self.blob = device, job, blob
        self.states: list[str] = []
        self.status: list[Status] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="back-end", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(
            [
                (topic_for(PREFIX, device, Kind.OTA_REQ), 1),
                (topic_for(PREFIX, device, Kind.STATUS), 1),
            ]
        )

    def publish_job(self) -> None:
        topic = topic_for(PREFIX, self.device, Kind.OTA_JOB)
        self.client.publish(topic, self.job.encode(), qos=1, retain=True).wait_for_publish(10)

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        kind = Kind.OTA_REQ if message.topic.endswith("/ota/req") else Kind.STATUS
        now = int(time.time() * 1000)
        decoded = decode_message(kind, self.device, message.payload, now_ms=now, limits=Limits())
        with self.lock:
            if isinstance(decoded, Status):
                self.status.append(decoded)
            elif isinstance(decoded, OtaRequest) and decoded.kind is OtaRequestKind.STATE:
                assert decoded.state is not None
                self.states.append(decoded.state.value)
            elif isinstance(decoded, OtaRequest):
                assert decoded.offset is not None and decoded.length is not None
                self.requests += 1
                data = self.blob[decoded.offset : decoded.offset + decoded.length]
                chunk = OtaChunk.for_job(self.device, decoded.job, decoded.offset, data)
                self.client.publish(
                    topic_for(PREFIX, self.device, Kind.OTA_CHUNK), chunk.encode(), qos=1
                )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_installs_a_signed_model_through_mosquitto_over_a_bad_link(
    mosquitto: LocalMosquitto,
) -> None:
    key = Ed25519PrivateKey.generate()
    v2 = bytearray(BLOB)
    struct.pack_into("<I", v2, 16, 2)  # the header's model version
    blob = reseal(v2)
    manifest = Manifest.for_blob(HEADER.model_id, 2, blob, chunk_size=512)
    job = OtaJob(
        device="pump-7",
        job="job-42",
        model_id=HEADER.model_id,
        model_version=2,
        size=manifest.size,
        sha256=manifest.sha256,
        chunk_size=512,
        signature=manifest.sign(key),
    )
    back_end = BackEnd(mosquitto.port, "pump-7", job, blob)
    slots = SlotDevice(
        key.public_key(), DeviceCapabilities(sample_rate_hz=HEADER.spec.sample_rate_hz)
    )
    slots.boot()
    slots.provision(BLOB)
    link = DeviceLink(
        "pump-7",
        port=mosquitto.port,
        faults=LinkFaults(loss=0.2, duplicate=0.2, reorder=0.2, seed=3),
    )
    start = time.monotonic()
    device = Device(
        slots,
        firmware="1.0.0",
        publish=link.publish,
        clock_ms=lambda: int((time.monotonic() - start) * 1000),
        wall_ms=lambda: int(time.time() * 1000),
        settings=DeviceSettings(ota_window=4, ota_timeout_ms=300, trial_ms=500),
    )
    link.connect(device)
    device.connected()
    back_end.publish_job()

    def done() -> bool:
        link.deliver()
        device.poll()
        with back_end.lock:
            return "installed" in back_end.states

    wait_for(done, 60, "the model to be installed")
    assert back_end.states == ["downloading", "verifying", "activated", "installed"]
    assert link.lost > 0 and back_end.requests > len(range(0, len(blob), 512))  # asked again
    device.connected()
    wait_for(lambda: len(back_end.status) == 2, 10, "the second status")
    assert back_end.status[0].model_version == 1
    assert back_end.status[1].model_version == 2
    link.drop()  # the connection is lost: the broker publishes the last will
    wait_for(lambda: len(back_end.status) == 3, 10, "the last will")
    assert back_end.status[2].state.value == "offline"
    back_end.close()
