"""A simulation run: a scenario's fleet, each device with its MQTT link, on one network.

:class:`Simulation` connects every device of a :class:`~vibewatch.sim.fleet.Fleet` to the
broker through its :class:`~vibewatch.sim.link.DeviceLink` (all of them on one
:class:`~vibewatch.sim.network.Network`), has each publish its birth message, and then,
step after step, hands the devices their downlink messages and the windows that fell
due, and carries out the scenario's link and power knobs: a link that breaks (the last
will, then a reconnection and a new birth), a device that loses power (a reboot with what
its storage holds), at random or aimed into a model install.
:meth:`Simulation.progress` says where the run is; :meth:`Simulation.summary` what it did.

A model install is followed through what the device layer reports on ``ota/req``: it
starts with ``downloading`` for a job (the device accepted the signed ``ota/job``) and
ends with ``installed``, ``failed`` or ``rolled_back`` for that job, or with a power loss
during its trial (the boot falls back to the previous model). With ``[power]
during_install = P``, an install loses power with probability P, once, at one of three
points drawn with equal chances:

- ``download``: at the k-th storage write from the first ``downloading`` report, k drawn
  from 1 to the number of chunks still missing (each chunk is at least one write, so the
  cut falls inside the download); a prefix of the write shorter than the smallest chunk
  reaches storage (:meth:`~vibewatch.edge.ota.SlotDevice.inject_reset`);
- ``verify``: when the device reports ``verifying`` (the last chunk is stored), at its
  next storage write, of which nothing reaches storage: the activation record;
- ``trial``: at a time drawn within the trial that follows ``activated`` (``trial_ms``
  of the device's settings), if the model is still on trial.

A device whose storage write cut the power is rebooted before it scores another window.
What the device does next (resume the download, verify again, fall back) is the device
layer's.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.config import MqttConfig
from vibewatch.edge.device import DeviceSettings
from vibewatch.protocol import (
    DEFAULT_PREFIX,
    MIN_CHUNK_SIZE,
    Kind,
    Limits,
    Telemetry,
    decode_message,
)
from vibewatch.sim.fleet import Clock, Fleet
from vibewatch.sim.link import DeviceLink, LinkFaults
from vibewatch.sim.network import Network, raise_open_files_limit
from vibewatch.sim.scenario import Scenario

#: The wire contract's bounds, with which the devices' telemetry is counted.
LIMITS = Limits()

__all__ = ["Progress", "Simulation", "Summary"]

#: Where ``[power] during_install`` cuts the power of an install (the module documentation).
_InstallPoint = Literal["download", "verify", "trial"]
_INSTALL_POINTS: tuple[_InstallPoint, ...] = ("download", "verify", "trial")
#: The ``ota/req`` states that end an install.
_INSTALL_ENDS = ("installed", "failed", "rolled_back")


@dataclass
class _Install:
    """A model install in progress on a device, and where its power is to go.

    Attributes:
        job: The job id its reports name.
        point: Where the power goes; None: it does not.
        share: How far into the point's span, in [0, 1).
        cut_at_s: Simulated time of a ``trial`` cut, once the trial started.
        done: The planned cut is armed or timed (an install loses power once).
    """

    job: str
    point: _InstallPoint | None
    share: float
    cut_at_s: float | None = None
    done: bool = False


@dataclass(frozen=True)
class Progress:
    """Where a run is.

    Attributes:
        simulated_s: Simulated seconds since the start.
        connected: Devices whose link is up.
        devices: Devices in the fleet.
        windows: Windows scored so far.
        windows_per_s: Windows per real second since the previous progress.
        events: Anomaly events started so far.
        published: Messages the devices published.
        disconnects: Links broken on purpose.
        power_losses: Devices rebooted on purpose.
        install_power_losses: Of those, the ones during a model install.
        ota: Devices in each OTA state but ``idle`` (``downloading``, ``trial``,
            ``no_model``), as their slots report it.
    """

    simulated_s: float
    connected: int
    devices: int
    windows: int
    windows_per_s: float
    events: int
    published: int
    disconnects: int
    power_losses: int
    install_power_losses: int
    ota: dict[str, int]

    def line(self) -> str:
        """The progress as one line of text."""
        ota = ", ".join(f"{count} {state}" for state, count in sorted(self.ota.items()))
        return (
            f"t={self.simulated_s:7.0f}s  connected {self.connected}/{self.devices}  "
            f"{self.windows_per_s:7.0f} windows/s  events {self.events}  "
            f"published {self.published}  OTA {ota or 'idle'}  disconnects {self.disconnects}  "
            f"power losses {self.power_losses} ({self.install_power_losses} mid-install)"
        )


@dataclass(frozen=True)
class Summary:
    """What a run did (``--json`` prints it).

    Attributes:
        devices: Devices in the fleet.
        simulated_s: Simulated seconds run.
        seconds: Real seconds run.
        windows: Windows scored.
        windows_per_s: Windows per real second, over the run.
        realtime: Every device kept up with the simulated clock: it scored every window
            that fell due (but the one that may fall due as the run ends).
        published: Messages published.
        readings_published: Telemetry readings in the published messages the broker
            accepted (PUBACK).
        events: Anomaly events started, by device.
        faults: The faults of each faulty device.
        disconnects: Links broken on purpose.
        power_losses: Devices rebooted on purpose.
        install_power_losses: Of those, the ones during a model install.
    """

    devices: int
    simulated_s: float
    seconds: float
    windows: int
    windows_per_s: float
    realtime: bool
    published: int
    readings_published: int
    events: dict[str, int]
    faults: dict[str, list[str]]
    disconnects: int
    power_losses: int
    install_power_losses: int


class Simulation:
    """A scenario's fleet on a broker (see the module documentation).

    Args:
        scenario: What to simulate.
        blob: The factory model of every device.
        public_key: The fleet's OTA key.
        host: Broker address.
        port: Broker port.
        username: User name at the broker; empty for none.
        password: Password at the broker.
        tls_ca_file: CA bundle of the broker's certificate: TLS; empty for plain TCP.
        prefix: Topic prefix of the wire contract.
        settings: The device layer's settings (the defaults when None).
        clock: Simulated time; real time at the scenario's speedup when None.
        window_period_s: Simulated seconds between two windows of a device.
        reconnect_s: Real seconds before a broken link connects again.
    """

    def __init__(
        self,
        scenario: Scenario,
        blob: bytes,
        public_key: Ed25519PublicKey,
        *,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        tls_ca_file: str = "",
        prefix: str = DEFAULT_PREFIX,
        settings: DeviceSettings | None = None,
        clock: Clock | None = None,
        window_period_s: float = 1.0,
        reconnect_s: float = 1.0,
    ) -> None:
        self.scenario = scenario
        self._links: dict[str, DeviceLink] = {}
        self._events: dict[str, int] = {}
        self._published = 0
        self._readings = 0
        self.fleet = Fleet(
            scenario,
            blob,
            public_key,
            publish=self._publish,
            clock=clock,
            settings=settings,
            window_period_s=window_period_s,
        )
        self._network = Network()
        faults = scenario.link
        self._lossy = scenario.lossy_devices()
        clean = LinkFaults()
        for index, device_id in enumerate(scenario.device_ids()):
            self._links[device_id] = DeviceLink(
                device_id,
                host=host,
                port=port,
                username=username,
                password=password,
                tls_ca_file=tls_ca_file,
                prefix=prefix,
                faults=LinkFaults(
                    loss=faults.loss,
                    duplicate=faults.duplicate,
                    reorder=faults.reorder,
                    seed=scenario.seed * 7_919 + index,
                )
                if device_id in self._lossy
                else clean,
                network=self._network,
                reconnect_s=reconnect_s,
                on_acknowledged=functools.partial(self._acknowledged, device_id),
            )
        self._rng = random.Random(scenario.seed)
        self._trial_s = (settings or DeviceSettings()).trial_ms / 1000
        # each device's own draws for its installs: the same whatever the timing of others
        self._install_rngs = {
            device_id: random.Random(scenario.seed * 104_729 + index)
            for index, device_id in enumerate(scenario.device_ids())
        }
        self._installs: dict[str, _Install] = {}
        self._cuts_armed: set[str] = set()  # devices a storage write will cut the power of
        self._windows = 0
        self._disconnects = 0
        self._power_losses = 0
        self._install_power_losses = 0
        self._last_step_s = 0.0
        self._started = 0.0
        self._ended = 0.0
        self._window_period_s = window_period_s
        self._last_progress = (0.0, 0)

    @classmethod
    def from_config(
        cls,
        scenario: Scenario,
        blob: bytes,
        public_key: Ed25519PublicKey,
        mqtt: MqttConfig,
        *,
        clock: Clock | None = None,
        settings: DeviceSettings | None = None,
    ) -> Simulation:
        """A simulation on the broker of an ``[mqtt]`` configuration: its address,
        credentials, TLS and topic prefix (each device is a client of its own)."""
        return cls(
            scenario,
            blob,
            public_key,
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password.reveal(),
            tls_ca_file=str(mqtt.tls_ca_file or ""),
            prefix=mqtt.topic_prefix,
            clock=clock,
            settings=settings,
        )

    def _acknowledged(self, device_id: str, suffix: str, payload: bytes) -> None:
        """The broker accepted a message (on the network thread, the only one counting)."""
        if suffix == "telemetry":
            self._readings += len(self._decode_telemetry(device_id, payload).readings)

    def _decode_telemetry(self, device_id: str, payload: bytes) -> Telemetry:
        """A telemetry message as the wire contract reads it (the device wrote it)."""
        now_ms = self.fleet.clock.wall_ms()
        message = decode_message(Kind.TELEMETRY, device_id, payload, now_ms=now_ms, limits=LIMITS)
        assert isinstance(message, Telemetry)
        return message

    def _publish(self, device_id: str, suffix: str, payload: bytes) -> bool:
        if suffix == "ota/req" and b'"kind":"state"' in payload:
            self._ota_report(device_id, payload)  # what the device did, sent or not
        loss = self.scenario.link.loss if device_id in self._lossy else 0.0
        if loss and self._rng.random() < loss:
            return False  # the radio lost it: the device keeps what it could not send
        taken = self._links[device_id].publish(suffix, payload)
        if taken:
            self._published += 1
            if suffix == "event" and b'"kind":"start"' in payload:
                self._events[device_id] = self._events.get(device_id, 0) + 1
        return taken

    def start(self, timeout: float = 30.0) -> None:
        """Connect every device; each publishes its birth message at the first step.

        Raises:
            MqttError: The broker refused a device's connection or subscriptions.
            TimeoutError: A device's subscriptions were not granted within ``timeout``.
            OSError: The broker cannot be reached.
        """
        raise_open_files_limit(4 * len(self._links) + 256)
        self._network.start()
        for device_id, link in self._links.items():
            link.connect(self.fleet.devices[device_id].device, timeout)
            link.announce()  # the birth message, at the first step
        self._started = time.monotonic()
        self._last_step_s = self.fleet.clock.now_s()
        self._last_progress = (self._started, 0)

    def step(self) -> int:
        """Downlink messages, the windows that fell due, the link and power knobs;
        returns the windows scored."""
        for link in self._links.values():
            link.deliver()
        self._install_cuts()
        ran = self.fleet.run_due()
        self._windows += ran
        now_s = self.fleet.clock.now_s()
        elapsed, self._last_step_s = now_s - self._last_step_s, now_s
        self._knobs(elapsed)
        return ran

    def _knobs(self, elapsed_s: float) -> None:
        """Break links (of the lossy devices) and cut power at the scenario's mean
        intervals (Poisson)."""
        plans = (
            (self.scenario.link.disconnect_mean_s, self._disconnect, self._lossy),
            (self.scenario.power.loss_mean_s, self._power_loss, self._links.keys()),
        )
        for mean_s, act, devices in plans:
            if mean_s <= 0 or elapsed_s <= 0:
                continue
            chance = elapsed_s / mean_s
            for device_id in self._links:
                if device_id in devices and self._rng.random() < chance:
                    act(device_id)

    def tamper(self, device_id: str, change: Callable[[Kind, bytes], bytes]) -> None:
        """Put a man in the middle on a device's radio link: ``change`` gets each downlink
        message (its kind and payload) and returns what the device receives."""
        self._links[device_id].tamper = change

    def _disconnect(self, device_id: str) -> None:
        link = self._links[device_id]
        if link.connected:
            link.interrupt()
            self._disconnects += 1

    def _power_loss(self, device_id: str) -> None:
        if self._links[device_id].connected and device_id not in self._cuts_armed:
            self.cut_power(device_id)

    def kill(self, device_id: str) -> None:
        """The device dies for good: its connection ends without a DISCONNECT (the broker
        publishes its last will) and it scores no more windows."""
        self._links[device_id].drop()
        del self.fleet.devices[device_id]
        self._cuts_armed.discard(device_id)
        self._installs.pop(device_id, None)

    def cut_power(self, device_id: str) -> None:
        """The device loses power now (what the power knobs do at random): it boots again
        with what its storage holds, and its connection goes with the power (the last will,
        then a reconnection and a new birth message)."""
        link = self._links[device_id]
        device = self.fleet.devices[device_id]
        device.reboot()
        link.replace_device(device.device)
        link.interrupt()  # the connection goes with the power: the last will, then back
        self._power_losses += 1
        if device_id in self._installs:
            self._install_power_losses += 1
            if device.slots.state.state != "downloading":  # a trial fell back at this boot
                del self._installs[device_id]

    def _ota_report(self, device_id: str, payload: bytes) -> None:
        """Follow a device's installs through its ``ota/req`` state reports; arm the
        storage-write cuts (called from the device layer: nothing here calls into it but
        to read its state)."""
        report = json.loads(payload)
        job, state = report["job"], report["state"]
        install = self._installs.get(device_id)
        if state == "downloading" and (install is None or install.job != job):
            rng = self._install_rngs[device_id]
            hit = rng.random() < self.scenario.power.during_install
            install = _Install(job, rng.choice(_INSTALL_POINTS) if hit else None, rng.random())
            self._installs[device_id] = install
        if install is None or install.job != job:
            return  # a report on a job that is not being installed (refused, or done before)
        if state in _INSTALL_ENDS:
            del self._installs[device_id]
        elif install.done:
            return
        elif install.point == "download" and state == "downloading":
            slots = self.fleet.devices[device_id].slots
            ota = slots.state
            missing = ota.total_chunks - ota.received_chunks
            if missing > 0:
                torn = self._install_rngs[device_id].randrange(MIN_CHUNK_SIZE)
                slots.inject_reset(1 + int(install.share * missing), torn_bytes=torn)
                self._cuts_armed.add(device_id)
                install.done = True
        elif install.point == "verify" and state == "verifying":
            self.fleet.devices[device_id].slots.inject_reset(1, torn_bytes=0)
            self._cuts_armed.add(device_id)
            install.done = True
        elif install.point == "trial" and state == "activated":
            install.cut_at_s = self.fleet.clock.now_s() + install.share * self._trial_s
            install.done = True

    def _install_cuts(self) -> None:
        """Reboot the devices a storage write cut the power of, and cut the power of those
        whose trial reached its planned cut."""
        for device_id in list(self._cuts_armed):
            if not self.fleet.devices[device_id].slots.powered:
                self._cuts_armed.discard(device_id)
                self.cut_power(device_id)
        now_s = self.fleet.clock.now_s()
        for device_id, install in list(self._installs.items()):
            if install.cut_at_s is not None and now_s >= install.cut_at_s:
                install.cut_at_s = None
                if self.fleet.devices[device_id].slots.state.state == "trial":
                    self.cut_power(device_id)

    def run(self, stop: Callable[[], bool], on_progress: Callable[[Progress], None]) -> None:
        """Step until the scenario's span is over or ``stop()`` says so, reporting progress
        every real second."""
        next_progress = time.monotonic() + 1.0
        while not stop() and not self.fleet.finished():
            if self.step() == 0:
                time.sleep(0.01)
            if time.monotonic() >= next_progress:
                on_progress(self.progress())
                next_progress = time.monotonic() + 1.0

    def progress(self) -> Progress:
        """Where the run is now."""
        now = time.monotonic()
        then, windows = self._last_progress
        self._last_progress = (now, self._windows)
        return Progress(
            simulated_s=self.fleet.clock.now_s(),
            connected=sum(link.connected for link in self._links.values()),
            devices=len(self._links),
            windows=self._windows,
            windows_per_s=(self._windows - windows) / (now - then) if now > then else 0.0,
            events=sum(self._events.values()),
            published=self._published,
            disconnects=self._disconnects,
            power_losses=self._power_losses,
            install_power_losses=self._install_power_losses,
            ota=dict(
                Counter(
                    state
                    for device in self.fleet.devices.values()
                    if (state := device.slots.state.state) != "idle"
                )
            ),
        )

    def summary(self) -> Summary:
        """What the run did so far (until :meth:`close`)."""
        seconds = (self._ended or time.monotonic()) - self._started
        # windows due by the simulated clock; one may fall due at the instant the run ends
        due = int(self.fleet.clock.now_s() / self._window_period_s)
        per_s = self._windows / seconds if seconds > 0 else 0.0
        return Summary(
            devices=len(self._links),
            simulated_s=round(self.fleet.clock.now_s(), 3),
            seconds=round(seconds, 3),
            windows=self._windows,
            windows_per_s=round(per_s, 1),
            realtime=all(d.windows >= due - 1 for d in self.fleet.devices.values()),
            published=self._published,
            readings_published=self._readings,
            events=dict(sorted(self._events.items())),
            faults={
                device_id: [plan.kind for plan in device.faults]
                for device_id, device in self.fleet.devices.items()
                if device.faults
            },
            disconnects=self._disconnects,
            power_losses=self._power_losses,
            install_power_losses=self._install_power_losses,
        )

    def close(self) -> None:
        """Disconnect every device cleanly and stop the network (the run ends here; the
        summary counts the acknowledgements that arrive on the way)."""
        self._ended = time.monotonic()
        for link in self._links.values():
            link.close(timeout=1.0)
        self._network.stop()
