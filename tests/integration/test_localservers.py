"""The local servers behave like the real deployments they stand for.

InfluxDB keeps acknowledged writes across a clean restart and across SIGKILL;
Mosquitto with the no-loss settings keeps a persistent session's queued QoS 1
messages across a restart, where its default queue limit drops them; the
shipped broker config and docs carry the same settings; failures say what to do.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vibewatch.testing import servers
from vibewatch.testing.servers import (
    NO_LOSS_SETTINGS,
    ExecutableNotFoundError,
    LocalInfluxDB,
    LocalMosquitto,
    LocalServerError,
    find_executable,
    rows,
)

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "vw/v1/{dev}/telemetry"
T0_MS = 1_700_000_000_000
MS = 1_000_000
"""Nanoseconds a millisecond: lines are written in nanoseconds, as ingest writes them."""


# -- InfluxDB ------------------------------------------------------------------


def test_influx_restart_keeps_port_and_data(influxdb: LocalInfluxDB, influx_db: str) -> None:
    influxdb.write_lines(influx_db, f"vibration,device=d1 rms=0.5 {T0_MS * MS}\n")
    port, rpc_port, url = influxdb.port, influxdb.rpc_port, influxdb.url

    influxdb.restart()

    assert (influxdb.port, influxdb.rpc_port, influxdb.url) == (port, rpc_port, url)
    assert influxdb.running
    assert influxdb.count(influx_db, "vibration", "rms") == 1


def test_influx_sigkill_keeps_acknowledged_writes(influxdb: LocalInfluxDB, influx_db: str) -> None:
    written = 0
    for batch in range(50):
        lines = "".join(
            f"vibration,device=d{i % 7} rms={i / 10} {(T0_MS + batch * 1000 + i) * MS}\n"
            for i in range(40)
        )
        influxdb.write_lines(influx_db, lines)
        written += 40

    influxdb.kill()
    assert not influxdb.running
    influxdb.start()

    assert influxdb.count(influx_db, "vibration", "rms") == written
    assert influxdb.count(influx_db, "vibration", "rms", where="\"device\" = 'd0'") == 50 * 6


def test_influx_context_manager_stops_and_frees_ports(tmp_path: Path) -> None:
    with LocalInfluxDB(workdir=tmp_path / "influx") as server:
        assert server.running
        assert server.ping()
        assert server.port != server.rpc_port
        pid = server.pid
        assert pid is not None
    assert not server.running
    assert not server.ping()
    for port in (server.port, server.rpc_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_influx_helpers(influxdb: LocalInfluxDB) -> None:
    influxdb.create_database("with_rp", retention="1h")
    [series] = influxdb.query("SHOW RETENTION POLICIES", db="with_rp")
    durations = {row[0]: row[1] for row in series.values}
    assert durations["autogen"] == "1h0m0s"

    assert influxdb.count("with_rp", "nothing_here", "rms") == 0

    with pytest.raises(LocalServerError, match="unable to parse"):
        influxdb.write_lines("with_rp", "this is not line protocol\n")
    with pytest.raises(LocalServerError, match="error parsing query"):
        influxdb.query("SELEKT 1")
    with pytest.raises(LocalServerError, match="database not found"):
        influxdb.query('SELECT count("rms") FROM "m"', db="no_such_db")


def test_lines_in_nanoseconds_come_back_as_rows_in_milliseconds_with_their_tags(
    influxdb: LocalInfluxDB, influx_db: str
) -> None:
    influxdb.write_lines(
        influx_db,
        f"m,device=a,site=s x=1.5 {T0_MS * MS}\nm,device=b,site=s x=2.5 {(T0_MS + 1000) * MS}\n",
    )
    assert rows(influxdb, influx_db, "SELECT x FROM m GROUP BY device") == [
        {"time": T0_MS, "x": 1.5, "device": "a"},
        {"time": T0_MS + 1000, "x": 2.5, "device": "b"},
    ]
    [series] = influxdb.client(influx_db).query("SELECT count(x) FROM m WHERE site = 's'")
    assert series.values == [[0, 2]]


# -- Mosquitto -----------------------------------------------------------------


class PersistentSubscriber:
    """An MQTT 5 client with a persistent session, as ingest connects."""

    def __init__(self, broker: LocalMosquitto, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.payloads: list[bytes] = []
        self.session_present: bool | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None

    def connect(self) -> None:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self._connected.clear()
        client.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        client.loop_start()
        self._client = client
        assert self._connected.wait(10), "no CONNACK"

    def subscribe(self, topic: str) -> None:
        assert self._client is not None
        done = threading.Event()
        self._client.on_subscribe = lambda *args: done.set()
        self._client.subscribe(topic, qos=1)
        assert done.wait(10), "no SUBACK"

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def distinct(self) -> int:
        with self._lock:
            return len(set(self.payloads))

    def wait_for(self, expected: int, timeout: float = 30.0, settle: float = 1.0) -> int:
        """Wait until ``expected`` distinct messages arrived, or none for ``settle`` s."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.distinct()
            if now >= expected:
                return now
            if now != last:
                last, last_change = now, time.monotonic()
            elif now > 0 and time.monotonic() - last_change > settle:
                return now
            time.sleep(0.05)
        return self.distinct()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: object,
        props: object,
    ) -> None:
        self.session_present = flags.session_present
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.append(bytes(msg.payload))


