"""A rollout through real Mosquitto: `vibewatch ota deploy` saves it, the controller
(`vibewatch ota serve`, a process of its own) carries it out wave after wave to simulated
devices that run the firmware's device layer, and `vibewatch ota status` says so."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vibewatch.config import load_config
from vibewatch.edge.device import DeviceSettings
from vibewatch.models.keys import load_private_key, load_public_key
from vibewatch.models.package import ModelPackage
from vibewatch.models.registry import Registry
from vibewatch.ota.controller import OtaController
from vibewatch.ota.store import RolloutStore
from vibewatch.protocol import Kind, signed_model_text
from vibewatch.sim import FaultPlan, LinkPlan, ManualClock, PowerPlan, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.models import factory_version, golden_broken
from vibewatch.testing.servers import LocalMosquitto
from vibewatch.testing.watch import Watcher


@pytest.fixture
def home(tmp_path: Path, model_key: Ed25519PrivateKey) -> Path:
    """A data home with a signing key and version 2 of the factory model registered."""
    return tmp_path / "home"


@pytest.fixture
def env(home: Path, mosquitto: LocalMosquitto) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    return base | {"VIBEWATCH_DATA_HOME": str(home), "VIBEWATCH_MQTT_PORT": str(mosquitto.port)}


@pytest.fixture
def controller(env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(env, tmp_path, ("serve",), command="ota", name="ota")
    process.start()
    yield process
    process.close()


def vibewatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vibewatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


class Fleet:
    """Simulated devices on a clock the test moves, and the rollouts as the store has them."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str],
        manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
        scenario: Scenario,
        key: Ed25519PublicKey,
    ) -> None:
        self.env = env
        self.simulation, self.clock = manual_simulation(
            scenario, public_key=key, settings=DeviceSettings(features_every=0, trial_ms=10_000)
        )
        self.db = open_state_db(home / "state.db")
        self.store = RolloutStore(self.db)
        self.closed = False
        self.simulation.start()
        deadline = time.monotonic() + 20
        while len(self.store.devices()) < scenario.devices:  # a lost birth goes again
            assert time.monotonic() < deadline, self.store.devices()
            self.step()

    def step(self, seconds: int = 1) -> None:
        for _ in range(seconds):
            self.clock.advance(1.0)
            self.simulation.step()
            time.sleep(0.02)  # the network thread's turn: jobs, chunks

    def run_for(self, seconds: float) -> None:
        """Step for ``seconds`` of real time (the controller's clock)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.step()

    def run(self, rollout_id: str, limit_s: float = 120) -> dict[str, Any]:
        """Step until the rollout ends; ``vibewatch ota status --json`` of it."""
        deadline = time.monotonic() + limit_s
        while self.store.load(rollout_id).phase.value in ("running", "paused"):
            assert time.monotonic() < deadline, self.status(rollout_id)
            self.step(5)
        self.step(5)  # what follows the end: rollback commands
        return self.status(rollout_id)

    def status(self, rollout_id: str) -> dict[str, Any]:
        shown = vibewatch(self.env, "ota", "status", rollout_id, "--json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the devices (again: nothing)."""
        if not self.closed:
            self.closed = True
            self.simulation.close()
            self.db.close()


