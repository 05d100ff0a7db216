"""The load generator and the ingest harness of vibewatch.testing, against a real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from vibewatch.protocol import Limits, Telemetry
from vibewatch.testing.ingest import (
    Publisher,
    ServiceProcess,
    ingest_env,
    wait_for,
)
from vibewatch.testing.load import (
    DAY_MS,
    Background,
    LoadGenerator,
    LoadJob,
    LoadProcess,
    telemetry,
    telemetry_stream,
)
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, LocalServerError, rows


class Listener:
    """Subscribes to every topic under a prefix and keeps what arrives."""

    def __init__(self, broker: LocalMosquitto, prefix: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_connect = lambda c, *_: c.subscribe(f"{prefix}#", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = self._on_message
        client.connect(broker.host, broker.port)
        client.loop_start()
        self._client = client
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def readings(self) -> set[tuple[str, int, int, float]]:
        """(device, seq, t, score) of every reading received."""
        with self._lock:
            messages = list(self.messages)
        return readings_of(messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def readings_of(messages: list[tuple[str, bytes]]) -> set[tuple[str, int, int, float]]:
    out = set()
    now = int(time.time() * 1000)
    for topic, payload in messages:
        device = topic.split("/")[-2]
        for r in Telemetry.decode(payload, device, now_ms=now, limits=Limits()).readings:
            out.add((device, r.seq, r.t, r.score))
    return out


@pytest.fixture
def listener(mosquitto: LocalMosquitto) -> Iterator[Listener]:
    sub = Listener(mosquitto, "load/")
    yield sub
    sub.close()


T0 = int(time.time() * 1000) - DAY_MS


# -- the load generator -----------------------------------------------------------------


def test_generator_publishes_exactly_the_readings_of_the_stream(
    mosquitto: LocalMosquitto, listener: Listener
) -> None:
    stream = telemetry_stream(13, 600, t0=T0, prefix="load/")
    with LoadGenerator(mosquitto.port, window=50) as load:
        report = load.run(stream)
    assert (report.messages, report.acked, report.failed) == (600, 600, 0)
    assert (report.offline, report.resent) == (0, 0)
    assert report.first <= report.last <= report.acked_at
    assert load.published == 600
    wait_for(lambda: listener.count() >= 600, 10, "every message at the listener")
    assert listener.count() == 600
    assert listener.readings() == readings_of(stream)
    assert len(listener.readings()) == 6000


def test_a_paced_run_takes_as_long_as_its_rate_says(
    mosquitto: LocalMosquitto, listener: Listener
) -> None:
    stream = telemetry_stream(5, 120, t0=T0, prefix="load/")
    with LoadGenerator(mosquitto.port) as load:
        report = load.run(stream, rate=200)
    assert report.acked == 120
    # paced in bursts of rate / 20 = 10 messages: the last burst is due 110 / 200 s in
    assert report.last - report.first >= 110 / 200
    wait_for(lambda: listener.count() == 120, 10, "every message")


def test_a_run_in_the_background_and_one_in_its_own_process(
    mosquitto: LocalMosquitto, listener: Listener
) -> None:
    job = LoadJob(port=mosquitto.port, devices=4, messages=80, t0=T0, prefix="load/p/")
    process = LoadProcess(job)
    try:
        process.wait_ready(60)
        process.go()
        report = process.result(60)
    finally:
        process.close()
    assert (report.acked, report.failed) == (80, 0)
    with LoadGenerator(mosquitto.port, client_id="load-2") as load:
        run = load.start(telemetry_stream(4, 40, t0=T0, prefix="load/t/"))
        assert run.result(60).acked == 40
    wait_for(lambda: listener.count() == 120, 10, "every message")
    expected = telemetry_stream(4, 80, t0=T0, prefix="load/p/")
    expected += telemetry_stream(4, 40, t0=T0, prefix="load/t/")
    assert listener.readings() == readings_of(expected)


def test_unacknowledged_messages_count_as_failed(tmp_path: Path) -> None:
    broker = LocalMosquitto(workdir=tmp_path / "broker")
    broker.start()
    load = LoadGenerator(broker.port)
    load.connect()
    try:
        broker.stop()
        wait_for(lambda: not load.connected, 10, "the generator to see the broker go")
        report = load.run(telemetry_stream(2, 5, t0=T0), timeout=0.5)
    finally:
        load.close()
    assert (report.acked, report.failed, report.offline) == (0, 5, 5)


def test_publisher_publishes_again_until_a_restarted_broker_acknowledges(
    mosquitto: LocalMosquitto,
) -> None:
    publisher = Publisher(mosquitto.port)
    try:
        mosquitto.stop()
        job = Background(
            lambda: publisher.publish("vw/v1/d/telemetry", telemetry("d", 0, T0).encode())
        )
        job.start()
        time.sleep(1.0)
        mosquitto.start()
        job.result(30)
        assert publisher.published == 1
        assert publisher.failures >= 1
    finally:
        publisher.close()


def test_background_returns_the_value_or_raises_the_error() -> None:
    ok = Background(lambda: 42)
    ok.start()
    assert ok.result(5) == 42

    def fail() -> None:
        raise ValueError("inside")

    bad = Background(fail)
    bad.start()
    with pytest.raises(ValueError, match="inside"):
        bad.result(5)


# -- the ingest harness -----------------------------------------------------------------


def test_ingest_process_starts_ready_stops_and_restarts(
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    env = ingest_env(
        mqtt_port=mosquitto.port,
        influx_url=influxdb.url,
        database=influx_db,
        data_home=tmp_path / "home",
        client_id="harness",
    )
    ingest = ServiceProcess(env, tmp_path, name="svc")
    ingest.start()
    assert ingest.running and ingest.starts == 1
    assert "MQTT subscribed:" in ingest.log()  # READY=1 came after the SUBACK
    # ready means subscribed: a message published now is not lost
    publisher.publish("vw/v1/pump-1/telemetry", telemetry("pump-1", 0, T0).encode())
    publisher.publish("vw/v1/pump-1/telemetry", b"not json")
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10, 20, "the readings")
    wait_for(lambda: len(ingest.deadletters()) == 1, 20, "the bad message")
    assert ingest.deadletter_path == tmp_path / "home" / "deadletter.jsonl"
    assert ingest.deadletters()[0]["topic"] == "vw/v1/pump-1/telemetry"
    assert ingest.stop() == 0
    assert not ingest.running
    assert ingest.peak_rss_mb > 0
    first_log = ingest.log_path

    ingest.start()
    assert ingest.starts == 2 and ingest.log_path != first_log
    assert first_log.exists()
    ingest.kill()
    assert not ingest.running
    assert len(rows(influxdb, influx_db, "SELECT score FROM reading")) == 10


def test_ingest_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    env = ingest_env(
        mqtt_port=1,
        influx_url="http://127.0.0.1:1",
        database="x",
        data_home=tmp_path / "home",
        client_id="broken",
        settings={"VIBEWATCH_INGEST_BATCH_MAX_AGE": "soon"},
    )
    ingest = ServiceProcess(env, tmp_path)
    with pytest.raises(LocalServerError, match=r"exited with status [1-9](.|\n)*BATCH_MAX_AGE"):
        ingest.start()
    assert not ingest.running


def test_ingest_started_without_waiting_is_waited_for_on_request(
    mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    env = ingest_env(
        mqtt_port=mosquitto.port,
        influx_url="http://127.0.0.1:1",
        database="x",
        data_home=tmp_path / "home",
        client_id="no-wait",
    )
    ingest = ServiceProcess(env, tmp_path)
    ingest.start(wait=False)
    assert ingest.running
    with pytest.raises(LocalServerError, match=r"still runs after 0\.2s"):
        ingest.wait(0.2)
    assert ingest.running
    # a SIGTERM before the service set up its handlers would kill it: wait for them
    wait_for(lambda: "MQTT " in ingest.log(), 30, "the service to start")
    assert ingest.stop() == 0
    assert ingest.wait(1) == 0
