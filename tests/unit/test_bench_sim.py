"""The fleet simulator benchmark's pure helpers (``benchmarks/sim.py``): PUBLISH sizes,
window numbers, the held clock, CPU time from ``/proc`` and the uplink figures."""

from __future__ import annotations

import os
import time

import pytest

from vibewatch.protocol import Features, FeatureVector, Reading, Telemetry

from .benchmarks import load_benchmark

bench = load_benchmark("sim")


def test_publish_packet_bytes_is_the_whole_mqtt5_publish_at_qos1() -> None:
    topic, payload = b"vw/v1/bench-0001/telemetry", b'{"readings":[]}'
    remaining = 2 + len(topic) + 2 + 1 + len(payload)
    packet = (
        bytes([0x32, remaining])  # PUBLISH, QoS 1; remaining length < 128: one byte
        + len(topic).to_bytes(2, "big")
        + topic
        + (1).to_bytes(2, "big")  # packet identifier
        + b"\x00"  # no properties
        + payload
    )
    assert bench.publish_packet_bytes(len(topic), len(payload)) == len(packet)


@pytest.mark.parametrize(
    ("payload", "total"),
    [
        (112, 1 + 1 + 127),  # remaining length 127: one byte
        (113, 1 + 2 + 128),  # 128: two bytes
        (16_368, 1 + 2 + 16_383),
        (16_369, 1 + 3 + 16_384),  # 16,384: three bytes
        (2_097_137, 1 + 4 + 2_097_152),  # 2,097,152: four bytes
    ],
)
def test_publish_packet_bytes_grows_its_remaining_length_at_the_spec_bounds(
    payload: int, total: int
) -> None:
    assert bench.publish_packet_bytes(10, payload) == total  # remaining = 15 + payload


def test_window_number_is_the_low_32_bits_of_the_last_sequence_number() -> None:
    boot = 3 << 32
    readings = tuple(Reading(boot + n, 1000 * n, 0.1, 0.2, 0.3, 1.5, 3.0) for n in range(50, 60))
    assert bench.window_number(Telemetry("d", readings)) == 59
    vector = FeatureVector(boot + 60, 60_000, (0.0, 1.0))
    assert bench.window_number(Features("d", "spec", (vector,))) == 60
    assert bench.window_number(object()) is None


def test_held_time_stands_at_zero_until_released() -> None:
    held = bench.HeldTime()
    assert held() == 0.0
    held.release()
    first = held()
    time.sleep(0.01)
    assert 0.0 <= first < held()


def test_cpu_seconds_reads_what_os_times_says() -> None:
    times = os.times()
    assert bench.cpu_seconds(os.getpid()) == pytest.approx(times.user + times.system, abs=0.1)


def test_uplink_per_device_hour_divides_by_devices_and_simulated_hours() -> None:
    results = bench.Results(devices=2, duration_s=90.0, seed=0)
    assert results.uplink_per_device_hour() is None  # no whole schedule counted
    results.span_windows = 60  # one simulated minute
    results.uplink_span_bytes = {"telemetry": 1200, "features": 120}
    assert results.uplink_per_device_hour() == pytest.approx(1320 / 2 * 60)
    assert results.uplink_per_device_hour(["telemetry"]) == pytest.approx(1200 / 2 * 60)
    results.sample_rate_hz, results.window_samples = 48_000, 1024
    assert results.raw_stream_bytes_per_device_hour == 48_000 * 2 * 3600
    assert results.raw_window_bytes_per_device_hour == 1024 * 2 * 3600
