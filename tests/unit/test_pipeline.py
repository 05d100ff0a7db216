import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vibewatch.errors import RejectedWriteError, RetryableWriteError, WriteError
from vibewatch.influx.writers import MemoryWriter
from vibewatch.ingest.pipeline import BatchPolicy, Pipeline
from vibewatch.ingest.spool import Spool
from vibewatch.ingest.stats import IngestStats

FAST = BatchPolicy(
    batch_max_points=5,
    batch_max_age=0.05,
    buffer_max_points=1000,
    retry_initial=0.01,
    retry_max=0.05,
    retry_budget=0.1,
    write_concurrency=2,
)


class Harness:
    def __init__(self, tmp_path: Path, writer: MemoryWriter, policy: BatchPolicy, spool_max: int):
        self.writer = writer
        self.spool = Spool(tmp_path / "spool", max_bytes=spool_max)
        self.stats = IngestStats()
        self.acked: list[int] = []
        self.rejected: list[tuple[str, str]] = []
        self.pipeline: Pipeline[int] = Pipeline(
            writer=writer,
            spool=self.spool,
            stats=self.stats,
            on_ack=self.acked.extend,
            on_reject=lambda line, err: self.rejected.append((line, err)),
            policy=policy,
        )
        self.pipeline.start()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            time.sleep(0.01)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(
        writer: MemoryWriter | None = None, policy: BatchPolicy = FAST, spool_max: int = 1 << 30
    ) -> Harness:
        made.append(Harness(tmp_path, writer or MemoryWriter(), policy, spool_max))
        return made[-1]

    yield factory
    for harness in made:
        harness.pipeline.close(timeout=5)
        harness.spool.close()


def test_batches_by_count_and_age_and_acks_in_order(make: Callable[..., Harness]) -> None:
    h = make()
    for i in range(12):
        assert h.pipeline.submit([f"m x={i} {i}"], i)
    h.wait_for(lambda: len(h.acked) == 12)
    assert h.acked == list(range(12))
    assert sorted(h.writer.lines) == sorted(f"m x={i} {i}" for i in range(12))
    assert h.stats.points_written == 12
    assert h.stats.batches_written >= 3


def test_messages_without_lines_are_acked_in_their_place(make: Callable[..., Harness]) -> None:
    h = make()
    h.pipeline.submit(["m x=1 1"], 0)
    h.pipeline.submit([], 1)
    h.pipeline.submit(["m x=2 2"], 2)
    h.wait_for(lambda: len(h.acked) == 3)
    assert h.acked == [0, 1, 2]


def test_refused_line_is_isolated_and_the_rest_written(make: Callable[..., Harness]) -> None:
    def fail(body: bytes) -> WriteError | None:
        return RejectedWriteError("partial write", 400) if b"BAD" in body else None

    h = make(MemoryWriter(fail))
    lines = [f"m x={i} {i}" for i in range(5)]
    lines[3] = "m x=BAD 3"
    for i, line in enumerate(lines):
        h.pipeline.submit([line], i)
    h.wait_for(lambda: len(h.acked) == 5)
    assert h.rejected == [("m x=BAD 3", "partial write")]
    assert sorted(h.writer.lines) == sorted(line for line in lines if "BAD" not in line)


def test_down_database_spools_acks_and_replays_in_order(make: Callable[..., Harness]) -> None:
    down = threading.Event()
    down.set()

    def fail(_body: bytes) -> WriteError | None:
        return RetryableWriteError("connection refused") if down.is_set() else None

    one_writer = dataclasses.replace(FAST, write_concurrency=1)  # one writer: spool order is known
    h = make(MemoryWriter(fail), one_writer)
    for i in range(20):
        h.pipeline.submit([f"m x={i} {i}"], i)
    h.wait_for(lambda: len(h.acked) == 20)
    assert h.acked == list(range(20))
    assert h.writer.lines == []
    assert h.spool.records > 0
    assert h.pipeline.influx_down
    down.clear()
    h.wait_for(lambda: h.spool.records == 0 and h.stats.points_replayed == 20)
    assert h.writer.lines == [f"m x={i} {i}" for i in range(20)]
    assert not h.pipeline.influx_down


def test_slow_database_spills_to_spool_instead_of_growing(make: Callable[..., Harness]) -> None:
    gate = threading.Event()

    def fail(_body: bytes) -> WriteError | None:
        gate.wait(10)
        return None

    policy = BatchPolicy(
        batch_max_points=10,
        batch_max_age=0.05,
        buffer_max_points=30,
        retry_budget=60,
        write_concurrency=1,
    )
    h = make(MemoryWriter(fail), policy)
    for i in range(200):
        h.pipeline.submit([f"m x={i} {i}"], i)
    h.wait_for(lambda: h.stats.points_spooled >= 150)
    assert h.pipeline.buffered_points <= 40
    gate.set()
    h.wait_for(lambda: len(h.acked) == 200 and h.spool.records == 0)
    assert h.acked == list(range(200))
    assert sorted(h.writer.lines) == sorted(f"m x={i} {i}" for i in range(200))


