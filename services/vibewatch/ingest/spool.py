"""The on-disk spool: an append-only FIFO of write bodies that survives restarts.

When InfluxDB is down or too slow, batches go here and their MQTT messages are
acknowledged; the spool is replayed in order once InfluxDB takes writes again.

Layout of the spool directory::

    seg-00000000000000000001.spool   segments, oldest first
    cursor                           "<segment> <offset>" of the oldest unreplayed record

Each record is ``<u32 length><u32 crc32>`` (little endian) followed by ``length``
bytes: the zlib-compressed line-protocol body. Every append is fsync'd before it
returns, so an acknowledged batch is on disk. On open, a torn record at the end
of the newest segment (a crash mid-append) is cut off; a bad record in an older
segment ends that segment's replay, is logged and counted in ``corrupt_records``.
Replaying a record twice (a crash between a replayed write and the cursor
update) is harmless: points are keyed by device time, so a rewrite is idempotent.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from vibewatch.errors import SpoolError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".spool"


class SpoolFullError(SpoolError):
    """Appending would exceed the spool's size limit."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled body and where it lives (to :meth:`Spool.commit` it)."""

    segment: int
    offset: int
    end: int
    body: bytes


def _segment_name(number: int) -> str:
    return f"{_SEGMENT_PREFIX}{number:020d}{_SEGMENT_SUFFIX}"


