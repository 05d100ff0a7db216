"""The MQTT adapter: the one module that talks to paho-mqtt.

:class:`MqttSession` holds a persistent MQTT 5 session (stable client id,
``clean_start=False``, a session expiry interval) and goes both ways. It
subscribes at QoS 1 and acknowledges a message only when the application says
so (paho's manual ack), which is how the ingestion service holds a PUBACK back
until the message's points are durable; it publishes at QoS 1 (retained when
asked) and returns once the broker's PUBACK accepted the message. It is ready
when the broker's SUBACK granted its subscriptions, reconnects with
resubscription, and raises :class:`~vibewatch.errors.MqttError` with the MQTT 5
reason code when the broker refuses a connection, a subscription or a message.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from vibewatch.errors import MqttError

if TYPE_CHECKING:
    from vibewatch.config import MqttConfig

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


class Subscription(Protocol):
    """What a service subscribes through: :class:`MqttSession`, or an in-memory one in tests."""

    stale_acks: int
    """Acknowledgements dropped because their connection was lost."""

    @property
    def ready(self) -> bool:
        """Whether the subscriptions stand on the current connection."""

    def start(self, on_message: MessageHandler | None = None, timeout: float = 30.0) -> None:
        """Connect, subscribe, and hand every message to ``on_message``."""

    def ack(self, tokens: Sequence[AckToken]) -> None:
        """Acknowledge received messages."""

    def unsubscribe_all(self, timeout: float = 10.0) -> bool:
        """Stop new messages from being routed here; whether the broker confirmed."""

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect (ending the persistent session when asked)."""


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


def broker_settings(mqtt: MqttConfig) -> BrokerSettings:
    """The connection settings of the ``[mqtt]`` configuration."""
    return BrokerSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=mqtt.client_id,
        username=mqtt.username,
        password=mqtt.password.reveal(),
        keepalive=mqtt.keepalive,
        session_expiry=mqtt.session_expiry,
        receive_maximum=mqtt.receive_maximum,
        tls_ca_file=str(mqtt.tls_ca_file or ""),
    )


