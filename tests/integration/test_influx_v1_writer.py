"""Line protocol through the real InfluxDB 1.x: exact round trips and refused points."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibewatch.errors import PointError, RejectedWriteError, RetryableWriteError
from vibewatch.influx.lineprotocol import Point, encode_batch, encode_point
from vibewatch.influx.writers import InfluxV1Writer
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.load import telemetry
from vibewatch.testing.servers import LocalInfluxDB, free_port, rows


@pytest.fixture
def writer(influxdb: LocalInfluxDB, influx_db: str) -> Iterator[InfluxV1Writer]:
    w = InfluxV1Writer(url=influxdb.url, database=influx_db)
    yield w
    w.close()


_times = itertools.count(1_700_000_000_000)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tag=st.text(min_size=0, max_size=40), text=st.text(max_size=40))
def test_tag_and_string_values_round_trip_exactly_or_are_refused(
    writer: InfluxV1Writer, influxdb: LocalInfluxDB, influx_db: str, tag: str, text: str
) -> None:
    t = next(_times)
    t_ns = t * 1_000_000
    try:
        line = encode_point(Point("escape", (("site", tag),), (("note", text),), t_ns))
    except PointError:
        return  # refused before it could corrupt a batch
    # the line travels between two good ones: a bad escape would corrupt its neighbours
    before = encode_point(Point("escape", (("site", "before"),), (("note", "b"),), t_ns))
    after = encode_point(Point("escape", (("site", "after"),), (("note", "a"),), t_ns))
    writer.write(encode_batch([before, line, after]))
    found = rows(influxdb, influx_db, f"SELECT note, site FROM escape WHERE time = {t}ms")
    assert sorted((row["site"], row["note"]) for row in found) == sorted(
        [("before", "b"), (tag, text), ("after", "a")]
    )


def test_gzip_and_plain_bodies_are_both_accepted(influxdb: LocalInfluxDB, influx_db: str) -> None:
    for level in (None, 1, 9):
        w = InfluxV1Writer(url=influxdb.url, database=influx_db, gzip_level=level)
        w.write(f"m,level={level} x=1 1700000000000\n".encode())
        w.close()
    assert influxdb.count(influx_db, "m", "x") == 3


def test_unparsable_body_is_a_rejection_with_the_server_message(writer: InfluxV1Writer) -> None:
    with pytest.raises(RejectedWriteError, match="unable to parse") as info:
        writer.write(b"m x= 1\n")
    assert info.value.status == 400


def test_missing_database_is_retryable_not_a_rejection(influxdb: LocalInfluxDB) -> None:
    w = InfluxV1Writer(url=influxdb.url, database="no_such_db")
    with pytest.raises(RetryableWriteError, match="database not found") as info:
        w.write(b"m x=1 1\n")
    assert info.value.status == 404
    w.ensure_database()
    w.write(b"m x=1 1\n")
    w.close()


def test_server_down_is_retryable() -> None:
    w = InfluxV1Writer(url=f"http://127.0.0.1:{free_port()}", database="x")
    with pytest.raises(RetryableWriteError):
        w.write(b"m x=1 1\n")
    w.close()


def test_refused_point_is_isolated_and_its_batch_neighbours_are_written(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
) -> None:
    """A point older than the retention policy is refused (4xx); the rest of its batch lands."""
    influxdb.create_database("short", retention="1h")
    ingest = start_ingest(VIBEWATCH_INFLUX_DATABASE="short", VIBEWATCH_INGEST_BATCH_MAX_AGE="1")
    now = int(time.time() * 1000)
    old = now - 3 * 3600 * 1000  # valid by the protocol, beyond the 1 h retention policy
    publisher.publish("vw/v1/a/telemetry", telemetry("a", 0, now - 60_000).encode())
    publisher.publish("vw/v1/b/telemetry", telemetry("b", 0, old, n=1).encode())
    publisher.publish("vw/v1/c/telemetry", telemetry("c", 0, now - 60_000).encode())
    wait_for(lambda: len(ingest.deadletters()) == 1, 20, "the refused point in the dead-letter log")
    assert ingest.stop() == 0
    (letter,) = ingest.deadletters()
    assert letter["reason"] == "influx_rejected"
    assert "retention" in str(letter["detail"])
    assert str(letter["payload_prefix"]).startswith("reading,device=b ")
    assert influxdb.count("short", "reading", "score") == 20
    devices = rows(influxdb, "short", 'SHOW TAG VALUES FROM reading WITH KEY = "device"')
    assert [row["value"] for row in devices] == ["a", "c"]
