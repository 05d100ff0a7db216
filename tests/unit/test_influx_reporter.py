"""The background point reporter: never blocks or raises, retries, bounds, counts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from vibewatch.errors import RejectedWriteError, RetryableWriteError, WriteError
from vibewatch.influx.lineprotocol import Point
from vibewatch.influx.reporter import PointReporter, ReporterCounts
from vibewatch.influx.writers import MemoryWriter


def point(i: int, value: float = 1.0) -> Point:
    return Point("m", (("k", "v"),), (("x", value),), i)


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_points_are_written_in_order_and_counted() -> None:
    writer = MemoryWriter()
    reporter = PointReporter(writer, name="test")
    reporter.start()
    reporter.put([point(1), point(2)])
    reporter.put([point(3)])
    until(lambda: len(writer.lines) == 3)
    reporter.stop()
    assert writer.lines == ["m,k=v x=1.0 1", "m,k=v x=1.0 2", "m,k=v x=1.0 3"]
    assert reporter.counts == ReporterCounts(written=3)


def test_while_influxdb_is_down_points_wait_and_are_written_once_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = threading.Event()
    down.set()
    writer = MemoryWriter(
        lambda _b: RetryableWriteError("connection refused") if down.is_set() else None
    )
    reporter = PointReporter(writer, name="test", retry_initial=0.01, retry_max=0.02)
    reporter.start()
    with caplog.at_level(logging.WARNING, "vibewatch.influx.reporter"):
        for i in range(5):
            reporter.put([point(i)])
        until(lambda: reporter.counts.failed_writes >= 3)
        assert writer.lines == [] and reporter.counts.waiting == 5
        down.clear()
        until(lambda: len(writer.lines) == 5)
    reporter.stop()
    assert writer.lines == [f"m,k=v x=1.0 {i}" for i in range(5)]  # in order
    counts = reporter.counts
    assert counts.written == 5 and counts.dropped == 0 and counts.waiting == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # once when it fails, once when it works again
    assert "test: cannot write to InfluxDB, retrying" in warnings[0]
    assert "connection refused" in warnings[0]
    assert "test: InfluxDB takes points again" in warnings[1]


def test_beyond_the_limit_the_oldest_points_are_dropped_and_counted() -> None:
    writer = MemoryWriter(lambda _b: RetryableWriteError("down"))
    reporter = PointReporter(writer, name="test", max_lines=3, retry_initial=0.01)
    reporter.start()
    reporter.put([point(i) for i in range(5)])
    until(lambda: reporter.counts.failed_writes >= 2)
    writer.fail = None
    until(lambda: len(writer.lines) == 3)
    reporter.stop()
    assert writer.lines == [f"m,k=v x=1.0 {i}" for i in (2, 3, 4)]
    assert reporter.counts.dropped == 2 and reporter.counts.written == 3


def test_put_never_blocks_on_a_writer_that_hangs() -> None:
    release = threading.Event()

    def hang(_body: bytes) -> WriteError | None:
        release.wait(10)
        return RetryableWriteError("timed out")

    reporter = PointReporter(MemoryWriter(hang), name="test", retry_initial=0.01)
    reporter.start()
    began = time.monotonic()
    for i in range(1000):
        reporter.put([point(i)])
    assert time.monotonic() - began < 1.0
    assert reporter.counts.waiting == 1000
    release.set()
    reporter.stop(timeout=2.0)  # the last attempt fails: what waits is left
    assert reporter.counts.waiting == 1000 and reporter.counts.written == 0


def test_refused_and_unencodable_points_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = MemoryWriter(
        lambda b: RejectedWriteError("field type conflict", 400) if b"bad" in b else None
    )
    reporter = PointReporter(writer, name="test")
    reporter.start()
    with caplog.at_level(logging.ERROR, "vibewatch.influx.reporter"):
        reporter.put([point(1, float("nan"))])  # no line protocol for NaN
        reporter.put([Point("bad", (), (("x", 1),), 1)])
        until(lambda: reporter.counts.dropped == 2)
        reporter.put([point(2)])
        until(lambda: writer.lines == ["m,k=v x=1.0 2"])
    reporter.stop()
    assert reporter.counts == ReporterCounts(written=1, dropped=2)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "is not finite" in messages and "InfluxDB refused 1 points" in messages