def new_client(settings: BrokerSettings, *, manual_ack: bool = False) -> paho.Client:
    """An MQTT 5 client of ``settings``: its client id, credentials and TLS (the broker's
    address and keepalive are for ``connect``).

    Args:
        settings: Where and how to connect.
        manual_ack: Acknowledge received messages only when told (``client.ack``).
    """
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    if settings.tls_ca_file:
        client.tls_set(ca_certs=settings.tls_ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client


class MqttSession:
    """A persistent-session MQTT 5 client: QoS 1 subscriptions with manual, generation-checked
    acknowledgements, and QoS 1 publishing that waits for the PUBACK.

    On every connect it subscribes to its filters and, once the broker's SUBACK grants
    them, unsubscribes from ``stale_filters``: what the persistent session may still
    hold from an earlier configuration (a plain subscription after joining a group, a
    group left, another topic prefix). Otherwise the broker would go on delivering or
    queueing messages through subscriptions nobody asks for any more.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        filters: Sequence[str] = (),
        *,
        stale_filters: Sequence[str] = (),
        on_subscribed: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        """Prepare the client; :meth:`start` connects.

        Args:
            settings: Connection settings.
            filters: Topic filters to subscribe at QoS 1 (``$share/...`` allowed); none
                for a session that only publishes.
            stale_filters: Filters to unsubscribe after each successful subscription
                (those in ``filters`` are ignored).
            on_subscribed: Called on paho's network thread with ``filters`` once the
                broker granted them and the stale filters are gone: the session now
                holds exactly ``filters``.
        """
        share_property_tables()
        self._settings = settings
        self._filters = list(filters)
        self._stale = [f for f in dict.fromkeys(stale_filters) if f not in self._filters]
        self._handler: MessageHandler | None = None
        self._on_subscribed = on_subscribed
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._ready = threading.Event()
        self._answered = threading.Event()  # ready, or refused
        self._refused: MqttError | None = None
        self._unsubscribed = threading.Event()
        self._pubacks = threading.Condition()
        self._puback_reasons: dict[int, Any] = {}
        self._abandoned: set[int] = set()
        self._retiring = False
        self._stopping = False
        self._connected_at = 0.0
        self._short_sessions = 0
        self._connect_failures = 0
        self.stale_acks = 0
        self.connects = 0
        client = new_client(settings, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client

    @property
    def _address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def start(self, on_message: MessageHandler | None = None, timeout: float = 30.0) -> None:
        """Connect and wait up to ``timeout`` for the broker to grant the subscriptions
        (for a session without filters: to accept the connection).

        A broker that cannot be reached is reported at once, with the cause; the client
        keeps trying in the background (at most 30 s apart) until :meth:`stop`.

        Args:
            on_message: Receives every message on paho's network thread; must not raise.
                Required when the session has filters.
            timeout: Seconds to wait for readiness.

        Raises:
            MqttError: The broker refused the connection (bad credentials, client id
                not accepted, banned ...) or a subscription; the session is stopped.
            TimeoutError: Not ready within ``timeout``; the client keeps trying until
                :meth:`stop`.
        """
        if self._filters and on_message is None:
            raise ValueError("a session with subscriptions needs an on_message handler")
        self._handler = on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.session_expiry
        properties.ReceiveMaximum = self._settings.receive_maximum
        args = (self._settings.host, self._settings.port)
        kwargs: dict[str, Any] = {
            "keepalive": self._settings.keepalive,
            "clean_start": False,
            "properties": properties,
        }
        try:
            self._client.connect(*args, **kwargs)
        except (OSError, ValueError) as exc:
            self._connect_failures += 1
            log.error(
                "cannot connect to the MQTT broker at %s: %s; retrying in the background",
                self._address,
                exc,
            )
            self._client.connect_async(*args, **kwargs)
        self._client.loop_start()
        self._answered.wait(timeout)
        if self._refused is not None:
            self.stop()
            raise self._refused
        if not self._ready.is_set():
            what = "subscription granted" if self._filters else "connection accepted"
            raise TimeoutError(
                f"no {what} by the MQTT broker at {self._address} "
                f"within {timeout:.0f}s; still retrying"
            )

    @property
    def connected(self) -> bool:
        """Whether a session is currently up."""
        return self._connected.is_set()

    @property
    def ready(self) -> bool:
        """Whether the session holds exactly its filters on the current connection: the
        broker granted them and dropped the stale ones."""
        return self._ready.is_set()

    def _refuse(self, error: MqttError) -> None:
        log.error("%s", error)
        self._refused = error
        self._answered.set()

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            error = MqttError(
                f"the MQTT broker at {self._address} refused the connection as "
                f"{self._settings.client_id!r}{_CONNACK_HINTS.get(reason.value, '')}",
                int(reason.value),
                str(reason),
            )
            if reason.value in _CONNACK_TRANSIENT:
                log.error("%s; retrying", error)
            else:
                self._refuse(error)
            return
        with self._lock:
            self._generation += 1
            self.connects += 1
            self._connect_failures = 0
        self._connected_at = time.monotonic()
        self._connected.set()
        if not self._filters:  # publishing only, or retiring: nothing to subscribe
            self._ready.set()
            self._answered.set()
            return
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(topic, options) for topic in self._filters])
        log.info(
            "MQTT connected to %s as %s (session present: %s); subscribing to %s",
            self._address,
            self._settings.client_id,
            bool(getattr(flags, "session_present", False)),
            ", ".join(self._filters),
        )

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self._connect_failures += 1
        if self._connect_failures == 1 or self._connect_failures % 10 == 0:
            log.error(
                "cannot connect to the MQTT broker at %s (%d attempts in a row); retrying",
                self._address,
                self._connect_failures,
            )

    def _on_subscribe(
        self, client: paho.Client, _userdata: Any, mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [
            (topic, reason)
            for topic, reason in zip(self._filters, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            reason = refused[0][1]
            self._refuse(
                MqttError(
                    f"the MQTT broker at {self._address} refused the subscription to "
                    + "; ".join(f"{t} ({r})" for t, r in refused),
                    int(reason.value),
                    str(reason),
                )
            )
            return
        log.info(
            "MQTT subscribed: %s (SUBACK: granted QoS %s)",
            ", ".join(self._filters),
            ", ".join(str(reason.value) for reason in reasons),
        )
        if self._stale:
            try:
                client.unsubscribe(self._stale)  # ready once the UNSUBACK is in
                return
            except ValueError as exc:  # a filter paho cannot send (from a damaged record)
                log.error("cannot unsubscribe from %r: %s", self._stale, exc)
                self._stale = []
        self._subscribed()

    def _on_unsubscribe(
        self, _client: paho.Client, _userdata: Any, mid: int, reasons: Any, _props: Any
    ) -> None:
        gone = [
            topic
            for topic, reason in zip(self._stale, reasons, strict=False)
            if reason.value == 0  # 17, "no subscription existed", means it was never there
        ]
        if not self._retiring:
            if gone:
                log.warning(
                    "MQTT unsubscribed from %s: the session held them from an earlier "
                    "configuration",
                    ", ".join(gone),
                )
            self._subscribed()
        self._unsubscribed.set()

    def _subscribed(self) -> None:
        """The session holds exactly the filters: record it, and the session is ready."""
        if self._on_subscribed is not None:
            self._on_subscribed(list(self._filters))
        self._ready.set()
        self._answered.set()

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._lock:
            self._generation += 1
        self._connected.clear()
        self._ready.clear()
        if self._stopping:
            log.info("MQTT disconnected (%s)", reason)
            return
        lasted = time.monotonic() - self._connected_at
        self._short_sessions = self._short_sessions + 1 if lasted < _SHORT_SESSION_S else 0
        if reason.value == _SESSION_TAKEN_OVER or self._short_sessions >= 2:
            log.error(
                "MQTT connection to %s lost (%s, reason code %d) %.1f s after connecting%s: "
                "another client is connecting with the client id %r and the broker hands the "
                "session to the newest connection (MQTT 5 reason code 142, Session taken "
                "over). Give every process its own mqtt.client_id "
                "(VIBEWATCH_MQTT_CLIENT_ID); several ingest processes share the load "
                "with the same --group",
                self._address,
                reason,
                reason.value,
                lasted,
                f", {self._short_sessions} times in a row" if self._short_sessions > 1 else "",
                self._settings.client_id,
            )
        else:
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic: str | None = message.topic
        except UnicodeDecodeError:
            topic = None
        token = AckToken(self._generation, message.mid) if message.qos > 0 else None
        if self._handler is None:  # a message routed to a publishing-only session
            if token is not None:
                self.ack([token])
            return
        self._handler(topic, bytes(message.payload), token)

    def ack(self, tokens: Sequence[AckToken]) -> None:
        """Acknowledge messages; tokens of a lost connection are dropped (and counted)."""
        with self._lock:
            for token in tokens:
                if token.generation == self._generation:
                    self._client.ack(token.mid, 1)
                else:
                    self.stale_acks += 1

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 30.0
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK.

        A message published while the connection is down is sent once it is back (and
        again after a connection lost before its PUBACK, as MQTT asks).

        Args:
            topic: Topic name (no wildcards).
            payload: Message bytes.
            retain: Ask the broker to keep the message for future subscribers.
            timeout: Seconds to wait for the PUBACK.

        Raises:
            MqttError: The broker refused the message (PUBACK reason code >= 0x80: not
                authorized, quota exceeded, payload format invalid ...).
            TimeoutError: No PUBACK within ``timeout``; the message stays queued and
                may still be delivered.
            ValueError: ``topic`` is not a valid topic name.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + timeout
        with self._pubacks:
            while info.mid not in self._puback_reasons:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._abandoned.add(info.mid)
                    raise TimeoutError(
                        f"the MQTT broker at {self._address} did not acknowledge the message "
                        f"on {topic!r} within {timeout:g}s"
                    )
                self._pubacks.wait(left)
            reason = self._puback_reasons.pop(info.mid)
        if reason.is_failure:
            raise MqttError(
                f"the MQTT broker at {self._address} refused the message on {topic!r}",
                int(reason.value),
                str(reason),
            )

    def send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 without waiting for the PUBACK: for messages the receiver asks
        for again when one is lost (OTA chunks). Safe on the network thread, in a
        message handler. A refused message is logged.

        Raises:
            ValueError: ``topic`` is not a valid topic name.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._pubacks:
            reason = self._puback_reasons.pop(info.mid, None)  # the PUBACK came first
            if reason is None:
                self._abandoned.add(info.mid)
        if reason is not None and reason.is_failure:
            log.warning("the MQTT broker refused the message on %r: %s", topic, reason)

    def _on_publish(
        self, _client: paho.Client, _userdata: Any, mid: int, reason: Any, _props: Any
    ) -> None:
        with self._pubacks:
            if mid in self._abandoned:
                self._abandoned.discard(mid)
                if reason.is_failure:
                    log.warning("the MQTT broker refused a message: %s", reason)
                return
            self._puback_reasons[mid] = reason
            self._pubacks.notify_all()

    def unsubscribe_all(self, timeout: float = 10.0) -> bool:
        """Unsubscribe from every filter (current and stale), so no new message is routed here.

        Messages the broker already queued for the session are still delivered.

        Returns:
            Whether the broker confirmed within ``timeout``.
        """
        self._stale = [*self._filters, *self._stale]
        self._filters = []
        self._unsubscribed.clear()
        self._retiring = True
        self._client.unsubscribe(self._stale)
        return self._unsubscribed.wait(timeout)

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect cleanly (queued acknowledgements go out first) and stop the network thread.

        Args:
            end_session: Ask the broker to delete the persistent session now
                (session expiry 0) instead of keeping it for ``session_expiry`` seconds.
        """
        self._stopping = True
        properties = None
        if end_session:
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        self._client.disconnect(properties=properties)
        self._client.loop_stop()
        self._connected.clear()
        self._ready.clear()


#: MQTT 5 reason code of a DISCONNECT sent to a client whose session another took over.
_SESSION_TAKEN_OVER: Final = 142
#: A broker-closed connection shorter than this counts towards the takeover diagnosis
#: (brokers that close the old connection without a DISCONNECT packet, Mosquitto 2.0).
_SHORT_SESSION_S: Final = 10.0
#: CONNACK reason codes worth retrying: Server unavailable, Server busy, Quota exceeded,
#: Connection rate exceeded. Every other refusal needs a change of configuration.
_CONNACK_TRANSIENT: Final = frozenset({136, 137, 151, 159})
#: What to change for the CONNACK reason codes a user can fix.
_CONNACK_HINTS: Final = {
    133: "; the client id is not accepted: set mqtt.client_id",
    134: "; check mqtt.username and mqtt.password",
    135: "; check mqtt.username, mqtt.password and the broker's access control list",
    138: "; the client is banned by the broker",
    140: "; the authentication method is not supported: check mqtt.username/mqtt.password",
}
