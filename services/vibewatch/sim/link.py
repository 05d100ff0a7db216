"""One simulated device's MQTT connection: the C device layer on one side, a broker on the other.

:class:`DeviceLink` is what a board's MQTT client is to the firmware: it connects with
the device's last will registered on ``status`` (retained), subscribes to the device's
three downlink topics, publishes what the device publishes (QoS 1, ``status`` retained),
hands downlink messages to the device, and connects again when the connection is lost.
Its input and output run on a :class:`~vibewatch.sim.network.Network`, shared by all the
links of a fleet (or one of its own). The device layer is single-threaded, so downlink
messages are queued by the network thread and handed over by :meth:`DeviceLink.deliver`,
called from the thread that also feeds the device its windows; after a reconnection,
that call also has the device publish its birth message again. A :class:`LinkFaults`
makes the downlink lossy, duplicating and reordering, as a radio link can be::

    link = DeviceLink("pump-7", port=broker_port, network=network)
    device = Device(slots, firmware="1.0.0", publish=link.publish, ...)
    link.connect(device)            # last will, subscriptions
    device.connected()              # the retained birth message
    while running:
        link.deliver()              # commands, OTA jobs and chunks; a birth after reconnecting
        device.window(next_window())
        device.poll()
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as paho

from vibewatch.edge.device import Device
from vibewatch.errors import EdgeError, MqttError
from vibewatch.mqtt import BrokerSettings, new_client
from vibewatch.protocol import DEFAULT_PREFIX, Kind, topic_for
from vibewatch.sim.network import Network

__all__ = ["DeviceLink", "LinkFaults"]

log = logging.getLogger(__name__)

#: The downlink kinds a device subscribes to, and the device's handler of each.
DOWNLINK = (Kind.CMD, Kind.OTA_JOB, Kind.OTA_CHUNK)


@dataclass(frozen=True)
class LinkFaults:
    """What the downlink does to messages on their way to the device.

    Attributes:
        loss: Probability that a message is lost, 0..1.
        duplicate: Probability that a message arrives twice, 0..1.
        reorder: Probability that a message is held back behind the next one, 0..1.
        seed: Seed of the random choices.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse probabilities outside 0..1.

        Raises:
            ValueError: A probability is outside 0..1.
        """
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LinkFaults.{name} must be in 0..1, got {value}")


class DeviceLink:
    """The MQTT connection of one simulated device."""

    def __init__(
        self,
        device_id: str,
        *,
        port: int,
        host: str = "127.0.0.1",
        username: str = "",
        password: str = "",
        tls_ca_file: str = "",
        prefix: str = DEFAULT_PREFIX,
        faults: LinkFaults = LinkFaults(),
        keepalive: int = 30,
        network: Network | None = None,
        reconnect_s: float = 1.0,
        on_acknowledged: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """Prepare the client; :meth:`connect` connects.

        Args:
            device_id: The device id (the topic level and the MQTT client id).
            port: Broker port.
            host: Broker address.
            username: User name at the broker; empty for none.
            password: Password at the broker (with a user name).
            tls_ca_file: CA bundle of the broker's certificate: TLS; empty for plain TCP.
            prefix: Topic prefix of the wire contract.
            faults: What the downlink does to messages.
            keepalive: MQTT keepalive in seconds.
            network: The network thread its input and output run on; one of its own
                when None (stopped by :meth:`close` and :meth:`drop`).
            reconnect_s: Seconds before connecting again after a lost connection.
            on_acknowledged: Called on the network thread with (suffix, payload) of each
                published message the broker accepted (PUBACK).

        Raises:
            ProtocolError: ``bad_device_id``.
            ConfigError: The prefix is unusable.
        """
        self.device_id = device_id
        self._prefix = prefix
        self._host, self._port, self._keepalive = host, port, keepalive
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._topics = {topic_for(prefix, device_id, kind): kind for kind in DOWNLINK}
        self._inbox: deque[tuple[Kind, bytes]] = deque()
        self._held: tuple[Kind, bytes] | None = None
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._refused: MqttError | None = None  # what the broker refused, while connecting
        self._answered = threading.Event()  # subscribed, or refused
        self._disconnected = threading.Event()
        self._reborn = False  # connected again: the device owes its birth message
        self._ever_connected = False
        self._closing = False
        self._reconnect_s = reconnect_s
        self._device: Device | None = None
        self._on_acknowledged = on_acknowledged
        self._unacknowledged: dict[int, tuple[str, bytes]] = {}  # by packet id
        self._early_acks: dict[int, bool] = {}  # PUBACKs (accepted?) that beat publish() home
        self.delivered = 0
        self.lost = 0
        self.refused = 0
        self.tamper: Callable[[Kind, bytes], bytes] | None = None
        """A man in the middle on the radio link: every downlink message goes through it
        on its way to the device (the tests' attacker)."""
        self._client = new_client(
            BrokerSettings(
                client_id=device_id,
                username=username,
                password=password,
                tls_ca_file=tls_ca_file,
            )
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._own_network = network is None
        self._network = network or Network(name=f"vibewatch-link-{device_id}")
        if self._own_network:
            self._network.start()
        self._network.attach(self._client)

    def connect(self, device: Device, timeout: float = 10.0) -> None:
        """Register the device's last will, connect, subscribe to its downlink topics.

        Raises:
            MqttError: The broker refused the connection or a subscription.
            TimeoutError: The broker did not answer within ``timeout``.
            OSError: The broker cannot be reached.
        """
        self._device = device
        status = topic_for(self._prefix, self.device_id, Kind.STATUS)
        self._client.will_set(status, device.last_will(), qos=1, retain=True)
        self._client.connect(self._host, self._port, keepalive=self._keepalive)
        if not self._answered.wait(timeout):
            raise TimeoutError(f"{self.device_id}: no SUBACK within {timeout:g}s")
        if self._refused is not None:
            self._closing = True
            self._client.disconnect()
            self._finish()
            raise self._refused

    def announce(self) -> None:
        """Have the device publish its birth message at the next :meth:`deliver`, and at
        the ones after until it is taken."""
        with self._lock:
            self._reborn = True

    def replace_device(self, device: Device) -> None:
        """Hand downlink messages to ``device`` from now on (the same device, rebooted)."""
        self._device = device

    @property
    def connected(self) -> bool:
        """Whether the link is up and its subscriptions granted."""
        return self._subscribed.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (no last will); no reconnection."""
        self._closing = True
        if self._client.disconnect() == paho.MQTT_ERR_SUCCESS:
            self._disconnected.wait(timeout)
        self._finish()

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT, for good (a device that died): the
        broker publishes the last will."""
        self._closing = True
        self._cut()
        self._finish()

    def interrupt(self) -> None:
        """Lose the connection without a DISCONNECT (the radio link broke): the broker
        publishes the last will, and the link connects again after ``reconnect_s``."""
        self._cut()

    def _cut(self) -> None:
        sock = self._client.socket()

        def shut() -> None:
            # read as the end of the stream: paho closes the connection as lost
            with contextlib.suppress(OSError):
                cast(socket.socket, sock).shutdown(socket.SHUT_RDWR)

        if sock is not None:
            self._network.call(shut)

    def _finish(self) -> None:
        self._network.detach(self._client)
        if self._own_network:
            self._network.stop()

    # ---- uplink ----

    def publish(self, suffix: str, payload: bytes) -> bool:
        """The device's port ``publish``: QoS 1, ``status`` retained.

        Returns whether the MQTT client took the message, which it then delivers, across
        reconnections if need be; while the connection is down it takes none (the device
        keeps what it could not send).
        """
        if not self._client.is_connected():
            return False
        kind = Kind(suffix)
        info = self._client.publish(
            topic_for(self._prefix, self.device_id, kind), payload, qos=1, retain=kind.retained
        )
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):  # NO_CONN: queued
            return False
        if self._on_acknowledged is not None:
            with self._lock:
                accepted = self._early_acks.pop(info.mid, None)
                if accepted is None:
                    self._unacknowledged[info.mid] = (suffix, payload)
            if accepted:
                self._on_acknowledged(suffix, payload)
        return True

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if self._on_acknowledged is None:
            return
        with self._lock:  # never held while calling paho: paho holds its own lock here
            message = self._unacknowledged.pop(mid, None)
            if message is None:
                self._early_acks[mid] = not reason.is_failure
        if message is not None and not reason.is_failure:
            self._on_acknowledged(*message)

    # ---- downlink ----

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refuse(f"{self.device_id}: the broker refused the connection", reason)
            return
        self._disconnected.clear()
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_subscribe(self, _c: paho.Client, _u: Any, _m: int, reasons: Any, _p: Any) -> None:
        refused = [reason for reason in reasons if reason.is_failure]
        if refused:
            self._refuse(f"{self.device_id}: the broker refused a subscription", refused[0])
            return
        with self._lock:
            self._reborn = self._ever_connected
            self._ever_connected = True
        self._subscribed.set()
        self._answered.set()

    def _refuse(self, what: str, reason: Any) -> None:
        error = MqttError(what, int(reason.value), str(reason))
        log.error("%s", error)
        self._refused = error
        self._answered.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._subscribed.clear()
        self._disconnected.set()
        if self._closing:
            return
        log.info(
            "%s: connection lost (%s), again in %gs", self.device_id, reason, self._reconnect_s
        )
        self._network.call_later(self._reconnect_s, self._reconnect)

    def _reconnect(self) -> None:
        if self._closing:
            return
        try:
            self._client.reconnect()
        except OSError as exc:
            log.info(
                "%s: cannot connect (%s), again in %gs", self.device_id, exc, self._reconnect_s
            )
            self._network.call_later(self._reconnect_s, self._reconnect)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        kind = self._topics.get(message.topic)
        if kind is None:
            return  # not the device's
        with self._lock:
            self._inbox.append((kind, bytes(message.payload)))

    def deliver(self) -> int:
        """Hand the queued downlink messages to the device, through the link's faults;
        after a reconnection (or :meth:`announce`), first have the device publish its birth
        message.

        Returns:
            Messages handed over (duplicates included).
        """
        with self._lock:
            queued = list(self._inbox)
            self._inbox.clear()
            reborn, self._reborn = self._reborn, False
        if reborn and self._device is not None:
            try:
                self._device.connected()  # the retained status again, over the last will
            except EdgeError as exc:  # not taken (the link broke again): at the next call
                log.debug("%s: birth message not sent: %s", self.device_id, exc)
                with self._lock:
                    self._reborn = True
        handed = 0
        for message in queued:
            if self._rng.random() < self._faults.loss:
                self.lost += 1
                continue
            if self._held is None and self._rng.random() < self._faults.reorder:
                self._held = message  # overtaken by the next message
                continue
            copies = 2 if self._rng.random() < self._faults.duplicate else 1
            for _ in range(copies):
                handed += self._hand(message)
            if self._held is not None:
                handed += self._hand(self._held)
                self._held = None
        return handed

    def _hand(self, message: tuple[Kind, bytes]) -> int:
        kind, payload = message
        device = self._device
        if device is None or not device.powered:  # lost with the power, as over the air
            return 0
        if self.tamper is not None:
            payload = self.tamper(kind, payload)
        handler = {
            Kind.CMD: device.command,
            Kind.OTA_JOB: device.ota_job,
            Kind.OTA_CHUNK: device.ota_chunk,
        }[kind]
        try:
            handler(payload)
        except EdgeError as exc:  # refused by the firmware: counted, as a device would
            self.refused += 1
            log.debug("%s: %s refused: %s", self.device_id, kind.value, exc)
        self.delivered += 1
        return 1
