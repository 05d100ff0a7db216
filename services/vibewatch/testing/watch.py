"""A third party on the broker: every message under a topic prefix, by device and kind."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from vibewatch.protocol import DEFAULT_PREFIX

__all__ = ["Watcher"]


class Watcher:
    """Subscribes to ``<prefix>+/#`` at QoS 1 and keeps every message, in arrival order.

    Example::

        watcher = Watcher(broker.port)
        ...
        watcher.close()
        watcher.payloads("status")["sim-0001"]   # that device's status messages, decoded
    """

    def __init__(self, port: int, *, host: str = "127.0.0.1", prefix: str = DEFAULT_PREFIX) -> None:
        """Connect and subscribe; returns once the broker granted the subscription."""
        self._prefix = prefix
        self._seen: dict[tuple[str, str], list[bytes]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, port)
        self._client.subscribe(f"{prefix}+/#", qos=1)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError(f"no SUBACK from the broker at {host}:{port} within 10 s")

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        device, _, kind = message.topic[len(self._prefix) :].partition("/")
        with self._lock:
            self._seen.setdefault((device, kind), []).append(bytes(message.payload))

    def messages(self, kind: str) -> dict[str, list[bytes]]:
        """The payloads of ``kind`` (``telemetry``, ``status``, ``ota/req`` ...) by device,
        as they arrived (a redelivered message twice)."""
        with self._lock:
            return {device: list(p) for (device, k), p in self._seen.items() if k == kind}

    def payloads(self, kind: str) -> dict[str, list[Any]]:
        """The distinct non-empty JSON payloads of ``kind`` by device, decoded, in order."""
        return {
            device: [json.loads(p) for p in dict.fromkeys(payloads) if p]
            for device, payloads in self.messages(kind).items()
        }

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()
