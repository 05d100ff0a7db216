"""Faults mid-stream: after each, every published point is in InfluxDB exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable

from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.load import DAY_MS, Background, telemetry_stream
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, rows

DEVICES = 40


def landed(influxdb: LocalInfluxDB, db: str) -> int:
    return influxdb.count(db, "reading", "score")


def stream_through(
    fault: Callable[[], None],
    *,
    ingest: ServiceProcess,
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    db: str,
    messages: int,
    rate: float,
) -> None:
    """Publish a paced stream, run ``fault`` once points land, check every point lands once."""
    stream = telemetry_stream(DEVICES, messages, t0=int(time.time() * 1000) - DAY_MS)
    job = Background(lambda: publisher.publish_all(stream, rate=rate))
    job.start()
    wait_for(lambda: landed(influxdb, db) > 2000, 30, "the stream to start landing")
    fault()
    job.result(120)
    points = 10 * messages
    wait_for(lambda: landed(influxdb, db) == points, 90, f"{points} points")
    assert ingest.stop() == 0
    assert landed(influxdb, db) == points


def test_influxdb_killed_for_20s_mid_stream(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    def outage() -> None:
        influxdb.kill()
        time.sleep(20)
        influxdb.start()

    ingest = start_ingest()
    stream_through(
        outage,
        ingest=ingest,
        publisher=publisher,
        influxdb=influxdb,
        db=influx_db,
        messages=2400,
        rate=80,
    )
    stats = rows(
        influxdb,
        influx_db,
        "SELECT last(points_spooled), last(points_replayed) FROM vibewatch_ingest",
    )
    assert stats[0]["last"] > 0
    assert stats[0]["last_1"] >= stats[0]["last"]
    assert "past the retry budget" in ingest.log()


def test_broker_restarted_mid_stream(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    def restart() -> None:
        mosquitto.stop()
        time.sleep(2)
        mosquitto.start()

    ingest = start_ingest()
    stream_through(
        restart,
        ingest=ingest,
        publisher=publisher,
        influxdb=influxdb,
        db=influx_db,
        messages=2000,
        rate=250,
    )
    assert publisher.failures > 0  # the publisher did see the broker go away
    assert ingest.log().count("MQTT connected") >= 2


def test_ingest_killed_with_sigkill_mid_stream(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest()

    def crash() -> None:
        ingest.kill()
        time.sleep(1)
        ingest.start()

    stream_through(
        crash,
        ingest=ingest,
        publisher=publisher,
        influxdb=influxdb,
        db=influx_db,
        messages=2000,
        rate=250,
    )
    assert ingest.starts == 2


def test_sigkill_while_spooling_keeps_the_spool(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest()
    influxdb.stop()
    stream = telemetry_stream(DEVICES, 400, t0=int(time.time() * 1000) - DAY_MS)
    publisher.publish_all(stream)
    wait_for(lambda: "past the retry budget" in ingest.log(), 30, "ingest to spool")
    time.sleep(1)
    ingest.kill()  # spooled batches were acknowledged: the broker will not send them again
    influxdb.start()
    ingest.start()
    wait_for(lambda: landed(influxdb, influx_db) == 4000, 60, "4000 points")
    assert "replaying" in ingest.log()
    assert ingest.stop() == 0


def test_two_processes_in_a_share_group_split_the_load(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    first = start_ingest("--group", "ingest", client_id="ingest-a")
    second = start_ingest("--group", "ingest", client_id="ingest-b")
    messages = 1500
    publisher.publish_all(telemetry_stream(DEVICES, messages, t0=int(time.time() * 1000) - DAY_MS))
    wait_for(lambda: landed(influxdb, influx_db) == 10 * messages, 60, "all points")
    assert first.stop() == 0
    assert second.stop() == 0
    assert landed(influxdb, influx_db) == 10 * messages
    per_instance = {
        row["instance"]: row["last"]
        for row in rows(
            influxdb, influx_db, "SELECT last(messages_in) FROM vibewatch_ingest GROUP BY instance"
        )
    }
    assert set(per_instance) == {"ingest-a", "ingest-b"}
    assert all(count > messages // 4 for count in per_instance.values()), per_instance
    assert sum(per_instance.values()) == messages  # each message was handled once
