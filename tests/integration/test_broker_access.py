"""Per-device credentials and the ACL, enforced by a real Mosquitto started with the files
``vibewatch devices provision`` writes: a device cannot connect without its password,
cannot publish as another device nor read another device's downlink; a revoked device
cannot connect once the broker reloads. Behind TLS with the local CA's certificate
(``vibewatch devices broker-cert``): a client that trusts another CA fails, and the
ingest service works with its own credentials."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
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

from vibewatch.access import AccessFiles, CertificateAuthority
from vibewatch.cli import app
from vibewatch.protocol import DEFAULT_PREFIX
from vibewatch.testing.ingest import ServiceProcess, ingest_env, wait_for
from vibewatch.testing.load import telemetry
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, free_port, rows

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


# ---- TLS ----


CERT_PORT = [0]


@pytest.fixture
def tls_broker(tmp_path: Path, access: AccessFiles) -> Iterator[LocalMosquitto]:
    """The broker behind TLS with a certificate from the local CA, passwords and the ACL,
    and client certificates accepted as the user name (their common name)."""
    CERT_PORT[0] = free_port()
    result = CliRunner().invoke(
        app, ["devices", "broker-cert", "127.0.0.1", "--dir", str(access.directory), "--json"]
    )
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)
    tls = [
        f"cafile {files['ca']}",
        f"certfile {files['certificate']}",
        f"keyfile {files['key']}",
        "tls_version tlsv1.2",
    ]
    server = LocalMosquitto(
        workdir=tmp_path / "mosquitto-tls",
        anonymous=False,
        extra_conf="\n".join(
            [
                *tls,
                f"password_file {access.passwd}",
                f"acl_file {access.acl}",
                # a second listener where the client certificate is the credential
                f"listener {CERT_PORT[0]} 127.0.0.1",
                *tls,
                "require_certificate true",
                "use_identity_as_username true",
            ]
        ),
    )
    server.start()
    yield server
    server.stop()


def tls_client(
    broker: LocalMosquitto, user: str, pw: str | None, ca: Path, cert: Path | None = None
) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=str(ca),
        certfile=str(cert) if cert else None,
        keyfile=str(cert.with_suffix(".key")) if cert else None,
    )
    if pw is not None:
        client.username_pw_set(user, pw)
    return client


def connects(client: mqtt.Client, broker: LocalMosquitto, port: int | None = None) -> bool:
    """Whether ``client`` gets a successful CONNACK within 3 s (it is closed after)."""
    try:
        client.connect(broker.host, port or broker.port)
        client.loop_start()
        deadline = time.monotonic() + 3
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        return client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def test_tls_with_the_local_ca_connects_and_with_another_ca_fails(
    tls_broker: LocalMosquitto, access: AccessFiles, tmp_path: Path
) -> None:
    ca = access.directory / "ca" / "ca.crt"
    assert connects(tls_client(tls_broker, SERVICE, password(access, SERVICE), ca), tls_broker)
    other = CertificateAuthority(tmp_path / "other")
    other.issue("anything")
    trusting_other = ssl.create_default_context(cafile=str(other.certificate))
    with (
        socket.create_connection((tls_broker.host, tls_broker.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        trusting_other.wrap_socket(raw, server_hostname=tls_broker.host).close()
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    plain.username_pw_set(SERVICE, password(access, SERVICE))
    assert not connects(plain, tls_broker)
    # where the certificate is the credential: a device with its own connects with no
    # password, one without a certificate does not
    made = CliRunner().invoke(
        app, ["devices", "provision", "pump-1", "--cert", "--dir", str(access.directory), "--json"]
    )
    assert made.exit_code == 0, made.output
    (user,) = json.loads(made.output)["users"]
    cert = Path(user["certificate"])
    assert cert.with_suffix(".key") == Path(user["key"])
    assert connects(tls_client(tls_broker, "pump-1", None, ca, cert), tls_broker, CERT_PORT[0])
    without = tls_client(tls_broker, "pump-1", password(access, "pump-1"), ca)
    try:  # the broker ends the handshake, or the connection, of a client without one
        refused = not connects(without, tls_broker, CERT_PORT[0])
    except OSError:
        refused = True
    assert refused


def test_a_service_works_through_tls_with_its_own_credentials(
    tls_broker: LocalMosquitto,
    access: AccessFiles,
    influxdb: LocalInfluxDB,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """The ingest service through TLS, as user svc.test with its password from the file
    provisioning wrote (VIBEWATCH_MQTT_PASSWORD_FILE), while a device publishes through
    TLS with its own password."""
    env = ingest_env(
        mqtt_port=tls_broker.port,
        influx_url=influxdb.url,
        database=influx_db,
        data_home=tmp_path / "home",
        client_id="ingest-tls",
    )
    env |= {
        "VIBEWATCH_MQTT_USERNAME": SERVICE,
        "VIBEWATCH_MQTT_PASSWORD_FILE": str(access.directory / "services" / f"{SERVICE}.password"),
        "VIBEWATCH_MQTT_TLS_CA_FILE": str(access.directory / "ca" / "ca.crt"),
    }
    service = ServiceProcess(env, tmp_path)
    service.start()
    try:
        device = tls_client(
            tls_broker, "pump-1", password(access, "pump-1"), access.directory / "ca" / "ca.crt"
        )
        device.connect(tls_broker.host, tls_broker.port)
        device.loop_start()
        payload = telemetry("pump-1", 0, int(time.time() * 1000), n=3).encode()
        device.publish(f"{DEFAULT_PREFIX}pump-1/telemetry", payload, qos=1).wait_for_publish(5)
        wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 3, 20, "3 readings")
        device.loop_stop()
        device.disconnect()
    finally:
        assert service.stop() == 0
    assert "pump-1" in {
        row["device"] for row in rows(influxdb, influx_db, 'SELECT * FROM "reading"')
    }
