"""A rollout through real Mosquitto: `vibewatch ota deploy` saves it, the controller
(`vibewatch ota serve`, a process of its own) carries it out wave after wave to simulated
devices that run the firmware's device layer, and `vibewatch ota status` says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibewatch.edge.device import DeviceSettings
from vibewatch.models.keys import generate_keypair, load_private_key, load_public_key
from vibewatch.models.registry import Registry
from vibewatch.ota.store import RolloutStore
from vibewatch.sim import LinkPlan, ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.state import open_state_db
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.models import factory_version
from vibewatch.testing.servers import LocalMosquitto


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home with a signing key and version 2 of the factory model registered."""
    data = tmp_path / "home"
    generate_keypair(data / "keys" / "model-signing.key", data / "keys" / "model-signing.pub")
    key = load_private_key(data / "keys" / "model-signing.key")
    factory_version(tmp_path / "v2", key, 2)
    with Registry(data / "models", data / "state.db", key.public_key()) as registry:
        registry.register(tmp_path / "v2")
    return data


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


def test_a_rollout_goes_wave_after_wave_until_every_device_runs_the_new_model(
    home: Path,
    env: dict[str, str],
    controller: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> None:
    key = load_public_key(home / "keys" / "model-signing.pub")
    scenario = Scenario(devices=20, seed=8, link=LinkPlan(loss=0.05, duplicate=0.05))
    simulation, clock = manual_simulation(
        scenario, public_key=key, settings=DeviceSettings(features_every=0, trial_ms=10_000)
    )

    def step(seconds: int = 1) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.02)  # the network thread's turn: jobs, chunks

    db = open_state_db(home / "state.db")
    store = RolloutStore(db)
    simulation.start()
    try:
        deadline = time.monotonic() + 20
        while len(store.devices()) < 20:  # a birth the radio lost goes again at a step
            assert time.monotonic() < deadline, store.devices()
            step()
        refused = vibewatch(env, "ota", "deploy", "vibewatch-ae", "1", "--all")
        assert refused.returncode == 2
        assert "version 1 is not above what the targets run (sim-0001 runs" in refused.stderr
        unknown = vibewatch(env, "ota", "deploy", "vibewatch-ae", "2", "--devices", "nobody")
        assert unknown.returncode == 2 and "unknown devices" in unknown.stderr
        done = vibewatch(
            env, "ota", "deploy", "vibewatch-ae", "2", "--all", "--canary", "2",
            "--waves", "50%,100%", "--timeout", "10m", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        created = json.loads(done.stdout)
        assert created["rollout"] == "rollout-1" and created["waves"] == 3

        def rollout() -> dict[str, Any]:
            shown = vibewatch(env, "ota", "status", "rollout-1", "--json")
            assert shown.returncode == 0, shown.stderr
            return json.loads(shown.stdout)  # type: ignore[no-any-return]

        deadline = time.monotonic() + 240
        while store.load("rollout-1").phase.value == "running":
            assert time.monotonic() < deadline, rollout()
            step(5)
        final = rollout()
    finally:
        simulation.close()
        db.close()
    assert final["phase"] == "completed" and final["converged"] is True, final
    assert final["counts"] == {"confirmed": 20}
    for device in simulation.fleet.devices.values():
        assert device.slots.state.model_version == 2
    listed = json.loads(vibewatch(env, "ota", "list", "--json").stdout)
    assert [r["rollout"] for r in listed] == ["rollout-1"]
    assert controller.stop() == 0
