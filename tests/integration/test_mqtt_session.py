"""The MQTT adapter both ways through real Mosquitto: QoS 1 publishing with retain, the
broker's refusals as MqttError with their reason codes, reconnection with resubscription."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vibewatch.errors import MqttError
from vibewatch.mqtt import AckToken, BrokerSettings, MqttSession
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.servers import LocalMosquitto


class Inbox:
    """Messages a session received, acknowledged as they come."""

    def __init__(self) -> None:
        self.messages: list[tuple[str | None, bytes]] = []
        self.session: MqttSession | None = None

    def __call__(self, topic: str | None, payload: bytes, token: AckToken | None) -> None:
        self.messages.append((topic, payload))
        if token is not None and self.session is not None:
            self.session.ack([token])


def subscriber(port: int, client_id: str, filters: list[str]) -> tuple[MqttSession, Inbox]:
    session = MqttSession(BrokerSettings(port=port, client_id=client_id), filters)
    inbox = Inbox()
    inbox.session = session
    session.start(inbox, timeout=10)
    return session, inbox


def test_a_retained_qos1_message_reaches_a_later_subscriber(mosquitto: LocalMosquitto) -> None:
    publisher = MqttSession(BrokerSettings(port=mosquitto.port, client_id="pub"))
    publisher.start(timeout=10)
    assert publisher.ready and publisher.connected
    publisher.publish("fleet/pump-1/job", b'{"v":1}', retain=True)  # returns on the PUBACK
    publisher.publish("fleet/pump-1/note", b"not kept")
    session, inbox = subscriber(mosquitto.port, "late", ["fleet/#"])
    try:
        wait_for(lambda: inbox.messages == [("fleet/pump-1/job", b'{"v":1}')], 10, "the retained")
        time.sleep(0.2)
        assert inbox.messages == [("fleet/pump-1/job", b'{"v":1}')]  # only the retained one
    finally:
        session.stop(end_session=True)
        publisher.stop(end_session=True)


def test_the_brokers_refusals_are_mqtt_errors_with_reason_codes(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite open/#\n")
    with LocalMosquitto(workdir=tmp_path / "acl-broker", extra_conf=f"acl_file {acl}") as broker:
        session = MqttSession(BrokerSettings(port=broker.port, client_id="acl"))
        session.start(timeout=10)
        try:
            session.publish("open/x", b"1")
            with pytest.raises(MqttError) as refused:
                session.publish("closed/x", b"1")
            assert refused.value.reason_code == 0x87
            assert "refused the message on 'closed/x': Not authorized" in str(refused.value)
            session.publish("open/y", b"2")  # the session goes on
        finally:
            session.stop()

    closed = "allow_anonymous false"
    with LocalMosquitto(workdir=tmp_path / "closed-broker", extra_conf=closed) as broker:
        session = MqttSession(BrokerSettings(port=broker.port, client_id="anon"), ["x/#"])
        started = time.monotonic()
        with pytest.raises(MqttError) as refused:
            session.start(lambda *_: None, timeout=20)
        assert time.monotonic() - started < 10  # at the CONNACK, not at the timeout
        assert refused.value.reason_code in (0x86, 0x87)
        assert "refused the connection as 'anon'" in str(refused.value)
        assert not session.connected


def test_reconnects_resubscribes_and_publishes_what_waited(mosquitto: LocalMosquitto) -> None:
    session, inbox = subscriber(mosquitto.port, "durable", ["back/#"])
    publisher = MqttSession(BrokerSettings(port=mosquitto.port, client_id="pub2"))
    publisher.start(timeout=10)
    try:
        mosquitto.stop()
        wait_for(lambda: not session.connected and not publisher.connected, 10, "the loss")
        done = threading.Event()

        def publish_while_down() -> None:
            publisher.publish("back/1", b"sent while the broker was down", timeout=60)
            done.set()

        thread = threading.Thread(target=publish_while_down)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # no PUBACK without a broker
        mosquitto.start()
        thread.join(60)
        assert done.is_set()
        wait_for(lambda: session.ready, 60, "the resubscription")
        wait_for(lambda: len(inbox.messages) == 1, 20, "the waiting message")
        publisher.publish("back/2", b"after")
        wait_for(lambda: len(inbox.messages) == 2, 20, "the next message")
        assert inbox.messages == [
            ("back/1", b"sent while the broker was down"),
            ("back/2", b"after"),
        ]
        assert session.connects >= 2
    finally:
        publisher.stop(end_session=True)
        session.stop(end_session=True)


def test_no_puback_is_a_timeout(mosquitto: LocalMosquitto) -> None:
    publisher = MqttSession(BrokerSettings(port=mosquitto.port, client_id="pub3"))
    publisher.start(timeout=10)
    mosquitto.stop()
    try:
        with pytest.raises(TimeoutError, match="did not acknowledge the message on 'a/b'"):
            publisher.publish("a/b", b"x", timeout=0.5)
    finally:
        publisher.stop()
        mosquitto.start()
