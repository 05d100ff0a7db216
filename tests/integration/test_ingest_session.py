"""The ingest process and its broker session: subscriptions that follow the configuration,
shutdown with InfluxDB down, session takeover, an unreachable broker, cleared status."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vibewatch.protocol import DeviceState, Status
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.load import DAY_MS, Background, telemetry_stream
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, free_port, rows


def queued_for(port: int, client_id: str, quiet: float = 2.0) -> int:
    """Messages the broker still holds for ``client_id``'s session (resumed, then ended)."""
    received = 0
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal received
        with lock:
            received += 1

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    last, deadline = -1, time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(quiet)
        with lock:
            if received == last:
                break
            last = received
    client.disconnect()
    client.loop_stop()
    return received


def received(ingest: ServiceProcess) -> int:
    """Messages the process received, from the summary it logged when it stopped."""
    found = re.findall(r"ingest stopped .*?messages in (\d+),", ingest.log())
    assert found, ingest.log()
    return int(found[-1])


def test_sigterm_while_influxdb_is_down_spools_and_acknowledges_everything(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest(client_id="ingest-term")
    influxdb.stop()
    messages = 2500
    stream = telemetry_stream(25, messages, t0=int(time.time() * 1000) - DAY_MS)
    job = Background(lambda: publisher.publish_all(stream, rate=1000))
    job.start()
    wait_for(lambda: re.search(r"messages in [1-9]\d{2,},", ingest.log()) is not None, 30, "flow")
    # SIGTERM while messages keep arriving: what arrives during the shutdown is taken too
    assert ingest.stop() == 0, ingest.log()
    assert "ingest stopped (clean)" in ingest.log()
    job.result(60)
    taken = received(ingest)
    # every message the process received was spooled and acknowledged: the broker holds
    # exactly the ones it never delivered
    assert queued_for(mosquitto.port, "ingest-term") == messages - taken
    # ...and the spool holds them all: the next start writes every point it took
    influxdb.start()
    again = start_ingest(
        client_id="ingest-term-2", VIBEWATCH_DATA_HOME=ingest.env["VIBEWATCH_DATA_HOME"]
    )
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10 * taken, 60, "replay")
    assert again.stop() == 0


def test_joining_a_group_drops_the_plain_subscription(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    first = start_ingest(client_id="member-a")
    assert first.stop() == 0
    # the same client id, now in a group with a second process: the load must be split,
    # not delivered twice to member-a through the plain subscription its session kept
    a = start_ingest(
        "--group", "g1", client_id="member-a", VIBEWATCH_DATA_HOME=first.env["VIBEWATCH_DATA_HOME"]
    )
    b = start_ingest("--group", "g1", client_id="member-b")
    assert "MQTT unsubscribed from vw/v1/+/telemetry" in a.log()
    messages = 400
    publisher.publish_all(telemetry_stream(20, messages, t0=int(time.time() * 1000) - DAY_MS))
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10 * messages, 30, "points")
    assert a.stop() == 0
    assert b.stop() == 0
    assert received(a) + received(b) == messages
    assert received(a) > 0
    assert received(b) > 0


def test_leaving_a_group_drops_the_shared_subscription(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    a = start_ingest("--group", "g1", client_id="member-a")
    b = start_ingest("--group", "g1", client_id="member-b")
    assert b.stop() == 0
    # member-b comes back alone: its session must leave the group, or the broker keeps
    # handing it a share of the group's messages besides the plain stream
    alone = start_ingest(client_id="member-b", VIBEWATCH_DATA_HOME=b.env["VIBEWATCH_DATA_HOME"])
    assert "MQTT unsubscribed from $share/g1/vw/v1/+/telemetry" in alone.log()
    messages = 300
    publisher.publish_all(telemetry_stream(20, messages, t0=int(time.time() * 1000) - DAY_MS))
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10 * messages, 30, "points")
    wait_for(lambda: "messages in 300," in alone.log(), 10, "the plain stream")
    assert alone.stop() == 0
    assert a.stop() == 0
    assert received(a) == messages  # the whole group stream, no share lost to member-b
    assert received(alone) == messages
    assert queued_for(mosquitto.port, "member-b") == 0


def test_retiring_a_group_member_drains_its_queue_and_ends_its_session(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    a = start_ingest("--group", "g1", client_id="member-a")
    b = start_ingest("--group", "g1", client_id="member-b")
    assert b.stop() == 0
    t0 = int(time.time() * 1000) - DAY_MS
    messages = 200
    # the broker queues member-b's share of these while it is away
    publisher.publish_all(telemetry_stream(20, messages, t0=t0))
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") > 0, 20, "member-a's share")
    retired = start_ingest(
        "--group",
        "g1",
        "--retire",
        client_id="member-b",
        VIBEWATCH_DATA_HOME=b.env["VIBEWATCH_DATA_HOME"],
        wait=False,
    )
    assert retired.wait(60) == 0, retired.log()
    assert 0 < received(retired) < messages
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10 * messages, 30, "points")
    # the session is gone: later messages all go to member-a, none is queued for member-b
    publisher.publish_all(telemetry_stream(20, 100, t0=t0 + 3_600_000))
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10 * 300, 30, "all to a")
    assert a.stop() == 0
    assert received(a) + received(retired) == 300
    assert queued_for(mosquitto.port, "member-b") == 0


def test_two_processes_with_one_client_id_are_told_why_they_keep_disconnecting(
    start_ingest: Callable[..., ServiceProcess],
) -> None:
    a = start_ingest(client_id="same-id")
    b = start_ingest(client_id="same-id", wait=False)
    hint = "another client is connecting with the client id 'same-id'"
    wait_for(lambda: hint in a.log() or hint in b.log(), 30, "the takeover diagnosis")
    assert "mqtt.client_id" in a.log() + b.log()
    b.kill()
    a.kill()


def test_an_unreachable_broker_is_reported_at_once(
    start_ingest: Callable[..., ServiceProcess],
) -> None:
    port = free_port()
    ingest = start_ingest(VIBEWATCH_MQTT_PORT=str(port), wait=False)
    wait_for(
        lambda: f"cannot connect to the MQTT broker at 127.0.0.1:{port}: " in ingest.log(),
        5,
        "the connection error",
    )
    assert "Connection refused" in ingest.log()
    assert ingest.stop() == 0


def test_an_empty_retained_status_clears_it_without_a_rejection(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest()
    status = Status(device="old-pump", state=DeviceState.OFFLINE)
    publisher.publish("vw/v1/old-pump/status", status.encode(), retain=True)
    publisher.publish("vw/v1/old-pump/status", b"", retain=True)  # decommissioned
    wait_for(lambda: "cleared" in ingest.log(), 20, "the cleared status")
    assert ingest.stop() == 0
    assert "retained status of device 'old-pump' cleared" in ingest.log()
    assert ingest.deadletters() == []
    assert "ok 1, rejected 0" in ingest.log()
    assert len(rows(influxdb, influx_db, "SELECT state FROM device_status")) == 1
