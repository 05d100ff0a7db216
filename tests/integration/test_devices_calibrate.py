"""``vibewatch devices calibrate`` through real Mosquitto to simulated devices, with
``vibewatch serve`` recording what their status then says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from typer.testing import CliRunner, Result

from vibewatch.cli import app
from vibewatch.edge.device import DeviceSettings
from vibewatch.sim import ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import ServiceProcess, wait_for

WINDOWS = 20


def test_devices_calibrate_sends_the_command_and_the_new_threshold_shows(
    serve: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
) -> None:
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(app, list(args), env=serve.env, catch_exceptions=False)

    simulation, clock = manual_simulation(
        Scenario(devices=3, seed=4), settings=DeviceSettings(calibrate_windows=WINDOWS)
    )
    simulation.start()

    def run(seconds: int) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.01)  # the network thread's turn

    try:
        run(2)
        wait_for(lambda: cli("devices", "list").output.count("online") == 3, 10, "statuses")
        shown = json.loads(cli("devices", "show", "sim-0001", "--json").output)
        assert shown["status"]["threshold_source"] == "model"

        unknown = cli("devices", "calibrate", "pump-*")
        assert unknown.exit_code == 2
        assert "no known device matches pump-*" in unknown.output

        # --wait: the replies come once the devices have scored their windows
        answered: list[Result] = []
        waiting = threading.Thread(
            target=lambda: answered.append(
                cli("devices", "calibrate", "sim-0001", "sim-0002", "--wait", "20", "--json")
            )
        )
        waiting.start()
        while waiting.is_alive():
            run(1)
        replies = json.loads(answered[0].output)
        assert [r["device"] for r in replies] == ["sim-0001", "sim-0002"]
        assert all(r["outcome"] == "done" and r["threshold"] > 0 for r in replies), replies

        sent = cli("devices", "calibrate", "sim-0003")  # without waiting
        assert sent.exit_code == 0 and sent.output.startswith("sim-0003: sent (calibrate-")
        run(WINDOWS + 2)

        def source(device: str) -> str:
            status = json.loads(cli("devices", "show", device, "--json").output)["status"]
            return str(status.get("threshold_source"))

        wait_for(lambda: source("sim-0003") == "calibration", 10, "the calibrated status")
        assert source("sim-0001") == "calibration"
        line = cli("devices", "show", "sim-0001").output
        assert f"threshold: {replies[0]['threshold']:.6g} (calibration)" in line
    finally:
        simulation.close()