def test_nothing_is_acked_when_neither_database_nor_spool_takes_it(
    make: Callable[..., Harness],
) -> None:
    h = make(MemoryWriter(lambda _b: RetryableWriteError("down")), spool_max=1)
    h.pipeline.submit(["m x=1 1"], 0)
    time.sleep(0.5)
    assert h.acked == []
    assert h.pipeline.close(timeout=0.5) is False


def test_close_flushes_the_open_batch(make: Callable[..., Harness]) -> None:
    h = make(policy=BatchPolicy(batch_max_points=1000, batch_max_age=60))
    h.pipeline.submit(["m x=1 1"], 0)
    assert h.pipeline.close(timeout=5)
    assert h.acked == [0]
    assert h.writer.lines == ["m x=1 1"]
    assert h.pipeline.submit(["m x=2 2"], 1) is False


def test_ack_order_holds_under_concurrent_writers(make: Callable[..., Harness]) -> None:
    rng = random.Random(7)

    def jitter(_body: bytes) -> WriteError | None:
        time.sleep(rng.random() / 100)
        return None

    h = make(MemoryWriter(jitter), BatchPolicy(batch_max_points=3, write_concurrency=4))
    for i in range(300):
        h.pipeline.submit([f"m x={i} {i}"], i)
    h.wait_for(lambda: len(h.acked) == 300)
    assert h.acked == list(range(300))


def test_unexpected_writer_error_is_retried_not_fatal(make: Callable[..., Harness]) -> None:
    calls = []

    def flaky(_body: bytes) -> WriteError | None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug in a writer")
        return None

    h = make(MemoryWriter(flaky))
    h.pipeline.submit(["m x=1 1"], 0)
    h.wait_for(lambda: h.acked == [0])
    assert h.writer.lines == ["m x=1 1"]
    assert h.stats.write_retries == 1


def test_drain_takes_what_keeps_arriving_while_influxdb_is_down(
    make: Callable[..., Harness],
) -> None:
    writer = MemoryWriter(fail=lambda _body: RetryableWriteError("down"))
    h = make(writer, dataclasses.replace(FAST, retry_budget=30.0))

    def arrive() -> None:
        for i in range(50):
            h.pipeline.submit([f"m x={i} {i}"], i)
            time.sleep(0.01)

    arrivals = threading.Thread(target=arrive)
    arrivals.start()
    # a shutdown starting mid-stream spools and acknowledges every message, also those
    # that arrive after it started, although the retry budget is far from spent
    assert h.pipeline.drain(quiet=0.3, timeout=10)
    arrivals.join()
    assert h.pipeline.close(timeout=5)
    assert h.acked == list(range(50))
    assert h.pipeline.unacknowledged == 0
    assert h.stats.points_spooled == 50


def test_messages_refused_after_close_are_counted_as_unacknowledged(
    make: Callable[..., Harness],
) -> None:
    h = make()
    assert h.pipeline.submit(["m x=1 1"], 1)
    assert h.pipeline.close(timeout=5)
    assert not h.pipeline.submit(["m x=2 2"], 2)
    assert not h.pipeline.submit([], None)  # a message without a token is not owed an ack
    assert h.acked == [1]
    assert h.pipeline.unacknowledged == 1


def test_a_spool_with_millisecond_timestamps_is_replayed_in_nanoseconds(
    tmp_path: Path,
) -> None:
    # written by a version that keyed points by the millisecond
    old = Spool(tmp_path / "spool")
    old.append(b"reading,device=d score=0.5,seq=1i 1700000000000\nm x=1 1700000000001\n")
    old.close()
    writer = MemoryWriter()
    h = Harness(tmp_path, writer, FAST, 1 << 30)
    h.pipeline.submit(["m x=2 1700000000002000003"], 1)
    h.wait_for(lambda: len(writer.lines) == 3)
    h.pipeline.close(timeout=5)
    h.spool.close()
    assert sorted(writer.lines) == [
        "m x=1 1700000000001000000",
        "m x=2 1700000000002000003",
        "reading,device=d score=0.5,seq=1i 1700000000000000000",
    ]


def test_the_log_says_when_the_spool_is_drained(
    make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    down = threading.Event()
    down.set()
    h = make(MemoryWriter(lambda _body: RetryableWriteError("down") if down.is_set() else None))
    caplog.set_level(logging.INFO, logger="vibewatch.ingest.pipeline")
    for i in range(20):
        h.pipeline.submit([f"m x={i} {i}"], i)
    h.wait_for(lambda: len(h.acked) == 20 and h.pipeline.influx_down)
    assert "spool drained" not in caplog.text
    down.clear()
    h.wait_for(lambda: "spool drained: 20 spooled points written to InfluxDB" in caplog.text)
