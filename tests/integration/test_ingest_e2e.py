"""Every ingested message type, end to end: published → queryable with exact values."""

from __future__ import annotations

import time
from collections.abc import Callable

from vibewatch.protocol import (
    AnomalyEvent,
    DeviceState,
    EventKind,
    Features,
    FeatureVector,
    Slots,
    SlotState,
    Status,
)
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.load import telemetry
from vibewatch.testing.servers import LocalInfluxDB, rows


def test_every_message_type_lands_with_exact_values(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest(VIBEWATCH_INGEST_SITE='Hall 3, line=A "north" 東京 Übergabe')
    now = int(time.time() * 1000) - 60_000
    tele = telemetry("pump-7", 100, now)
    event = AnomalyEvent(
        device="pump-7",
        seq=104,
        t=now + 4000,
        kind=EventKind.START,
        score=0.8125,
        threshold=0.5,
        model_id="ae-bearing",
        model_version=3,
    )
    features = Features(
        device="pump-7",
        spec="fs1-48k-1024-16b",
        vectors=(FeatureVector(seq=104, t=now + 4000, x=(0.1, -2.5, 1e-7, 123456.789)),),
    )
    status = Status(
        device="pump-7",
        state=DeviceState.ONLINE,
        t=now,
        firmware="1.4.2",
        model_id="ae-bearing",
        model_version=3,
        model_sha256="ab" * 32,
        capabilities=("ota", "raw"),
        slots=Slots(a=SlotState.ACTIVE, b=SlotState.EMPTY),
        uptime_s=3600,
    )
    offline = Status(device="fan-2", state=DeviceState.OFFLINE)
    for message, kind in ((tele, "telemetry"), (event, "event"), (features, "features")):
        publisher.publish(f"vw/v1/{message.device}/{kind}", message.encode())
    publisher.publish("vw/v1/pump-7/status", status.encode(), retain=True)
    before = int(time.time() * 1000)
    publisher.publish("vw/v1/fan-2/status", offline.encode(), retain=True)

    wait_for(lambda: influxdb.count(influx_db, "device_status", "state") == 2, 20, "all points")
    assert ingest.stop() == 0

    site = 'Hall 3, line=A "north" 東京 Übergabe'
    readings = rows(influxdb, influx_db, "SELECT * FROM reading GROUP BY *")
    assert len(readings) == 10
    for row, reading in zip(readings, tele.readings, strict=True):
        assert row["time"] == reading.t
        assert (row["score"], row["rms"], row["peak"], row["crest"], row["kurtosis"]) == (
            reading.score,
            reading.rms,
            reading.peak,
            reading.crest,
            reading.kurtosis,
        )
        assert row["seq"] == reading.seq
        assert (row["device"], row["site"]) == ("pump-7", site)

    (anomaly,) = rows(influxdb, influx_db, "SELECT * FROM anomaly GROUP BY *")
    assert (anomaly["score"], anomaly["threshold"], anomaly["model_version"], anomaly["seq"]) == (
        0.8125,
        0.5,
        3,
        104,
    )
    assert (anomaly["kind"], anomaly["model_id"], anomaly["device"]) == (
        "start",
        "ae-bearing",
        "pump-7",
    )

    (vector,) = rows(influxdb, influx_db, "SELECT * FROM features GROUP BY *")
    assert [vector[f"f{i}"] for i in range(4)] == [0.1, -2.5, 1e-7, 123456.789]
    assert (vector["spec"], vector["seq"]) == ("fs1-48k-1024-16b", 104)

    statuses = {
        row["device"]: row
        for row in rows(influxdb, influx_db, "SELECT * FROM device_status GROUP BY *")
    }
    online = statuses["pump-7"]
    assert (online["state"], online["online"], online["firmware"], online["model_sha256"]) == (
        "online",
        True,
        "1.4.2",
        "ab" * 32,
    )
    assert (online["capabilities"], online["slot_a"], online["slot_b"], online["uptime_s"]) == (
        "ota,raw",
        "active",
        "empty",
        3600,
    )
    assert (statuses["fan-2"]["state"], statuses["fan-2"]["online"]) == ("offline", False)
    offline_ms = statuses["fan-2"]["time"]
    assert isinstance(offline_ms, int)
    assert before - 1000 <= offline_ms <= int(time.time() * 1000)

    stats = rows(influxdb, influx_db, "SELECT last(messages_in) FROM vibewatch_ingest")
    assert stats[0]["last"] == 5


def test_redelivery_rewrites_the_same_points(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest()
    now = int(time.time() * 1000) - 60_000
    message = telemetry("pump-1", 0, now).encode()
    publisher.publish("vw/v1/pump-1/telemetry", message)
    wait_for(lambda: influxdb.count(influx_db, "reading", "score") == 10, 20, "first copy")
    for _ in range(3):
        publisher.publish("vw/v1/pump-1/telemetry", message)
    assert ingest.stop() == 0
    assert influxdb.count(influx_db, "reading", "score") == 10
    assert rows(influxdb, influx_db, "SELECT sum(seq) FROM reading")[0]["sum"] == sum(range(10))


def test_sigterm_flushes_the_open_batch(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest(
        VIBEWATCH_INGEST_BATCH_MAX_AGE="60", VIBEWATCH_INGEST_STATS_INTERVAL="3600"
    )
    now = int(time.time() * 1000) - 60_000
    for i in range(5):
        publisher.publish(f"vw/v1/d{i}/telemetry", telemetry(f"d{i}", 0, now).encode())
    time.sleep(0.5)
    assert influxdb.count(influx_db, "reading", "score") == 0  # still in the open batch
    assert ingest.stop() == 0
    assert influxdb.count(influx_db, "reading", "score") == 50
    assert "ingest stopped (clean)" in ingest.log()
