"""Bad input of every kind is rejected with its reason; good messages beside it all land."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.load import telemetry
from vibewatch.testing.servers import LocalInfluxDB, rows

NOW = int(time.time() * 1000) - 60_000
READING = {"seq": 1, "t": NOW, "score": 0.1, "rms": 0.2, "peak": 0.6, "crest": 3.0, "kurtosis": 3.1}
STATUS = {
    "state": "online",
    "t": NOW,
    "firmware": "1.0.0",
    "model_id": "ae",
    "model_version": 1,
    "model_sha256": "0" * 64,
}
EVENT = {
    "seq": 1,
    "t": NOW,
    "kind": "start",
    "score": 0.9,
    "threshold": 0.5,
    "model_id": "ae",
    "model_version": 1,
}


def tele(**changes: object) -> bytes:
    return json.dumps({"readings": [{**READING, **changes}]}).encode()


def raw_reading(text: str) -> bytes:
    """A telemetry payload whose score is given as raw JSON text."""
    marker = 12345.5
    payload = tele(score=marker)
    assert payload.count(b"12345.5") == 1
    return payload.replace(b"12345.5", text.encode())


T = "vw/v1/dev-1/telemetry"
CASES: list[tuple[str, str, bytes]] = [
    ("bad_json", T, b"{not json"),
    ("bad_json", T, b""),
    ("not_object", T, b"[1, 2, 3]"),
    ("bad_encoding", T, b'{"readings": "\xff\xfe"}'),
    ("missing_field", T, b"{}"),
    (
        "missing_field",
        T,
        json.dumps({"readings": [{k: v for k, v in READING.items() if k != "rms"}]}).encode(),
    ),
    ("wrong_type", T, json.dumps({"readings": "many"}).encode()),
    ("wrong_type", T, tele(score="0.5")),
    ("wrong_type", T, tele(seq=True)),
    ("wrong_type", T, tele(seq=1.5)),
    ("wrong_type", T, tele(rms=None)),
    ("non_finite", T, raw_reading("NaN")),
    ("non_finite", T, raw_reading("Infinity")),
    ("non_finite", T, raw_reading("-Infinity")),
    ("non_finite", T, raw_reading("1e999")),
    ("out_of_range", T, tele(rms=-1.0)),
    ("out_of_range", T, tele(seq=-1)),
    ("out_of_range", T, json.dumps({"readings": []}).encode()),
    ("time_in_future", T, tele(t=int(time.time() * 1000) + 86_400_000)),
    ("time_too_old", T, tele(t=1_500_000_000_000)),
    ("too_large", T, json.dumps({"readings": [READING], "pad": "x" * 70_000}).encode()),
    ("bad_device_id", "vw/v1/bad dev/telemetry", tele()),
    ("bad_device_id", f"vw/v1/{'d' * 65}/telemetry", tele()),
    ("bad_device_id", "vw/v1/pümpe/telemetry", tele()),
    ("bad_device_id", "vw/v1/a,b=c/telemetry", tele()),
    ("bad_device_id", "vw/v1//telemetry", tele()),
    ("bad_value", "vw/v1/dev-1/event", json.dumps({**EVENT, "kind": "middle"}).encode()),
    ("bad_value", "vw/v1/dev-1/status", json.dumps({**STATUS, "state": "asleep"}).encode()),
    ("bad_value", "vw/v1/dev-1/status", json.dumps({**STATUS, "model_sha256": "Z" * 64}).encode()),
    ("missing_field", "vw/v1/dev-1/status", json.dumps({"state": "online", "t": NOW}).encode()),
    ("out_of_range", "vw/v1/dev-1/event", json.dumps({**EVENT, "threshold": 0}).encode()),
    (
        "out_of_range",
        "vw/v1/dev-1/features",
        json.dumps(
            {
                "spec": "s1",
                "vectors": [
                    {"seq": 1, "t": NOW, "x": [1.0]},
                    {"seq": 2, "t": NOW, "x": [1.0, 2.0]},
                ],
            }
        ).encode(),
    ),
    (
        "wrong_type",
        "vw/v1/dev-1/features",
        json.dumps({"spec": "s1", "vectors": [{"seq": 1, "t": NOW, "x": [1.0, "2"]}]}).encode(),
    ),
]


def test_malformed_matrix_rejects_each_with_its_reason_and_keeps_good_data(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    assert len(CASES) >= 25
    ingest = start_ingest()
    for i, (_reason, topic, payload) in enumerate(CASES):
        good = telemetry("good-1", i * 10, NOW - 600_000 + i * 10_000)
        publisher.publish("vw/v1/good-1/telemetry", good.encode())
        publisher.publish(topic, payload)
    good_points = 10 * len(CASES)
    wait_for(lambda: len(ingest.deadletters()) == len(CASES), 20, "all rejections")
    wait_for(
        lambda: influxdb.count(influx_db, "reading", "score") == good_points, 20, "all good points"
    )
    assert ingest.stop() == 0

    letters = ingest.deadletters()
    assert [(d["reason"], d["topic"]) for d in letters] == [(r, t) for r, t, _ in CASES]
    for letter, (_reason, _topic, payload) in zip(letters, CASES, strict=True):
        assert letter["payload_bytes"] == len(payload)
        assert letter["detail"]
    # nothing but the good device reached the database
    devices = rows(influxdb, influx_db, 'SHOW TAG VALUES FROM reading WITH KEY = "device"')
    assert [row["value"] for row in devices] == ["good-1"]
    stats = rows(
        influxdb, influx_db, "SELECT last(rejected), last(messages_ok) FROM vibewatch_ingest"
    )
    assert (stats[0]["last"], stats[0]["last_1"]) == (len(CASES), len(CASES))
    assert "rejected message on" in ingest.log()
