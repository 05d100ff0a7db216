"""The alerts service: the devices' messages in, alerts through the dispatcher, signed
webhooks out.

One service of ``vibewatch serve`` (or ``vibewatch alerts serve`` alone). Its own MQTT
session (client id ``mqtt.client_id`` with ``-alerts`` appended) takes the devices'
anomaly events and status messages; the rules make alerts of them:

* ``DeviceAnomaly`` (severity ``warning``): fires with a device's anomaly ``start``
  event, resolves with its ``end`` event;
* ``DeviceOffline`` (severity ``critical``): fires with a device's ``offline`` status
  (its last will), resolves with its next ``online`` one; an offline device's
  ``DeviceAnomaly`` is inhibited (it does not page twice).

Alerts that a silence in force matches (``vibewatch alerts silence``, read from the
state database at every look) are not notified either.

The dispatcher (:mod:`vibewatch.alerts.dispatch`, ``[alerts]`` grouping and schedule)
decides what to notify when; each notification goes to the outbox of every receiver,
and the notifier (:mod:`vibewatch.alerts.notifier`, started with the service) delivers
it. With ``alerts.alertmanager_url``, the alerts go to that Alertmanager instead
(:mod:`vibewatch.alerts.alertmanager`), which groups and notifies.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from vibewatch.alerts.alertmanager import RESEND_S, RESOLVED_RETENTION_S, alert_json, post_alerts
from vibewatch.alerts.dispatch import Dispatcher, Route
from vibewatch.alerts.model import Alert
from vibewatch.alerts.notifier import Notifier
from vibewatch.alerts.silences import Silence, SilenceStore
from vibewatch.config import Config
from vibewatch.errors import ProtocolError
from vibewatch.mqtt import AckToken, MqttSession, broker_settings
from vibewatch.protocol import (
    AnomalyEvent,
    DeviceState,
    EventKind,
    Kind,
    Limits,
    Status,
    decode_message,
    parse_topic,
    subscription_filters,
)
from vibewatch.state import open_state_db

__all__ = ["AlertService", "alerts_of"]

log = logging.getLogger(__name__)

_MS: int = 1_000_000
_RETAIN_NS: int = int(RESOLVED_RETENTION_S * 1_000_000_000)


def alerts_of(message: AnomalyEvent | Status, now_ns: int) -> list[Alert]:
    """The alerts a device's message starts or resolves (the rules of the module)."""
    if isinstance(message, AnomalyEvent):
        labels = {"alertname": "DeviceAnomaly", "device": message.device, "severity": "warning"}
        summary = (
            f"{message.device}: anomaly score {message.score:.4g} above the threshold "
            f"{message.threshold:.4g} of {message.model_id} v{message.model_version}"
        )
        at = message.t * _MS
        ends = None if message.kind is EventKind.START else at
        return [Alert(labels, {"summary": summary}, at, ends)]
    labels = {"alertname": "DeviceOffline", "device": message.device, "severity": "critical"}
    at = message.t * _MS if message.t is not None else now_ns
    if message.state is DeviceState.OFFLINE:
        summary = f"{message.device} is offline (its connection dropped)"
        return [Alert(labels, {"summary": summary}, at)]
    return [Alert(labels, {"summary": f"{message.device} is offline"}, at, at)]


def _inhibited(alert: Alert, others: Sequence[Alert]) -> bool:
    """An offline device's anomaly alert is muted while it is offline."""
    if alert.labels.get("alertname") != "DeviceAnomaly":
        return False
    device = alert.labels.get("device")
    return any(
        o.labels.get("alertname") == "DeviceOffline"
        and o.labels.get("device") == device
        and o.firing
        for o in others
    )


