"""The service's own counters, logged periodically and written as points.

Counters are cumulative since the process started (InfluxQL's
``non_negative_derivative()`` turns them into rates on a dashboard); the batch
latency figures cover the interval since the previous snapshot.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from vibewatch.influx import schema
from vibewatch.influx.lineprotocol import FieldValue, Point


@dataclass
class IngestStats:
    """Counters of one ingest process. Thread-safe through :attr:`lock`."""

    messages_in: int = 0
    messages_ok: int = 0
    status_cleared: int = 0
    points_written: int = 0
    points_spooled: int = 0
    points_replayed: int = 0
    batches_written: int = 0
    write_retries: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stale_acks: int = 0
    spool_records: int = 0
    spool_bytes: int = 0
    buffer_points: int = 0
    _latency_sum: float = 0.0
    _latency_max: float = 0.0
    _latency_n: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_latency(self, seconds: float) -> None:
        """Record the time one batch took from sealing to durable."""
        with self.lock:
            self._latency_sum += seconds
            self._latency_n += 1
            self._latency_max = max(self._latency_max, seconds)

    def reject(self, reason: str) -> None:
        """Count one rejection under ``reason``."""
        with self.lock:
            self.rejected[reason] += 1

    def snapshot(self) -> dict[str, FieldValue]:
        """Return all figures as a flat dict and start a new latency interval."""
        with self.lock:
            values: dict[str, FieldValue] = {
                schema.MESSAGES_IN: self.messages_in,
                schema.MESSAGES_OK: self.messages_ok,
                "status_cleared": self.status_cleared,
                schema.POINTS_WRITTEN: self.points_written,
                schema.POINTS_SPOOLED: self.points_spooled,
                "points_replayed": self.points_replayed,
                "batches_written": self.batches_written,
                "write_retries": self.write_retries,
                schema.REJECTED: sum(self.rejected.values()),
                "stale_acks": self.stale_acks,
                schema.SPOOL_RECORDS: self.spool_records,
                "spool_bytes": self.spool_bytes,
                schema.BUFFER_POINTS: self.buffer_points,
                schema.BATCH_LATENCY_MS_AVG: round(
                    1000 * self._latency_sum / self._latency_n if self._latency_n else 0.0, 3
                ),
                schema.BATCH_LATENCY_MS_MAX: round(1000 * self._latency_max, 3),
            }
            for reason, count in sorted(self.rejected.items()):
                values[schema.rejected_field(reason)] = count
            self._latency_sum = self._latency_max = 0.0
            self._latency_n = 0
        return values


def stats_point(values: dict[str, FieldValue], *, instance: str, site: str, time_ms: int) -> Point:
    """Build the ``vibewatch_ingest`` point of one snapshot."""
    tags = [(schema.INSTANCE, instance)]
    if site:
        tags.append((schema.SITE, site))
    fields = tuple((k, float(v) if k.startswith("batch_latency") else v) for k, v in values.items())
    return Point(schema.INGEST_STATS, tuple(tags), fields, schema.time_ns(time_ms))
