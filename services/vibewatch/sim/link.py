"""One simulated device's MQTT connection: the C device layer on one side, a broker on the other.

:class:`DeviceLink` is what a board's MQTT client is to the firmware: it connects with
the device's last will registered on ``status`` (retained), subscribes to the device's
three downlink topics, publishes what the device publishes (QoS 1, ``status`` retained)
and hands downlink messages to the device. The device layer is single-threaded, so
downlink messages are queued by paho's network thread and handed over by
:meth:`DeviceLink.deliver`, called from the thread that also feeds the device its
windows. A :class:`LinkFaults` makes the downlink lossy, duplicating and reordering,
as a radio link can be::

    link = DeviceLink("pump-7", port=broker_port)
    device = Device(slots, firmware="1.0.0", publish=link.publish, ...)
    link.connect(device)            # last will, subscriptions
    device.connected()              # the retained birth message
    while running:
        link.deliver()              # commands, OTA jobs and chunks
        device.window(next_window())
        device.poll()
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from vibewatch.edge.device import Device
from vibewatch.errors import EdgeError
from vibewatch.protocol import DEFAULT_PREFIX, Kind, topic_for

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
        prefix: str = DEFAULT_PREFIX,
        faults: LinkFaults = LinkFaults(),
        keepalive: int = 30,
    ) -> None:
        """Prepare the client; :meth:`connect` connects.

        Args:
            device_id: The device id (the topic level and the MQTT client id).
            port: Broker port.
            host: Broker address.
            prefix: Topic prefix of the wire contract.
            faults: What the downlink does to messages.
            keepalive: MQTT keepalive in seconds.

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
        self._device: Device | None = None
        self.delivered = 0
        self.lost = 0
        self.refused = 0
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=paho.MQTTv5,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def connect(self, device: Device, timeout: float = 10.0) -> None:
        """Register the device's last will, connect, subscribe to its downlink topics.

        Raises:
            TimeoutError: The broker did not grant the subscriptions within ``timeout``.
            OSError: The broker cannot be reached.
        """
        self._device = device
        status = topic_for(self._prefix, self.device_id, Kind.STATUS)
        self._client.will_set(status, device.last_will(), qos=1, retain=True)
        self._client.connect(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"{self.device_id}: no SUBACK within {timeout:g}s")

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT: the broker publishes the last will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    # ---- uplink ----

    def publish(self, suffix: str, payload: bytes) -> bool:
        """The device's port ``publish``: QoS 1, ``status`` retained."""
        kind = Kind(suffix)
        info = self._client.publish(
            topic_for(self._prefix, self.device_id, kind), payload, qos=1, retain=kind.retained
        )
        return info.rc == paho.MQTT_ERR_SUCCESS

    # ---- downlink ----

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("%s: connection refused: %s", self.device_id, reason)
            return
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_subscribe(self, _c: paho.Client, _u: Any, _m: int, reasons: Any, _p: Any) -> None:
        if not any(reason.is_failure for reason in reasons):
            self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        kind = self._topics.get(message.topic)
        if kind is None or (kind is Kind.OTA_JOB and not message.payload):
            return  # not the device's, or a cleared retained job
        with self._lock:
            self._inbox.append((kind, bytes(message.payload)))

    def deliver(self) -> int:
        """Hand the queued downlink messages to the device, through the link's faults.

        Returns:
            Messages handed over (duplicates included).
        """
        with self._lock:
            queued = list(self._inbox)
            self._inbox.clear()
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
        if device is None:
            return 0
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