@pytest.fixture
def start_fleet(
    home: Path,
    env: dict[str, str],
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> Iterator[Callable[..., Fleet]]:
    """Starts a scenario's devices, trusting the home's signing key unless given another;
    they stop after the test."""
    started: list[Fleet] = []

    def start(scenario: Scenario, key: Ed25519PublicKey | None = None) -> Fleet:
        trusted = key or load_public_key(home / "keys" / "model-signing.pub")
        started.append(Fleet(home, env, manual_simulation, scenario, trusted))
        return started[-1]

    yield start
    for fleet in started:
        fleet.close()


def deploy(env: dict[str, str], *args: str) -> str:
    """``vibewatch ota deploy ARGS``, which must succeed; what it printed."""
    done = vibewatch(env, "ota", "deploy", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_rollout_goes_wave_after_wave_until_every_device_runs_the_new_model(
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    scenario = Scenario(devices=20, seed=8, link=LinkPlan(loss=0.05, duplicate=0.05))
    fleet = start_fleet(scenario)
    refused = vibewatch(env, "ota", "deploy", "vibewatch-ae", "1", "--all")
    assert refused.returncode == 2
    assert "version 1 is not above what the targets run (sim-0001 runs" in refused.stderr
    unknown = vibewatch(env, "ota", "deploy", "vibewatch-ae", "2", "--devices", "nobody")
    assert unknown.returncode == 2 and "unknown devices" in unknown.stderr
    done = deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "2",
        "--waves", "50%,100%", "--timeout", "10m", "--json",
    )  # fmt: skip
    created = json.loads(done)
    assert created["rollout"] == "rollout-1" and created["waves"] == 3
    final = fleet.run("rollout-1")
    fleet.close()
    assert final["phase"] == "completed" and final["converged"] is True, final
    assert final["counts"] == {"confirmed": 20}
    for device in fleet.simulation.fleet.devices.values():
        assert device.slots.state.model_version == 2
    listed = json.loads(vibewatch(env, "ota", "list", "--json").stdout)
    assert [r["rollout"] for r in listed] == ["rollout-1"]
    shown = json.loads(vibewatch(env, "devices", "show", "sim-0007", "--json").stdout)
    assert shown["online"] is True and shown["model_version"] == 2
    part = {"rollout": "rollout-1", "phase": "completed", "state": "confirmed", "wave": 2}
    assert shown["rollouts"] == [part | {"detail": ""}]
    again = vibewatch(env, "ota", "deploy", "vibewatch-ae", "2", "--all")
    assert again.returncode == 2 and "(sim-0001 runs version 2, sim-0002 runs" in again.stderr
    assert controller.stop() == 0


def test_a_canary_that_refuses_the_package_aborts_the_rollout(
    env: dict[str, str],
    mosquitto: LocalMosquitto,
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    # the fleet trusts another key than the one that signed the package
    watcher = Watcher(mosquitto.port)
    other = Ed25519PrivateKey.generate().public_key()
    fleet = start_fleet(Scenario(devices=10, seed=9), other)
    done = deploy(env, "vibewatch-ae", "2", "--all", "--canary", "1")
    waves = "rollout-1: rollout of vibewatch-ae version 2 to 10 devices in waves of 1 + 4 + 5"
    assert waves in done
    final = fleet.run("rollout-1")
    fleet.close()
    watcher.close()
    assert final["phase"] == "aborted", final
    assert final["reason"] == "a canary failed: failed (signature)"
    canary = final["devices"]["sim-0001"]
    assert canary["state"] == "failed" and canary["detail"] == "signature"
    assert final["counts"] == {"failed": 1, "queued": 9}
    jobs = watcher.messages("ota/job")
    assert set(jobs) == {"sim-0001"}  # nobody past the canary got a job
    assert jobs["sim-0001"][-1] == b""  # and the canary's retained job is cleared
    for device in fleet.simulation.fleet.devices.values():
        assert device.slots.state.model_version == 1
    text = vibewatch(env, "ota", "status", "rollout-1").stdout
    assert "aborted (a canary failed: failed (signature))" in text and "sim-0001" in text


def test_a_controller_killed_mid_rollout_resumes_where_it_was(
    env: dict[str, str],
    mosquitto: LocalMosquitto,
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    watcher = Watcher(mosquitto.port)
    fleet = start_fleet(Scenario(devices=10, seed=10))
    deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "2",
        "--waves", "50%,100%",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while fleet.store.load("rollout-1").wave < 1:  # the canaries are done
        assert time.monotonic() < deadline
        fleet.step()
    before = fleet.store.load("rollout-1")
    confirmed = [d for d, p in before.devices.items() if p.state.value == "confirmed"]
    controller.kill()  # as a crash would: nothing flushed
    fleet.step(10)  # the devices go on; their chunk requests go unanswered
    controller.start()
    final = fleet.run("rollout-1")
    fleet.close()
    watcher.close()
    assert final["phase"] == "completed" and final["converged"] is True, final
    assert confirmed == ["sim-0001", "sim-0002"]
    jobs = watcher.messages("ota/job")
    for device in confirmed:  # a device that had its model got nothing again
        assert len(jobs[device]) == 1, (device, jobs[device])
    for sim in fleet.simulation.fleet.devices.values():
        assert sim.slots.state.model_version == 2
        assert sim.device.counters.chunks_ignored == 0  # no chunk it had came again
    assert controller.stop() == 0


def test_a_broker_restarted_mid_transfer_does_not_stop_the_rollout(
    env: dict[str, str],
    mosquitto: LocalMosquitto,
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    fleet = start_fleet(Scenario(devices=10, seed=11))
    deploy(env, "vibewatch-ae", "2", "--all", "--canary", "2")
    deadline = time.monotonic() + 60
    while not any(  # a device of the second wave is downloading
        p.wave >= 1 and p.state.value == "downloading"
        for p in fleet.store.load("rollout-1").devices.values()
    ):
        assert time.monotonic() < deadline
        fleet.step()
    mosquitto.restart()  # persistence keeps the sessions and the retained jobs
    final = fleet.run("rollout-1")
    fleet.close()
    assert final["phase"] == "completed" and final["converged"] is True, final
    for device in fleet.simulation.fleet.devices.values():
        slots = device.slots.state
        assert slots.model_version == 2 and slots.state == "idle"  # no half-written slot
    assert controller.stop() == 0


def test_a_model_that_makes_the_machines_look_sicker_trips_the_regression_guard(
    tmp_path: Path,
    home: Path,
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    # version 3: the same model with a threshold far too low: every window is an anomaly
    key = load_private_key(home / "keys" / "model-signing.key")
    factory_version(tmp_path / "v3", key, 3, threshold=1e-6)
    with Registry(home / "models", home / "state.db", key.public_key()) as registry:
        registry.register(tmp_path / "v3")
    fleet = start_fleet(Scenario(devices=10, seed=12))
    fleet.run_for(10.0)  # the controller learns how quiet the fleet is on the old model
    deploy(
        env, "vibewatch-ae", "3", "--all", "--canary", "3",
        "--trial", "5s",
    )  # fmt: skip
    final = fleet.run("rollout-1")
    fleet.step(20)  # the rollback commands reach the canaries
    fleet.close()
    assert final["phase"] == "aborted", final
    assert final["reason"].startswith("regression guard: 3 anomaly events on the new model")
    assert final["counts"] == {"rolled_back": 3, "queued": 7}  # no wave after the canaries
    for device in fleet.simulation.fleet.devices.values():
        assert device.slots.state.model_version == 1  # the canaries are back on the old one
    assert controller.stop() == 0


def test_a_good_model_on_a_fleet_with_a_faulty_machine_does_not_trip_the_guard(
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    faulty = FaultPlan("outer_race", devices=("sim-0001",), severity=1.0)  # from the start
    scenario = Scenario(devices=10, seed=13, faults=(faulty,))
    fleet = start_fleet(scenario)
    fleet.step(30)  # the faulty machine alarms on the old model
    deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "3",
        "--trial", "3s",
    )  # fmt: skip
    final = fleet.run("rollout-1")
    fleet.close()
    assert final["phase"] == "completed" and final["converged"] is True, final
    assert fleet.simulation.summary().events.get("sim-0001", 0) >= 1
    assert controller.stop() == 0


def test_power_lost_at_every_step_of_an_install_leaves_every_device_a_valid_model(
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    # every install loses power once: in a chunk write, at verification or in the trial
    scenario = Scenario(devices=9, seed=3, power=PowerPlan(during_install=1.0))
    fleet = start_fleet(scenario)
    deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "9",
        "--waves", "100%",
    )  # fmt: skip
    final = fleet.run("rollout-1")
    fleet.step(20)  # after an abort: the rollback commands
    known = {d.device: d for d in fleet.store.devices()}
    fleet.close()
    summary = fleet.simulation.summary()
    assert summary.install_power_losses == 9, summary
    assert final["phase"] in ("completed", "aborted"), final
    for device_id, device in fleet.simulation.fleet.devices.items():
        state = device.slots.state
        assert state.model_version in (1, 2), device_id  # a valid model, always
        active = [slot for slot in state.slots.values() if slot.state == "active"]
        assert len(active) == 1 and active[0].version == state.model_version, state
        if final["phase"] == "completed":  # else an abort stopped the others midway
            assert final["devices"][device_id]["state"] == "confirmed"
    assert all(known[d].online for d in scenario.device_ids())  # each came back, reporting


def test_two_hundred_devices_a_tenth_on_lossy_links_all_end_on_the_new_model(
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    lossy = LinkPlan(loss=0.1, duplicate=0.05, reorder=0.05, share=0.1)
    scenario = Scenario(devices=200, seed=14, link=lossy)
    assert len(scenario.lossy_devices()) == 20
    fleet = start_fleet(scenario)
    done = deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "2",
        "--waves", "50%,100%", "--timeout", "10m",
    )  # fmt: skip
    assert "in waves of 2 + 98 + 100" in done
    final = fleet.run("rollout-1", limit_s=600)
    fleet.close()
    assert final["phase"] == "completed" and final["converged"] is True, final["reason"]
    assert final["counts"] == {"confirmed": 200}
    for device_id, device in fleet.simulation.fleet.devices.items():
        assert device.slots.state.model_version == 2, device_id
    assert controller.stop() == 0


def _flip_chunk_data(kind: Kind, payload: bytes) -> bytes:
    if kind is Kind.OTA_CHUNK and len(payload) > 16:
        changed = bytearray(payload)
        changed[16] ^= 0xFF  # the first byte of data
        return bytes(changed)
    return payload


def _job_changed(**fields: object) -> Callable[[Kind, bytes], bytes]:
    def change(kind: Kind, payload: bytes) -> bytes:
        if kind is Kind.OTA_JOB and payload:
            return json.dumps(json.loads(payload) | fields).encode()
        return payload

    return change


def test_a_job_or_chunk_changed_on_its_way_is_refused_with_its_own_reason(
    tmp_path: Path,
    home: Path,
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    key = load_private_key(home / "keys" / "model-signing.key")
    # an older job, signed once: version 1 of the model, not the one the devices run
    older = factory_version(tmp_path / "v1b", key, 1, threshold=0.5)
    replayed = {
        "model_version": 1,
        "size": len(older.vwm),
        "sha256": hashlib.sha256(older.vwm).hexdigest(),
        "signature": base64.b64encode(older.device_signature).decode(),
    }
    fleet = start_fleet(Scenario(devices=4, seed=15))
    attacks = {
        "sim-0001": ("hash", _flip_chunk_data),
        "sim-0002": ("signature", _job_changed(model_version=3)),  # the manifest changed
        "sim-0003": ("downgrade", _job_changed(**replayed)),  # an older signed job
    }
    for target, (_, change) in attacks.items():
        fleet.simulation.tamper(target, change)
        deploy(env, "vibewatch-ae", "2", "--devices", target)
    finals = [fleet.run(f"rollout-{n}") for n in (1, 2, 3)]
    fleet.close()
    for final, (target, (reason, _)) in zip(finals, attacks.items(), strict=True):
        assert final["phase"] == "aborted", final
        assert final["devices"][target] == {"state": "failed", "wave": 1, "detail": reason}
        assert final["reason"] == f"a canary failed: failed ({reason})"
    for device_id, device in fleet.simulation.fleet.devices.items():
        state = device.slots.state
        assert state.model_version == 1 and state.state == "idle", (device_id, state)
    text = vibewatch(env, "ota", "list").stdout
    assert "failed (hash)" in text and "(signature)" in text and "(downgrade)" in text
    assert controller.stop() == 0


class _Unchecked(Registry):
    """A registry that hands out version 2 with golden vectors no engine reproduces: what
    a device must refuse should a package ever get past the registry's own checks (this
    registry refuses such a package when it is registered)."""

    signing_key: Ed25519PrivateKey

    def load(self, model_id: str, version: int) -> ModelPackage:
        package = super().load(model_id, version)
        blob = golden_broken(package.vwm)
        text = signed_model_text(model_id, version, len(blob), hashlib.sha256(blob).hexdigest())
        return dataclasses.replace(package, vwm=blob, device_signature=self.signing_key.sign(text))


def test_a_package_whose_golden_vectors_fail_on_the_devices_stops_at_the_canaries(
    home: Path,
    env: dict[str, str],
    mosquitto: LocalMosquitto,
    start_fleet: Callable[..., Fleet],
) -> None:
    key = load_private_key(home / "keys" / "model-signing.key")

    def registry() -> Registry:
        opened = _Unchecked(home / "models", home / "state.db", key.public_key())
        opened.signing_key = key
        return opened

    controller = OtaController.from_config(load_config(environ=env), registry=registry)
    controller.start()
    watcher = Watcher(mosquitto.port)
    fleet = start_fleet(Scenario(devices=10, seed=16))
    deploy(
        env, "vibewatch-ae", "2", "--all", "--canary", "2",
        "--waves", "50%,100%",
    )  # fmt: skip
    final = fleet.run("rollout-1")
    fleet.close()
    watcher.close()
    assert controller.stop()
    assert final["phase"] == "aborted", final
    assert final["reason"] == "a canary failed: failed (golden)"
    assert final["counts"] == {"failed": 2, "queued": 8}
    assert set(watcher.messages("ota/job")) == {"sim-0001", "sim-0002"}  # nobody else
    for device_id, device in fleet.simulation.fleet.devices.items():
        state = device.slots.state
        assert state.model_version == 1, device_id  # the canaries kept the old model
        if device_id in ("sim-0001", "sim-0002"):
            assert sorted(s.state for s in state.slots.values()) == ["active", "invalid"]


def test_a_signed_rollback_job_and_the_operators_rollback_take_the_fleet_back(
    tmp_path: Path,
    home: Path,
    env: dict[str, str],
    controller: ServiceProcess,
    start_fleet: Callable[..., Fleet],
) -> None:
    key = load_private_key(home / "keys" / "model-signing.key")
    factory_version(tmp_path / "v3", key, 3)
    with Registry(home / "models", home / "state.db", key.public_key()) as registry:
        registry.register(tmp_path / "v3")
        older = registry.load("vibewatch-ae", 2)
    fleet = start_fleet(Scenario(devices=4, seed=17))
    up = vibewatch(env, "ota", "deploy", "vibewatch-ae", "3", "--all", "--waves", "100%")
    assert up.returncode == 0, up.stderr
    assert fleet.run("rollout-1")["converged"] is True
    down = ("ota", "deploy", "vibewatch-ae", "2", "--all", "--waves", "100%", "--rollback")
    unsigned = vibewatch(env, *down)
    assert unsigned.returncode == 2 and "no signed rollback statement" in unsigned.stderr
    signed = vibewatch(env, "models", "sign-rollback", "vibewatch-ae", "2")
    assert signed.returncode == 0, signed.stderr
    assert vibewatch(env, *down).returncode == 0
    back = fleet.run("rollout-2")
    for device in fleet.simulation.fleet.devices.values():  # the job installed it
        assert device.slots.state.model_version == 2
        active = device.slots.state.slots
        assert {s.sha256 for s in active.values() if s.state == "active"} == {
            hashlib.sha256(older.vwm).hexdigest()
        }
    undo = vibewatch(env, "ota", "rollback", "rollout-2", "--reason", "misses faults")
    assert undo.returncode == 0, undo.stderr
    deadline = time.monotonic() + 30
    while not fleet.store.load("rollout-2").counts().get("rolled_back"):
        assert time.monotonic() < deadline
        fleet.step()
    fleet.step(10)  # the rollback commands reach the devices
    undone = fleet.status("rollout-2")
    fleet.close()
    assert back["phase"] == "completed" and back["converged"] is True, back
    assert undone["counts"] == {"rolled_back": 4}
    assert undone["devices"]["sim-0001"]["detail"] == (
        "sent back to its previous model: misses faults"
    )
    for device in fleet.simulation.fleet.devices.values():  # back on what they ran before
        assert device.slots.state.model_version == 3
    assert controller.stop() == 0
