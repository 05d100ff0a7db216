"""Points are keyed by device time and sequence number, through the real InfluxDB.

Two readings of one device with the same time and different sequence numbers must stay
two points (a device clock that steps back, two windows in one millisecond), while a
redelivered message rewrites its own points and counts nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vibewatch.protocol import (
    AnomalyEvent,
    EventKind,
    Features,
    FeatureVector,
    Reading,
    Telemetry,
)
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, rows


def _reading(seq: int, t: int) -> Reading:
    return Reading(seq=seq, t=t, score=seq / 8, rms=0.5, peak=1.0, crest=2.0, kurtosis=3.0)


def _event(seq: int, t: int, kind: EventKind) -> AnomalyEvent:
    return AnomalyEvent(
        device="pump-1",
        seq=seq,
        t=t,
        kind=kind,
        score=seq / 4,
        threshold=0.5,
        model_id="ae",
        model_version=1,
    )


def test_same_time_different_sequence_numbers_are_different_points(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    ingest = start_ingest()
    t = int(time.time() * 1000) - 60_000
    # two readings with one time in one message, a third with that time in another message
    # (the clock stepped back), then the first message again (a QoS 1 redelivery)
    first = Telemetry(device="pump-1", readings=(_reading(1, t), _reading(2, t)))
    stepped_back = Telemetry(device="pump-1", readings=(_reading(900, t),))
    for message in (first, stepped_back, first):
        publisher.publish("vw/v1/pump-1/telemetry", message.encode())
    for message in (
        _event(5, t, EventKind.START),
        _event(6, t, EventKind.START),
        _event(5, t, EventKind.START),
    ):
        publisher.publish("vw/v1/pump-1/event", message.encode())
    vectors = Features(
        device="pump-1",
        spec="s1",
        vectors=(FeatureVector(seq=7, t=t, x=(1.0, 2.0)), FeatureVector(seq=8, t=t, x=(3.0, 4.0))),
    )
    for _ in range(2):
        publisher.publish("vw/v1/pump-1/features", vectors.encode())

    def landed() -> bool:
        counts = (
            len(rows(influxdb, influx_db, "SELECT seq FROM reading")),
            len(rows(influxdb, influx_db, "SELECT seq FROM anomaly")),
            len(rows(influxdb, influx_db, "SELECT seq FROM features")),
        )
        return counts == (3, 2, 2) and ingest.log().count("ingest: messages in 8,") > 0

    wait_for(landed, 20, "every point and a statistics line covering all 8 messages")
    assert ingest.stop() == 0

    readings = rows(influxdb, influx_db, "SELECT seq, score FROM reading")
    assert sorted((r["time"], r["seq"], r["score"]) for r in readings) == [
        (t, 1, 1 / 8),
        (t, 2, 2 / 8),
        (t, 900, 900 / 8),
    ]
    events = rows(influxdb, influx_db, "SELECT seq, score FROM anomaly")
    assert sorted((r["time"], r["seq"], r["score"]) for r in events) == [
        (t, 5, 5 / 4),
        (t, 6, 6 / 4),
    ]
    features = rows(influxdb, influx_db, "SELECT seq, f0, f1 FROM features")
    assert sorted((r["seq"], r["f0"], r["f1"]) for r in features) == [(7, 1.0, 2.0), (8, 3.0, 4.0)]
    # every message was accepted: nothing was rejected, nothing was dead-lettered
    assert ingest.deadletters() == []
    assert "ok 8, rejected 0" in ingest.log()
