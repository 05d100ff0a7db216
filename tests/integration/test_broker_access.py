"""Per-device credentials and the ACL, enforced by a real Mosquitto started with the files
``vibewatch devices provision`` writes: a device cannot connect without its password,
cannot publish as another device nor read another device's downlink; a revoked device
cannot connect once the broker reloads."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from vibewatch.access import AccessFiles
from vibewatch.cli import app
from vibewatch.protocol import DEFAULT_PREFIX
from vibewatch.testing.servers import LocalMosquitto

SERVICE = "svc.test"


class Client:
    """A paho MQTT 5 client that records what it receives and the reason codes it gets."""

    def __init__(self, broker: LocalMosquitto, user: str, password: str) -> None:
        self.connected = threading.Event()
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: list[ReasonCode] = []
        self._done = threading.Condition()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        client.username_pw_set(user, password)
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        client.on_publish = self._on_publish
        client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.extend(codes)
        self.client = client
        client.connect(broker.host, broker.port)
        client.loop_start()

    def _on_connect(self, c: object, u: object, f: object, code: ReasonCode, p: object) -> None:
        self.connack = code
        self.connected.set()

    def _on_publish(self, c: object, u: object, mid: int, code: ReasonCode, p: object) -> None:
        with self._done:
            self.acks[mid] = code
            self._done.notify_all()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1, properties=Properties(3))
        with self._done:
            assert self._done.wait_for(lambda: info.mid in self.acks, 5), topic
            return self.acks[info.mid]

    def subscribe(self, topic: str) -> ReasonCode:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 5
        while len(self.subacks) == before:
            assert time.monotonic() < deadline, topic
            time.sleep(0.01)
        return self.subacks[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def access(tmp_path: Path) -> AccessFiles:
    files = AccessFiles(tmp_path / "broker-access", DEFAULT_PREFIX)
    files.provision(["pump-1", "pump-2", SERVICE])
    return files


@pytest.fixture
def broker(tmp_path: Path, access: AccessFiles) -> Iterator[LocalMosquitto]:
    server = LocalMosquitto(
        workdir=tmp_path / "mosquitto",
        anonymous=False,
        extra_conf=f"password_file {access.passwd}\nacl_file {access.acl}\n",
    )
    server.start()
    yield server
    server.stop()


def password(access: AccessFiles, user: str) -> str:
    folder = "services" if "." in user else "devices"
    return (access.directory / folder / f"{user}.password").read_text().strip()


def connect(
    broker: LocalMosquitto, access: AccessFiles, user: str, pw: str | None = None
) -> Client:
    client = Client(broker, user, password(access, user) if pw is None else pw)
    assert client.connected.wait(5), user
    return client


def test_a_device_connects_only_with_its_own_password(
    broker: LocalMosquitto, access: AccessFiles
) -> None:
    good = connect(broker, access, "pump-1")
    assert good.connack is not None and not good.connack.is_failure
    good.close()
    wrong = connect(broker, access, "pump-1", password(access, "pump-2"))
    assert wrong.connack is not None and wrong.connack.is_failure
    wrong.close()
    stranger = connect(broker, access, "pump-9", "guess")
    assert stranger.connack is not None and stranger.connack.is_failure
    stranger.close()


def test_a_device_publishes_only_as_itself_and_reads_only_its_own_downlink(
    broker: LocalMosquitto, access: AccessFiles
) -> None:
    service = connect(broker, access, SERVICE)
    assert not service.subscribe(f"{DEFAULT_PREFIX}#").is_failure
    one, two = connect(broker, access, "pump-1"), connect(broker, access, "pump-2")
    try:
        # uplink: its own topic passes, another device's is refused
        assert not one.publish(f"{DEFAULT_PREFIX}pump-1/telemetry", b"own").is_failure
        refused = one.publish(f"{DEFAULT_PREFIX}pump-2/telemetry", b"forged")
        assert refused.getName() == "Not authorized"
        assert one.publish(f"{DEFAULT_PREFIX}pump-1/cmd", b"to itself").is_failure  # downlink
        # downlink: it reads its own; subscribing to another's or to all (the broker may
        # grant it) delivers nothing of the others
        assert not one.subscribe(f"{DEFAULT_PREFIX}pump-1/cmd").is_failure
        one.subscribe(f"{DEFAULT_PREFIX}pump-2/cmd")
        one.subscribe(f"{DEFAULT_PREFIX}+/cmd")
        assert not two.subscribe(f"{DEFAULT_PREFIX}pump-2/cmd").is_failure
        assert not service.publish(f"{DEFAULT_PREFIX}pump-2/cmd", b"for two").is_failure
        assert not service.publish(f"{DEFAULT_PREFIX}pump-1/cmd", b"for one").is_failure
        deadline = time.monotonic() + 5
        while not (one.messages and two.messages) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # anything more would be a leak: give it the time to show up
        assert set(one.messages) == {(f"{DEFAULT_PREFIX}pump-1/cmd", b"for one")}
        assert two.messages == [(f"{DEFAULT_PREFIX}pump-2/cmd", b"for two")]
        assert (f"{DEFAULT_PREFIX}pump-1/telemetry", b"own") in service.messages
        assert all(payload != b"forged" for _, payload in service.messages)
    finally:
        for client in (one, two, service):
            client.close()


def test_a_revoked_device_cannot_connect_after_the_broker_reloads(
    broker: LocalMosquitto, access: AccessFiles
) -> None:
    old = password(access, "pump-2")
    result = CliRunner().invoke(
        app, ["devices", "revoke", "pump-2", "--dir", str(access.directory), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "Reloading config" not in broker.log_tail(40) and time.monotonic() < deadline:
        time.sleep(0.05)
    revoked = connect(broker, access, "pump-2", old)
    assert revoked.connack is not None and revoked.connack.is_failure
    revoked.close()
    still = connect(broker, access, "pump-1")
    assert still.connack is not None and not still.connack.is_failure
    still.close()