class Spool:
    """A durable FIFO of byte strings in a directory. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        compress_level: int = 1,
    ) -> None:
        """Open (creating if needed) the spool in ``directory`` and recover it.

        Args:
            directory: Folder of the spool; created if missing.
            max_bytes: Appends that would take the spool beyond this size fail.
            segment_bytes: A new segment starts once the current one is this big.
            compress_level: zlib level for stored bodies.
        """
        self._dir = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._level = compress_level
        self._lock = threading.Lock()
        self.corrupt_records = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {directory}: {exc}") from exc
        self._segments = sorted(
            int(p.name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)])
            for p in directory.glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}")
        )
        self._read_seg, self._read_off = self._load_cursor()
        self._segments = [s for s in self._segments if s >= self._read_seg]
        self._records = 0
        self._bytes = 0
        self._ends: dict[int, int] = {}
        for number in self._segments:
            self._recover_segment(number, last=number == self._segments[-1])
        if not self._segments:
            self._segments.append(self._read_seg if self._read_seg > 0 else 1)
            self._read_off = 0
        if self._read_seg not in self._segments:
            self._read_seg, self._read_off = self._segments[0], 0
        self._write_seg = self._segments[-1]
        self._writer = open(self._path(self._write_seg), "ab")  # noqa: SIM115 - kept open
        self._write_off = self._writer.tell()

    # ----------------------------------------------------------------- helpers
    def _path(self, number: int) -> Path:
        return self._dir / _segment_name(number)

    def _load_cursor(self) -> tuple[int, int]:
        cursor = self._dir / "cursor"
        try:
            seg_text, off_text = cursor.read_text().split()
            return int(seg_text), int(off_text)
        except FileNotFoundError:
            return (self._segments[0] if self._segments else 1), 0
        except (ValueError, OSError) as exc:
            log.error(
                "spool cursor %s unreadable (%s); replaying from the oldest segment", cursor, exc
            )
            return (self._segments[0] if self._segments else 1), 0

    def _save_cursor(self) -> None:
        tmp = self._dir / "cursor.tmp"
        tmp.write_text(f"{self._read_seg} {self._read_off}\n")
        os.replace(tmp, self._dir / "cursor")

    def _scan(self, data: bytes, start: int) -> tuple[int, int]:
        """Return (end of the last good record, record count) scanning from ``start``."""
        offset, count = start, 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            body_end = offset + _HEADER.size + length
            if body_end > len(data) or zlib.crc32(data[offset + _HEADER.size : body_end]) != crc:
                break
            offset, count = body_end, count + 1
        return offset, count

    def _recover_segment(self, number: int, *, last: bool) -> None:
        path = self._path(number)
        data = path.read_bytes()
        start = self._read_off if number == self._read_seg else 0
        good_end, count = self._scan(data, start)
        if good_end < len(data):
            if last:
                log.warning(
                    "spool segment %s: cutting %d bytes of a torn record at offset %d",
                    path.name,
                    len(data) - good_end,
                    good_end,
                )
                with open(path, "r+b") as handle:
                    handle.truncate(good_end)
                    os.fsync(handle.fileno())
            else:
                self.corrupt_records += 1
                log.error(
                    "spool segment %s is corrupt at offset %d; %d bytes after it are skipped",
                    path.name,
                    good_end,
                    len(data) - good_end,
                )
        self._records += count
        self._bytes += good_end - start
        self._ends[number] = good_end

    # ------------------------------------------------------------------ public
    @property
    def records(self) -> int:
        """Records waiting to be replayed."""
        return self._records

    @property
    def size_bytes(self) -> int:
        """Bytes on disk waiting to be replayed."""
        return self._bytes

    def append(self, body: bytes) -> None:
        """Append one body durably (fsync'd before returning).

        Raises:
            SpoolFullError: The spool would exceed its size limit.
            SpoolError: The disk write failed.
        """
        data = zlib.compress(body, self._level)
        record = _HEADER.pack(len(data), zlib.crc32(data)) + data
        with self._lock:
            if self._bytes + len(record) > self._max_bytes:
                raise SpoolFullError(
                    f"spool {self._dir} holds {self._bytes} bytes; "
                    f"{len(record)} more would pass its limit of {self._max_bytes}"
                )
            if self._write_off >= self._segment_bytes:
                self._writer.close()
                self._write_seg += 1
                self._segments.append(self._write_seg)
                self._writer = open(self._path(self._write_seg), "ab")  # noqa: SIM115
                self._write_off = 0
            try:
                self._writer.write(record)
                self._writer.flush()
                os.fsync(self._writer.fileno())
            except OSError as exc:
                self._writer.truncate(self._write_off)
                raise SpoolError(f"spool append to {self._dir} failed: {exc}") from exc
            self._write_off += len(record)
            self._ends[self._write_seg] = self._write_off
            self._records += 1
            self._bytes += len(record)

    def peek(self) -> SpoolRecord | None:
        """Return the oldest record not yet committed, or ``None`` when empty.

        A record that no longer reads back intact (the disk changed under the
        spool) is logged, counted in ``corrupt_records`` and skipped.
        """
        with self._lock:
            while True:
                end = self._ends.get(self._read_seg, 0)
                if self._read_off >= end:
                    if self._read_seg == self._write_seg:
                        self._records = self._bytes = 0  # exact again after a skip
                        return None
                    self._retire_read_segment()
                    continue
                record = self._read_record()
                if record is not None:
                    return record

    def _read_record(self) -> SpoolRecord | None:
        """Read the record at the cursor; skip it and return ``None`` if it is damaged."""
        offset = self._read_off
        try:
            with open(self._path(self._read_seg), "rb") as handle:
                handle.seek(offset)
                length, crc = _HEADER.unpack(handle.read(_HEADER.size))
                data = handle.read(length)
            if len(data) != length or zlib.crc32(data) != crc:
                raise ValueError("length or CRC mismatch")
            return SpoolRecord(
                self._read_seg, offset, offset + _HEADER.size + length, zlib.decompress(data)
            )
        except (OSError, ValueError, struct.error, zlib.error) as exc:
            self.corrupt_records += 1
            log.error(
                "spool segment %s: record at offset %d is damaged (%s); the rest of the "
                "segment is skipped",
                _segment_name(self._read_seg),
                offset,
                exc,
            )
            self._records = max(0, self._records - 1)
            self._bytes = max(0, self._bytes - (self._ends[self._read_seg] - offset))
            self._read_off = self._ends[self._read_seg]
            self._save_cursor()
            return None

    def commit(self, record: SpoolRecord) -> None:
        """Mark ``record`` (the one :meth:`peek` returned) as replayed."""
        with self._lock:
            if (record.segment, record.offset) != (self._read_seg, self._read_off):
                raise SpoolError("spool commit out of order")
            self._read_off = record.end
            self._records -= 1
            self._bytes -= record.end - record.offset
            if (
                self._read_off >= self._ends.get(self._read_seg, 0)
                and self._read_seg != self._write_seg
            ):
                self._retire_read_segment()
            self._save_cursor()

    def _retire_read_segment(self) -> None:
        self._path(self._read_seg).unlink(missing_ok=True)
        self._ends.pop(self._read_seg, None)
        self._segments.remove(self._read_seg)
        self._read_seg, self._read_off = self._segments[0], 0

    def close(self) -> None:
        """Close the open segment."""
        with self._lock:
            self._writer.close()
