from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibewatch.errors import SpoolError
from vibewatch.ingest.spool import Spool, SpoolFullError


@pytest.fixture
def open_spool() -> Iterator[Callable[..., Spool]]:
    opened: list[Spool] = []

    def factory(*args: Any, **kwargs: Any) -> Spool:
        opened.append(Spool(*args, **kwargs))
        return opened[-1]

    yield factory
    for spool in opened:
        spool.close()


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (record := spool.peek()) is not None:
        out.append(record.body)
        spool.commit(record)
    return out


def test_fifo_order_and_counts(tmp_path: Path, open_spool: Callable[..., Spool]) -> None:
    spool = open_spool(tmp_path)
    for i in range(5):
        spool.append(f"m x={i} {i}\n".encode())
    assert spool.records == 5
    assert spool.size_bytes > 0
    assert drain(spool) == [f"m x={i} {i}\n".encode() for i in range(5)]
    assert spool.records == 0
    assert spool.size_bytes == 0


def test_survives_reopen_and_resumes_at_cursor(
    tmp_path: Path, open_spool: Callable[..., Spool]
) -> None:
    spool = open_spool(tmp_path)
    for i in range(4):
        spool.append(bytes([65 + i]))
    first = spool.peek()
    assert first is not None
    spool.commit(first)
    spool.close()
    reopened = open_spool(tmp_path)
    assert reopened.records == 3
    assert drain(reopened) == [b"B", b"C", b"D"]


def test_segments_rotate_and_are_deleted_once_replayed(
    tmp_path: Path, open_spool: Callable[..., Spool]
) -> None:
    spool = open_spool(tmp_path, segment_bytes=64)
    for i in range(20):
        spool.append(b"x" * 50 + bytes([i]))
    assert len(list(tmp_path.glob("seg-*.spool"))) > 2
    assert [b[-1] for b in drain(spool)] == list(range(20))
    assert len(list(tmp_path.glob("seg-*.spool"))) == 1
    spool.close()
    assert open_spool(tmp_path).records == 0


def test_torn_tail_is_cut_and_later_appends_work(
    tmp_path: Path, open_spool: Callable[..., Spool]
) -> None:
    spool = open_spool(tmp_path)
    spool.append(b"one")
    spool.append(b"two")
    spool.close()
    segment = next(tmp_path.glob("seg-*.spool"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # crash in the middle of the second append
    reopened = open_spool(tmp_path)
    assert reopened.records == 1
    reopened.append(b"three")
    assert drain(reopened) == [b"one", b"three"]


def test_corrupt_older_segment_is_counted_not_fatal(
    tmp_path: Path, open_spool: Callable[..., Spool]
) -> None:
    spool = open_spool(tmp_path, segment_bytes=16)
    for word in (b"alpha-alpha", b"bravo-bravo", b"charlie"):
        spool.append(word)
    spool.close()
    oldest = sorted(tmp_path.glob("seg-*.spool"))[0]
    data = bytearray(oldest.read_bytes())
    data[-1] ^= 0xFF
    oldest.write_bytes(bytes(data))
    reopened = open_spool(tmp_path, segment_bytes=16)
    assert reopened.corrupt_records == 1
    assert drain(reopened) == [b"bravo-bravo", b"charlie"]


def test_size_limit(tmp_path: Path, open_spool: Callable[..., Spool]) -> None:
    spool = open_spool(tmp_path, max_bytes=100)
    spool.append(b"a" * 10)
    with pytest.raises(SpoolFullError, match="limit of 100"):
        spool.append(bytes(range(256)) * 4)
    assert spool.records == 1


def test_commit_out_of_order_is_refused(tmp_path: Path, open_spool: Callable[..., Spool]) -> None:
    spool = open_spool(tmp_path)
    spool.append(b"a")
    spool.append(b"b")
    record = spool.peek()
    assert record is not None
    spool.commit(record)
    with pytest.raises(SpoolError, match="out of order"):
        spool.commit(record)


def test_record_damaged_after_open_is_skipped_not_fatal(
    tmp_path: Path, open_spool: Callable[..., Spool]
) -> None:
    spool = open_spool(tmp_path, segment_bytes=16)
    for word in (b"alpha-alpha", b"bravo-bravo", b"charlie"):
        spool.append(word)
    oldest = sorted(tmp_path.glob("seg-*.spool"))[0]
    data = bytearray(oldest.read_bytes())
    data[-1] ^= 0xFF  # the disk changes under a running spool
    oldest.write_bytes(bytes(data))
    assert drain(spool) == [b"bravo-bravo", b"charlie"]
    assert spool.corrupt_records == 1
    assert (spool.records, spool.size_bytes) == (0, 0)
