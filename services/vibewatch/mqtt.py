"""The MQTT adapter: the one module that talks to paho-mqtt.

:class:`DurableSubscriber` holds a persistent MQTT 5 session (stable client id,
``clean_start=False``, a session expiry interval) and subscribes at QoS 1. It
acknowledges a message only when the application says so (paho's manual ack),
which is how the ingestion service holds a PUBACK back until the message's
points are durable.

Acknowledgement tokens carry the connection generation they were received on.
The generation changes as soon as a connection is lost, and tokens from an
older generation are dropped instead of sent: the broker redelivers those
messages on the resumed session, and their rewrite is idempotent. Without
this, a packet id reused by a new session could acknowledge the wrong message.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


def share_property_tables() -> bool:
    """Make paho decode MQTT 5 properties without rebuilding its tables per packet.

    paho's ``Properties.__init__`` builds its name and type tables anew for every
    received packet, and ``unpack`` first clears 27 possible attributes from the
    fresh object; for a small PUBLISH that is a quarter of the client's time. The
    tables are never changed after they are built, so packets decoded by
    ``paho.mqtt._packet`` can share one copy, and a fresh object has nothing to
    clear. The result is identical (``tests/unit/test_mqtt.py`` decodes packets
    with properties); where paho's internals differ from the ones this was made
    for, nothing is changed.

    Returns:
        Whether the faster decoding is in place.
    """
    try:
        from paho.mqtt import _packet
    except ImportError:
        return False
    current = getattr(_packet, "Properties", None)
    if current is _SharedTableProperties:
        return True
    if current is not Properties or not hasattr(_TEMPLATE, "properties"):
        return False
    setattr(_packet, "Properties", _SharedTableProperties)  # noqa: B010 - a private name
    return True


_TEMPLATE = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


class _SharedTableProperties(Properties):
    """paho ``Properties`` whose lookup tables are shared (see :func:`share_property_tables`)."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's parameter name
        self.packetType = packetType
        self.types = _TEMPLATE.types
        self.names = _TEMPLATE.names
        self.properties = _TEMPLATE.properties

    def clear(self) -> None:
        """Nothing to clear: every decoded packet gets a fresh object."""


@dataclass(frozen=True, slots=True)
class AckToken:
    """Identifies one received QoS 1 message for a later acknowledgement."""

    generation: int
    mid: int


MessageHandler = Callable[[str | None, bytes, AckToken | None], None]
"""Called on paho's network thread with (topic or None if not UTF-8, payload, token)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerSettings:
    """Where and how to connect.

    Attributes:
        host: Broker host name or address.
        port: Broker port.
        client_id: Stable client id: the identity of the persistent session.
        username: User name; empty for none.
        password: Password; only used when ``username`` is set.
        keepalive: Keepalive interval in seconds.
        session_expiry: Seconds the broker keeps the session while disconnected.
        receive_maximum: Unacknowledged QoS 1 messages the broker may send at once.
        tls_ca_file: CA bundle enabling TLS; empty for plain TCP.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "vibewatch-ingest"
    username: str = ""
    password: str = ""
    keepalive: int = 30
    session_expiry: int = 86400
    receive_maximum: int = 2000
    tls_ca_file: str = ""


class DurableSubscriber:
    """A persistent-session QoS 1 subscriber with manual, generation-checked acks."""

    def __init__(
        self,
        settings: BrokerSettings,
        filters: Sequence[str],
        on_message: MessageHandler,
    ) -> None:
        """Prepare the client; :meth:`start` connects.

        Args:
            settings: Connection settings.
            filters: Topic filters to subscribe at QoS 1 (``$share/...`` allowed).
            on_message: Receives every message; must not raise.
        """
        share_property_tables()
        self._settings = settings
        self._filters = list(filters)
        self._handler = on_message
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = False
        self.stale_acks = 0
        self.connects = 0
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls_ca_file:
            client.tls_set(ca_certs=settings.tls_ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self, timeout: float = 30.0) -> None:
        """Connect (retrying in the background) and wait up to ``timeout`` for the first CONNACK.

        Raises:
            TimeoutError: No connection within ``timeout``; the client keeps trying
                until :meth:`stop`.
        """
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.session_expiry
        properties.ReceiveMaximum = self._settings.receive_maximum
        self._client.connect_async(
            self._settings.host,
            self._settings.port,
            keepalive=self._settings.keepalive,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(
                f"no MQTT connection to {self._settings.host}:{self._settings.port} "
                f"within {timeout:.0f}s; still retrying"
            )

    @property
    def connected(self) -> bool:
        """Whether a session is currently up."""
        return self._connected.is_set()

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        with self._lock:
            self._generation += 1
            self.connects += 1
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(topic, options) for topic in self._filters])
        self._connected.set()
        log.info(
            "MQTT connected to %s:%d as %s (session present: %s); subscribed to %s",
            self._settings.host,
            self._settings.port,
            self._settings.client_id,
            bool(getattr(_flags, "session_present", False)),
            ", ".join(self._filters),
        )

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._lock:
            self._generation += 1
        self._connected.clear()
        if self._stopping:
            log.info("MQTT disconnected (%s)", reason)
        else:
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic: str | None = message.topic
        except UnicodeDecodeError:
            topic = None
        token = AckToken(self._generation, message.mid) if message.qos > 0 else None
        self._handler(topic, bytes(message.payload), token)

    def ack(self, tokens: Sequence[AckToken]) -> None:
        """Acknowledge messages; tokens of a lost connection are dropped (and counted)."""
        with self._lock:
            for token in tokens:
                if token.generation == self._generation:
                    self._client.ack(token.mid, 1)
                else:
                    self.stale_acks += 1

    def stop(self) -> None:
        """Disconnect cleanly (queued acknowledgements go out first) and stop the network thread."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
