"""Fifty simulated devices through real Mosquitto into ``vibewatch serve`` (a process of its
own) and real InfluxDB: everything lands exactly once, faults raise events and healthy
devices none, a killed device goes offline through its last will, a rebooted one counts
its sequence numbers on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vibewatch.edge.device import DeviceSettings
from vibewatch.sim import FaultPlan, LinkPlan, ManualClock, PowerPlan, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, rows
from vibewatch.testing.watch import Watcher

FAULTY = {"sim-0007": "outer_race", "sim-0021": "inner_race", "sim-0042": "ball"}
REBOOTED, KILLED = "sim-0013", "sim-0030"


def test_fifty_devices_through_serve_into_influxdb(
    serve: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    watcher = Watcher(mosquitto.port)
    faults = tuple(
        FaultPlan(kind, devices=(device,), onset_s=30, growth_s=40, severity=1.0)  # type: ignore[arg-type]
        for device, kind in FAULTY.items()
    )
    simulation, clock = manual_simulation(
        Scenario(devices=50, seed=5, faults=faults),
        settings=DeviceSettings(batch_windows=5, features_every=20),
    )
    simulation.start()
    try:
        for second in range(1, 151):
            clock.advance(1.0)
            simulation.step()
            if second == 60:
                simulation.cut_power(REBOOTED)
            if second == 100:
                simulation.kill(KILLED)
            time.sleep(0.005)  # the network thread's turn
        wait_for(lambda: simulation.progress().connected == 49, 10, "every live device back")
        simulation.step()
    finally:
        simulation.close()
    summary = simulation.summary()  # every PUBACK in
    assert summary.power_losses == 1

    def stored(measurement: str, where: str = "") -> list[dict[str, Any]]:
        condition = f" WHERE {where}" if where else ""
        return rows(influxdb, influx_db, f'SELECT * FROM "{measurement}"{condition}')

    wait_for(
        lambda: len(stored("reading")) >= summary.readings_published, 30, "every published reading"
    )
    time.sleep(1.0)  # anything more would be a duplicate: give it the time to show up
    assert serve.stop() == 0
    watcher.close()

    # telemetry: each reading once, per device exactly what the broker carried
    readings = stored("reading")
    assert len(readings) == summary.readings_published
    carried = watcher.payloads("telemetry")
    for device, messages in carried.items():
        seqs = {r["seq"] for m in messages for r in m["readings"]}
        assert sum(1 for r in readings if r["device"] == device) == len(seqs), device
    assert len(carried) == 50

    # events: every faulty device raised one after its fault grew, no healthy device any
    starts = [row for row in stored("anomaly") if row["kind"] == "start"]
    assert {row["device"] for row in starts} == set(FAULTY)
    assert all(row["time"] >= 1_764_547_200_000 + 30_000 for row in starts)
    events = watcher.payloads("event")
    assert len(stored("anomaly")) == sum(map(len, events.values()))

    # features and status, once each
    features = watcher.payloads("features")
    assert len(stored("features")) == sum(map(len, features.values())) > 0
    statuses = watcher.payloads("status")
    assert len(stored("device_status")) == sum(map(len, statuses.values()))

    # the killed device went offline through its last will; the rebooted one came back (in
    # the order the broker carried them; a last will has no device time, InfluxDB keys it
    # by its arrival, not by the simulated clock)
    def states(device: str) -> tuple[list[str], list[str]]:
        in_db = [row["state"] for row in stored("device_status", f"device = '{device}'")]
        return [m["state"] for m in statuses[device]], sorted(in_db)

    assert states(KILLED) == (["online", "offline"], ["offline", "online"])
    assert states(REBOOTED) == (["online", "offline", "online"], ["offline", "online", "online"])

    # the rebooted device counted its sequence numbers upward, into a new boot
    seqs = [row["seq"] for row in stored("reading", f"device = '{REBOOTED}'")]  # time order
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [seq >> 32 for seq in (seqs[0], seqs[-1])] == [1, 2]


def test_what_qos1_promises_arrives_through_bad_links_and_power_cuts(
    serve: ServiceProcess,
    manual_simulation: Callable[..., tuple[Simulation, ManualClock]],
    influxdb: LocalInfluxDB,
    influx_db: str,
) -> None:
    scenario = Scenario(
        devices=20,
        seed=6,
        link=LinkPlan(loss=0.1, duplicate=0.1, reorder=0.1, disconnect_mean_s=30),
        power=PowerPlan(loss_mean_s=60),
    )
    simulation, clock = manual_simulation(scenario)
    simulation.start()
    try:
        for _ in range(150):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.01)
        wait_for(lambda: simulation.progress().connected == 20, 10, "every device back")
        simulation.step()
    finally:
        simulation.close()
    summary = simulation.summary()  # every PUBACK in
    assert summary.disconnects > 5 and summary.power_losses > 5, summary

    def stored() -> int:
        return influxdb.count(influx_db, "reading", "score")

    wait_for(lambda: stored() >= summary.readings_published, 30, "every published reading")
    time.sleep(1.0)
    assert serve.stop() == 0
    # every reading a device handed to its MQTT client arrived, once
    assert stored() == summary.readings_published > 20 * 100
