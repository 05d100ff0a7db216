"""Simulated devices: the C device layer on machines of their own, faults that grow, reboots."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.sim.fleet import EPOCH_MS, Fleet, ManualClock, SimClock
from vibewatch.sim.scenario import FaultPlan, Scenario

BLOB = FACTORY_MODEL.read_bytes()
KEY = Ed25519PrivateKey.generate().public_key()
SETTINGS = DeviceSettings(batch_windows=5, features_every=0)


def run(scenario: Scenario, seconds: int) -> tuple[Fleet, list[tuple[str, str, bytes]]]:
    sent: list[tuple[str, str, bytes]] = []

    def publish(device: str, suffix: str, payload: bytes) -> bool:
        sent.append((device, suffix, payload))
        return True

    clock = ManualClock()
    fleet = Fleet(
        scenario,
        BLOB,
        KEY,
        publish=publish,
        clock=clock,
        settings=SETTINGS,
    )
    for _ in range(seconds):
        clock.advance(1.0)
        assert fleet.run_due() == scenario.devices
    return fleet, sent


def test_a_growing_fault_raises_an_event_and_healthy_devices_stay_quiet() -> None:
    scenario = Scenario(
        devices=4,
        seed=5,
        faults=(
            FaultPlan("outer_race", devices=("sim-0002",), onset_s=20, growth_s=40, severity=1),
        ),
    )
    fleet, sent = run(scenario, 90)
    events = [(d, json.loads(p)) for d, s, p in sent if s == "event"]
    assert events and {d for d, _ in events} == {"sim-0002"}, events
    first = events[0][1]
    assert first["kind"] == "start"
    assert first["t"] > EPOCH_MS + 20_000  # not before the onset
    assert all(d.windows == 90 for d in fleet.devices.values())
    machines = {d.machine for d in fleet.devices.values()}
    assert len(machines) == 4  # each device its own machine


def test_the_same_scenario_publishes_the_same_messages() -> None:
    scenario = Scenario(devices=2, seed=9, faults=(FaultPlan("ball", count=1, severity=0.7),))
    assert run(scenario, 12)[1] == run(scenario, 12)[1]
    other = Scenario(devices=2, seed=10, faults=scenario.faults)
    assert run(other, 12)[1] != run(scenario, 12)[1]


def test_a_rebooted_device_keeps_counting_its_sequence_numbers_upward() -> None:
    fleet, sent = run(Scenario(devices=1), 10)
    device = fleet.devices["sim-0001"]
    device.reboot()
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    for _ in range(10):
        clock.advance(1.0)
        fleet.run_due()
    seqs = [
        reading["seq"]
        for _, suffix, payload in sent
        if suffix == "telemetry"
        for reading in json.loads(payload)["readings"]
    ]
    assert len(seqs) == 20 and seqs == sorted(seqs) and len(set(seqs)) == 20
    assert seqs[10] >> 32 == (seqs[0] >> 32) + 1  # the next boot's range


def test_the_clock_runs_at_its_speedup() -> None:
    now = [100.0]
    clock = SimClock(speedup=60, start_wall_ms=EPOCH_MS, monotonic=lambda: now[0])
    now[0] += 2.5
    assert clock.now_s() == 150 and clock.wall_ms() == EPOCH_MS + 150_000
