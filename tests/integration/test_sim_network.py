"""Many simulated devices' MQTT connections on one network thread, through real Mosquitto:
a thousand connect (paho's own select() loop stops at about 340), messages flow both ways,
a broken link publishes the last will and comes back with the device's birth message; a
refused connection is an error with the broker's reason code."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import Device, DeviceCapabilities, SlotDevice
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.errors import MqttError
from vibewatch.protocol import Kind, topic_for
from vibewatch.sim import DeviceLink, Fleet, ManualClock, Scenario
from vibewatch.sim.network import Network, raise_open_files_limit
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.servers import LocalMosquitto

PREFIX = "vw/v1/"
DEVICES = 1000


class Watcher:
    """Everything published under the prefix, by topic."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{PREFIX}#", qos=1)
        self.client.loop_start()

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_thousand_devices_share_one_network_thread(mosquitto: LocalMosquitto) -> None:
    assert raise_open_files_limit(4 * DEVICES) >= 2 * DEVICES
    watcher = Watcher(mosquitto.port)
    network = Network()
    network.start()
    links: dict[str, DeviceLink] = {}
    clock = ManualClock()
    fleet = Fleet(
        Scenario(devices=DEVICES),
        FACTORY_MODEL.read_bytes(),
        Ed25519PrivateKey.generate().public_key(),
        publish=lambda device, suffix, payload: links[device].publish(suffix, payload),
        clock=clock,
    )
    try:
        for device_id, device in fleet.devices.items():
            links[device_id] = DeviceLink(
                device_id, port=mosquitto.port, network=network, reconnect_s=0.2
            )
            links[device_id].connect(device.device)
            device.device.connected()
        assert network.connections == DEVICES
        assert threading.active_count() < 10  # not a thread per device
        clock.advance(10.0)
        assert fleet.run_due() == 10 * DEVICES  # a batch of telemetry each
        last = fleet.scenario.device_ids()[-1]
        wait_for(
            lambda: len(watcher.on(topic_for(PREFIX, last, Kind.TELEMETRY))) == 1,
            30,
            "the last device's telemetry",
        )
        # a command reaches its device, and the reply comes back
        first = fleet.scenario.device_ids()[0]
        command = {"id": "c-1", "t": clock.wall_ms(), "cmd": "set_threshold", "threshold": 2.5}
        watcher.client.publish(
            topic_for(PREFIX, first, Kind.CMD), json.dumps(command), qos=1
        ).wait_for_publish(10)
        wait_for(lambda: links[first].deliver() > 0, 10, "the command")
        reply_topic = topic_for(PREFIX, first, Kind.CMD_REPLY)
        wait_for(lambda: watcher.on(reply_topic), 10, "the reply")
        assert json.loads(watcher.on(reply_topic)[0])["outcome"] == "done"
        # a broken link: the last will, then the device is back with its birth message
        status = topic_for(PREFIX, first, Kind.STATUS)
        links[first].interrupt()
        wait_for(lambda: b"offline" in watcher.on(status)[-1], 10, "the last will")
        wait_for(lambda: links[first].connected, 10, "the reconnection")
        links[first].deliver()
        wait_for(lambda: b'"online"' in watcher.on(status)[-1], 10, "the birth message")
        # a dead device: the last will, and it stays away
        links[last].drop()
        wait_for(
            lambda: b"offline" in watcher.on(topic_for(PREFIX, last, Kind.STATUS))[-1],
            10,
            "the dead device's last will",
        )
        assert not links[last].connected
    finally:
        for link in links.values():
            link.close(timeout=1.0)
        network.stop()
        watcher.close()


def test_a_refused_connection_is_an_mqtt_error_with_its_reason_code(tmp_path: Path) -> None:
    slots = SlotDevice(
        Ed25519PrivateKey.generate().public_key(), DeviceCapabilities(sample_rate_hz=48_000)
    )
    slots.boot()
    slots.provision(FACTORY_MODEL.read_bytes())
    device = Device(
        slots, firmware="1.0.0", publish=lambda s, p: True, clock_ms=lambda: 0, wall_ms=lambda: 0
    )
    with LocalMosquitto(workdir=tmp_path / "broker", extra_conf="allow_anonymous false") as broker:
        link = DeviceLink("sim-0001", port=broker.port)
        with pytest.raises(MqttError) as caught:
            link.connect(device, timeout=10)
    assert caught.value.reason_code in (0x86, 0x87)  # bad user name or password / not authorized
    assert str(caught.value).startswith("sim-0001: the broker refused the connection: ")