def publish_qos1(broker: LocalMosquitto, count: int, device: str = "dev-1") -> None:
    """Publish ``count`` distinct QoS 1 messages and wait for every PUBACK."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{device}-pub",
        protocol=mqtt.MQTTv5,
    )
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(10), "publisher got no CONNACK"
        for start in range(0, count, 200):
            infos = [
                client.publish(TOPIC.format(dev=device), f'{{"seq":{i}}}'.encode(), qos=1)
                for i in range(start, min(start + 200, count))
            ]
            for info in infos:
                info.wait_for_publish(timeout=10)
                assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: LocalMosquitto) -> Iterator[PersistentSubscriber]:
    sub = PersistentSubscriber(mosquitto, "ingest-test")
    yield sub
    sub.disconnect()


def test_mosquitto_restart_keeps_queued_qos1_messages(
    mosquitto: LocalMosquitto, subscriber: PersistentSubscriber
) -> None:
    subscriber.connect()
    subscriber.subscribe(TOPIC.format(dev="+"))
    subscriber.disconnect()
    publish_qos1(mosquitto, 2000)
    port = mosquitto.port

    mosquitto.restart()

    assert mosquitto.port == port
    subscriber.connect()
    assert subscriber.session_present is True
    assert subscriber.wait_for(2000) == 2000


def test_default_queue_limit_drops_what_no_loss_settings_keep(tmp_path: Path) -> None:
    # Debian's packaged mosquitto.conf turns persistence on and leaves the
    # queue limits at their defaults: this is what the no-loss settings fix.
    with LocalMosquitto(workdir=tmp_path / "broker", settings={"persistence": "true"}) as broker:
        sub = PersistentSubscriber(broker, "ingest-test")
        sub.connect()
        sub.subscribe(TOPIC.format(dev="+"))
        sub.disconnect()
        publish_qos1(broker, 2000)
        sub.connect()
        try:
            received = sub.wait_for(2000)
        finally:
            sub.disconnect()
    assert 0 < received < 2000


def test_mosquitto_kill_and_start_reuse_the_port(
    mosquitto: LocalMosquitto, subscriber: PersistentSubscriber
) -> None:
    port = mosquitto.port
    mosquitto.kill()
    assert not mosquitto.running
    assert mosquitto.pid is None
    with socket.socket() as sock:
        assert sock.connect_ex((mosquitto.host, port)) != 0

    mosquitto.start()

    assert mosquitto.running
    assert mosquitto.port == port
    subscriber.connect()
    assert subscriber.session_present is False


def test_mosquitto_config_carries_the_settings(mosquitto: LocalMosquitto) -> None:
    lines = mosquitto.config_path.read_text().splitlines()
    for key, value in NO_LOSS_SETTINGS.items():
        assert f"{key} {value}" in lines
    assert f"listener {mosquitto.port} 127.0.0.1" in lines


# -- Shipped config and docs -----------------------------------------------------


def _conf_options(text: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.strip().partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


def test_deploy_config_and_docs_match_the_constant() -> None:
    conf = _conf_options((ROOT / "deploy" / "mosquitto.conf").read_text())
    docs = (ROOT / "docs" / "broker.md").read_text()
    for key, value in NO_LOSS_SETTINGS.items():
        assert conf.get(key) == [value], f"deploy/mosquitto.conf: {key}"
        assert re.search(rf"^\| `{key}` \| `{re.escape(value)}` \|", docs, re.M), (
            f"docs/broker.md table: {key}"
        )
    assert conf["persistence_location"] == ["/var/lib/mosquitto/"]


# -- Failures are clear ----------------------------------------------------------


@pytest.mark.parametrize(
    ("server_class", "package"), [(LocalMosquitto, "mosquitto"), (LocalInfluxDB, "influxdb")]
)
def test_missing_executable_names_the_debian_package(
    tmp_path: Path, server_class: type[LocalMosquitto | LocalInfluxDB], package: str
) -> None:
    server = server_class(workdir=tmp_path / "srv", executable=tmp_path / "not-installed")
    with pytest.raises(ExecutableNotFoundError, match=rf"apt-get install {package}\b"):
        server.start()
    assert not server.running


def test_missing_executable_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ExecutableNotFoundError, match="PATH or in /usr/sbin"):
        find_executable("mosquitto", override="vibewatch-no-such-binary")
    # Debian puts mosquitto in /usr/sbin, which is searched even when PATH lacks it.
    assert find_executable("mosquitto").startswith("/usr/")


def test_bad_config_fails_with_the_log_tail(tmp_path: Path) -> None:
    broker = LocalMosquitto(workdir=tmp_path / "broker", extra_conf="no_such_option 1")
    with pytest.raises(LocalServerError, match=r"exited with status \d+(.|\n)*no_such_option"):
        broker.start()
    assert not broker.running


def test_port_held_by_another_process_is_reported(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = LocalMosquitto(workdir=tmp_path / "broker", port=port)
        with pytest.raises(LocalServerError, match=f"port {port} is in use"):
            broker.start()
    assert not broker.running


def test_servers_left_running_are_stopped_at_exit(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto\n"
        "b = LocalMosquitto(workdir=Path(sys.argv[1]) / 'b'); b.start()\n"
        "i = LocalInfluxDB(workdir=Path(sys.argv[1]) / 'i'); i.start()\n"
        "print(b.pid, i.pid)\n"
    )
    package_root = Path(servers.__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(package_root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived its parent"
    assert "Saving in-memory database" in (tmp_path / "b" / "mosquitto.log").read_text()
