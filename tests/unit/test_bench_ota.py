"""The OTA rollout benchmark's pure parts (``benchmarks/ota.py``): the widened model, the
fleet's figures from the devices' slots, the waves' times, the downlink count and the bars."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.engine import Model
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.ota import DeviceCapabilities, Manifest, SlotDevice
from vibewatch.models.package import verify_package
from vibewatch.ota.rollout import Rollout, RolloutPlan
from vibewatch.protocol import OtaChunk, OtaState
from vibewatch.sim.fleet import Fleet
from vibewatch.sim.scenario import Scenario

from .benchmarks import load_benchmark

bench = load_benchmark("ota")
FACTORY = FACTORY_MODEL.read_bytes()


def test_the_conversion_path_rebuilds_the_factory_blob_byte_for_byte() -> None:
    parts = bench.factory_parts()
    assert [layer.weights.shape for layer in parts.layers] == [(32, 37), (8, 32), (32, 8), (37, 32)]
    assert bench.convert_layers(parts, parts.layers, 1)[1] == FACTORY


def test_a_widened_model_scores_every_input_as_the_factory_model_does() -> None:
    parts = bench.factory_parts()
    layers = bench.widen(parts.layers, 21)
    assert [layer.weights.shape for layer in layers] == [(53, 37), (8, 53), (53, 8), (37, 53)]
    wide, factory = Model(bench.convert_layers(parts, layers, 2)[1]), Model(FACTORY)
    assert wide.version == 2 and wide.blob_bytes > factory.blob_bytes
    features = np.random.default_rng(4).normal(0.0, 3.0, (300, factory.n_features))
    assert np.array_equal(wide.score(features), factory.score(features))
    quantised = np.random.default_rng(5).integers(-128, 128, (50, factory.n_features))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(wide.run(quantised), factory.run(quantised), strict=True)
    )


def test_the_package_reaches_the_target_with_the_fewest_units_and_fits_a_device(
    tmp_path: Path,
) -> None:
    key = Ed25519PrivateKey.generate()
    package = bench.widened_package(tmp_path / "p", key, version=2, target_bytes=20_000)
    verify_package(package.path, key.public_key())
    assert package.version == 2 and package.model_id == "vibewatch-ae"
    assert len(package.vwm) >= 20_000
    parts = bench.factory_parts()
    units = package.manifest["architecture"]["dims"][1]
    fewer = bench.widen(parts.layers, units - 32 - 1)
    assert len(bench.convert_layers(parts, fewer, 2)[1]) < 20_000
    room = DeviceCapabilities(sample_rate_hz=48_000).engine_work_bytes
    assert package.manifest["device"]["ram_bytes"] == Model(package.vwm).ram_bytes <= room


def _install(slots: SlotDevice, blob: bytes, key: Ed25519PrivateKey, *, confirm: bool) -> None:
    manifest = Manifest.for_blob("vibewatch-ae", 2, blob, chunk_size=4096)
    slots.begin(manifest, manifest.sign(key))
    while (missing := slots.next_missing()) is not None:
        offset, length = missing
        slots.chunk(offset, blob[offset : offset + length])
    slots.finish()
    if confirm:
        slots.confirm()


def test_the_fleet_figures_come_from_the_devices_slots() -> None:
    key = Ed25519PrivateKey.generate()
    parts = bench.factory_parts()
    new = bench.convert_layers(parts, bench.widen(parts.layers, 8), 2)[1]
    fleet = Fleet(Scenario(devices=4), FACTORY, key.public_key(), publish=lambda *_: True)
    devices = list(fleet.devices.values())
    _install(devices[0].slots, new, key, confirm=True)
    _install(devices[1].slots, new, key, confirm=False)  # on trial: not converged yet
    empty = SlotDevice(key.public_key(), DeviceCapabilities(sample_rate_hz=48_000))
    empty.boot()  # no model at all
    figures = bench.fleet_figures(
        [*devices, SimpleNamespace(slots=empty)],
        hashlib.sha256(new).hexdigest(),
        hashlib.sha256(FACTORY).hexdigest(),
    )
    assert figures == (1, 1, 2)  # converged, bricked, on the factory model


def test_wave_times_count_from_each_waves_start() -> None:
    plan = RolloutPlan("vibewatch-ae", 2, ("a", "b", "c"), canary=1, waves=(1.0,))
    rollout = Rollout("rollout-1", plan)
    rollout.start(100.0)
    rollout.report("a", OtaState.ACTIVATED, 101.0)
    rollout.report("a", OtaState.INSTALLED, 106.0)  # the canary is done: wave 2 starts
    rollout.report("b", OtaState.ACTIVATED, 107.0)
    rollout.report("b", OtaState.INSTALLED, 112.0)
    times = bench.wave_times(rollout, 99.5)
    assert times == [
        bench.WaveTimes(devices=1, started_s=0.5, activated_s=1.0, done_s=6.0),
        bench.WaveTimes(devices=2, started_s=6.5, activated_s=None, done_s=None),
    ]


def _message(topic: str, payload: bytes) -> paho.MQTTMessage:
    message = paho.MQTTMessage(mid=1, topic=topic.encode())
    message.payload = payload
    message.qos = 1
    return message


def test_the_downlink_counter_counts_publish_bytes_and_what_came_again() -> None:
    counter = bench.DownlinkCounter(1883, "vw/v1/")  # not connected: fed by hand
    chunk = OtaChunk.for_job("d1", "rollout-1.vibewatch-ae.v2", 4096, b"x" * 4096).encode()
    job = b'{"job":"rollout-1.vibewatch-ae.v2"}'
    for topic, payload in [
        ("vw/v1/d1/ota/job", job),
        ("vw/v1/d1/ota/chunk", chunk),
        ("vw/v1/d1/ota/chunk", chunk),  # asked for again
        ("vw/v1/d2/ota/chunk", chunk),  # another device's
        ("vw/v1/d1/ota/job", job),  # published again
        ("vw/v1/d1/ota/job", b""),  # the retained job cleared
        ("vw/v1/d1/cmd", b'{"cmd":"rollback"}'),
    ]:
        counter._on_message(None, None, _message(topic, payload))
    assert counter.messages == {"ota/job": 3, "ota/chunk": 3, "cmd": 1}
    assert counter.jobs_again == 1 and counter.chunks_again == 1 and counter.other_qos == 0
    chunk_bytes = bench.publish_packet_bytes(len("vw/v1/d1/ota/chunk"), len(chunk))
    assert chunk_bytes == 1 + 2 + 2 + 18 + 2 + 1 + len(chunk)  # remaining length: 2 bytes
    assert counter.packet_bytes["ota/chunk"] == 3 * chunk_bytes
    assert counter.total_bytes == sum(counter.packet_bytes.values())


def test_wall_seconds_leave_out_one_trial_per_wave_and_the_bars_follow() -> None:
    results = bench.Results(devices=10, seed=0, canary=1, waves_plan="50%,100%", trial_s=5.0)
    results.wave_sizes, results.elapsed_s = [1, 4, 5], 140.0
    results.model_bytes, results.downlink_bytes = 20_000, {"ota/chunk": 200_000, "ota/job": 3_000}
    results.converged, results.status_phase, results.status_converged = 10, "completed", True
    assert results.wall_seconds == 125.0 and results.bytes_sent_per_device == 20_300
    missed = [name for name, met, _ in results.bars() if not met]
    assert missed == ["wall_seconds <= 120"]
    faster = dataclasses.replace(results, elapsed_s=135.0)
    assert all(met for _, met, _ in faster.bars()) and faster.as_json()["bars_met"] is True
    heavier = dataclasses.replace(faster, downlink_bytes={"ota/chunk": 230_010})
    assert [name for name, met, _ in heavier.bars() if not met] == [
        "bytes_sent_per_device <= 1.15 x model_bytes"
    ]
    assert dataclasses.replace(results, elapsed_s=None).wall_seconds is None
