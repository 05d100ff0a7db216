"""The simulator's link and power knobs through real Mosquitto: broken links publish the
last will and come back with a birth message, power losses reboot devices that count
their sequence numbers on, and uplink loss only delays readings."""

from __future__ import annotations

import time
from collections.abc import Callable

from vibewatch.sim import LinkPlan, ManualClock, PowerPlan, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.servers import LocalMosquitto
from vibewatch.testing.watch import Watcher

PREFIX = "vw/v1/"


def test_broken_links_and_power_losses(
    mosquitto: LocalMosquitto, manual_simulation: Callable[..., tuple[Simulation, ManualClock]]
) -> None:
    watcher = Watcher(mosquitto.port, prefix=PREFIX)
    scenario = Scenario(
        devices=8,
        seed=2,
        link=LinkPlan(loss=0.05, disconnect_mean_s=40),
        power=PowerPlan(loss_mean_s=60),
    )
    simulation, clock = manual_simulation(scenario, prefix=PREFIX)
    simulation.start()
    try:
        for _ in range(120):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.02)  # the network thread's turn: reconnections
        wait_for(lambda: simulation.progress().connected == 8, 10, "every device back")
        simulation.step()  # the last births
        summary = simulation.summary()
    finally:
        simulation.close()
    time.sleep(0.5)
    watcher.close()
    assert summary.disconnects > 0 and summary.power_losses > 0, summary
    statuses, telemetry = watcher.payloads("status"), watcher.payloads("telemetry")
    for device in scenario.device_ids():
        states = [message["state"] for message in statuses[device]]
        assert states[0] == "online" and states[-1] in ("online", "offline"), states
        seqs = sorted({r["seq"] for message in telemetry[device] for r in message["readings"]})
        boots = [seq >> 32 for seq in seqs]
        assert len(seqs) > 60, (device, len(seqs))  # losses only delay most readings
        assert boots == sorted(boots)
    offline = [d for d, messages in statuses.items() if {"state": "offline"} in messages]
    assert offline  # some last will was published
    rebooted = [
        d
        for d, messages in telemetry.items()
        if len({message["readings"][0]["seq"] >> 32 for message in messages}) > 1
    ]
    assert rebooted  # a device counted on in a new boot's range
