"""Telemetry streams of vibewatch.testing.load: valid messages, every reading a distinct point."""

from __future__ import annotations

import collections

from vibewatch.protocol import Limits, Telemetry
from vibewatch.testing.load import (
    DAY_MS,
    VALUE_POOL,
    device_id,
    reading_values,
    telemetry,
    telemetry_stream,
)

T0 = 1_700_000_000_000


def decoded(stream: list[tuple[str, bytes]], prefix: str = "vw/v1/") -> list[Telemetry]:
    """Each message decoded as ingest decodes it (from the device id in its topic)."""
    out = []
    for topic, payload in stream:
        assert topic.startswith(prefix) and topic.endswith("/telemetry"), topic
        device = topic.removeprefix(prefix).removesuffix("/telemetry")
        out.append(Telemetry.decode(payload, device, now_ms=T0 + DAY_MS, limits=Limits()))
    return out


def test_stream_is_round_robin_with_consecutive_readings_per_device() -> None:
    stream = telemetry_stream(7, 50, t0=T0)
    messages = decoded(stream)
    assert len(messages) == 50
    assert [m.device for m in messages[:8]] == [device_id(d) for d in (*range(7), 0)]
    assert device_id(7) == "dev-0007"
    per_device: dict[str, list[int]] = collections.defaultdict(list)
    for message in messages:
        assert len(message.readings) == 10
        for reading in message.readings:
            assert reading.t == T0 + 1000 * reading.seq
            per_device[message.device].append(reading.seq)
    assert sorted(per_device) == [device_id(d) for d in range(7)]
    for device, seqs in per_device.items():
        count = len(range(int(device[4:]), 50, 7))  # messages of this device
        assert seqs == list(range(10 * count)), device


def test_every_reading_is_a_distinct_point_with_values_from_the_pool() -> None:
    messages = decoded(telemetry_stream(3, 40, t0=T0, prefix="bench/x/", readings=4), "bench/x/")
    keys = [(m.device, r.seq) for m in messages for r in m.readings]
    assert len(keys) == len(set(keys)) == 160
    pool = set(reading_values(1))
    assert len(pool) == VALUE_POOL
    for message in messages:
        for r in message.readings:
            assert (r.score, r.rms, r.peak, r.crest, r.kurtosis) in pool


def test_streams_are_repeatable_and_the_seed_changes_only_the_values() -> None:
    assert telemetry_stream(4, 20, t0=T0) == telemetry_stream(4, 20, t0=T0)
    one, other = telemetry_stream(4, 20, t0=T0), telemetry_stream(4, 20, t0=T0, seed=2)
    assert [topic for topic, _ in one] == [topic for topic, _ in other]
    assert one != other


def test_one_message_has_distinct_readings() -> None:
    message = telemetry("pump-7", 100, T0, n=5)
    assert [r.seq for r in message.readings] == [100, 101, 102, 103, 104]
    assert [r.t for r in message.readings] == [T0 + 1000 * i for i in range(5)]
    assert len({r.score for r in message.readings}) == 5
    again = Telemetry.decode(message.encode(), "pump-7", now_ms=T0, limits=Limits())
    assert again == message