class AlertService:
    """Alerts from the devices' messages to the receivers (see the module documentation)."""

    name = "alerts"

    def __init__(
        self,
        *,
        session: MqttSession,
        notifier: Notifier,
        state_db: Path,
        receivers: Sequence[str],
        route: Route,
        topic_prefix: str,
        external_url: str = "",
        alertmanager_url: str = "",
        clock: Callable[[], int] = time.time_ns,
        tick_s: float = 0.1,
    ) -> None:
        """Assemble the service; nothing connects until :meth:`start`.

        Args:
            session: The MQTT session, subscribed to ``event`` and ``status``.
            notifier: Delivers the notifications (started and stopped with the service).
            state_db: The state database (silences).
            receivers: The receivers every notification goes to.
            route: Grouping and schedule (its ``receiver`` names the notifications).
            topic_prefix: Topic prefix of the wire contract.
            external_url: The notifications' ``externalURL``.
            alertmanager_url: An Alertmanager to post the alerts to instead; empty: none.
            clock: Wall clock, nanoseconds.
            tick_s: Seconds between two looks at the groups.
        """
        self._session = session
        self._notifier = notifier
        self._state_db = state_db
        self._silences: list[Silence] = []
        self._alertmanager = alertmanager_url
        self._posted: dict[str, tuple[Alert, float]] = {}  # fingerprint: (alert, posted at)
        self._receivers = tuple(receivers)
        self._prefix = topic_prefix
        self._clock = clock
        self._tick_s = tick_s
        self._inbox: queue.Queue[tuple[AnomalyEvent | Status, AckToken | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dispatcher = Dispatcher(route, external_url=external_url, muted=self._muted)
        self.rejected = 0
        self.notified = 0

    @classmethod
    def from_config(cls, config: Config) -> AlertService:
        """The service as the configuration describes it."""
        mqtt = config.mqtt
        alerts = config.alerts
        session = MqttSession(
            dataclasses.replace(broker_settings(mqtt), client_id=f"{mqtt.client_id}-alerts"),
            subscription_filters(mqtt.topic_prefix, (Kind.EVENT, Kind.STATUS)),
        )
        route = Route(
            "vibewatch",
            tuple(name.strip() for name in alerts.group_by.split(",")),
            alerts.group_wait,
            alerts.group_interval,
            alerts.repeat_interval,
        )
        return cls(
            session=session,
            notifier=Notifier.from_config(config),
            state_db=config.state_db,
            receivers=[r.name for r in alerts.receivers],
            route=route,
            topic_prefix=mqtt.topic_prefix,
            external_url=alerts.external_url,
            alertmanager_url=alerts.alertmanager_url,
        )

    def _muted(self, alert: Alert, _group: Sequence[Alert]) -> bool:
        if any(silence.mutes(alert.labels) for silence in self._silences):
            return True
        return _inhibited(alert, list(self._dispatcher.alerts()))  # over every group

    @property
    def ready(self) -> bool:
        """Whether its subscriptions stand."""
        return self._session.ready

    def start(self, timeout: float = 30.0) -> None:
        """Start the notifier and the service's thread, then subscribe.

        Raises:
            MqttError: The broker refused the service.
            TimeoutError: The subscriptions were not granted within ``timeout``.
        """
        self._notifier.start(timeout)
        self._thread = threading.Thread(target=self._run, name="vibewatch-alerts", daemon=True)
        self._thread.start()
        self._session.start(self._handle, timeout)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop taking messages, finish those taken, stop the notifier."""
        self._session.stop()
        self._stop.set()
        clean = True
        if self._thread is not None:
            self._thread.join(timeout)
            clean = not self._thread.is_alive()
        clean = self._notifier.stop(timeout) and clean
        log.info("alerts stopped; notifications %d, rejected %d", self.notified, self.rejected)
        return clean

    def _handle(self, topic: str | None, payload: bytes, token: AckToken | None) -> None:
        try:
            if topic is None:
                raise ProtocolError("bad_topic", "topic is not valid UTF-8")
            device, kind = parse_topic(topic, self._prefix)
            now_ms = self._clock() // _MS
            message = decode_message(kind, device, payload, now_ms=now_ms, limits=Limits())
        except ProtocolError as exc:
            self.rejected += 1
            log.warning("alerts: rejected message on %r: %s", topic, exc)
            self._session.ack([token] if token is not None else [])
            return
        if isinstance(message, AnomalyEvent | Status):
            self._inbox.put((message, token))
        elif token is not None:
            self._session.ack([token])

    def _run(self) -> None:
        db = open_state_db(self._state_db)
        try:
            self._loop(SilenceStore(db))
        finally:
            db.close()

    def _loop(self, silences: SilenceStore) -> None:
        next_look = 0.0
        while not self._stop.is_set() or not self._inbox.empty():
            try:
                message, token = self._inbox.get(timeout=0.05)
            except queue.Empty:
                pass
            else:
                for alert in alerts_of(message, self._clock()):
                    if self._alertmanager:
                        self._posted[alert.fingerprint] = (alert, -RESEND_S)  # due now
                    else:
                        self._dispatcher.put(alert, self._clock())
                if token is not None:
                    self._session.ack([token])
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + self._tick_s
                self._silences = silences.silences(active_at=self._clock() / 1e9)
                if self._alertmanager:
                    self._post_due()
                    continue
                for notice in self._dispatcher.due(self._clock()):
                    for receiver in self._receivers:
                        self._notifier.notify(receiver, notice.body)
                        self.notified += 1

    def _post_due(self) -> None:
        """Post the alerts due to the Alertmanager: new or changed ones, firing ones every
        resend, resolved ones for the retention; a failed post is tried at the next look."""
        now_ns, now = self._clock(), time.monotonic()
        due = {fp: a for fp, (a, at) in self._posted.items() if now - at >= RESEND_S}
        if not due:
            return
        try:
            post_alerts(self._alertmanager, [alert_json(a, now_ns) for a in due.values()])
        except (OSError, ValueError) as exc:
            log.warning("alerts: cannot post %d alerts to the Alertmanager: %s", len(due), exc)
            return
        self.notified += len(due)
        for fp, alert in due.items():
            ended = alert.ends_at_ns is not None and alert.ends_at_ns < now_ns - _RETAIN_NS
            if ended:
                del self._posted[fp]
            else:
                self._posted[fp] = (alert, now)
