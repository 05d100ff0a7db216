"""The alerts service: the devices' messages in, alerts through the dispatchers, signed
webhooks out.

One service of ``vibewatch serve`` (or ``vibewatch alerts serve`` alone). Its own MQTT
session (client id ``mqtt.client_id`` with ``-alerts`` appended; a persistent session,
each message acknowledged only once what it changed is saved) takes the devices' anomaly
events, status messages and, when a rule needs them, telemetry. The rules
(:mod:`vibewatch.alerts.rules`, ``[alerts.rules]``) make alerts of them and of periodic
looks at the rollouts and the ingest processes' reports; a rule's alert is muted while
an alert of a rule it is ``inhibited_by`` fires on the same device, and so is an alert
a silence in force matches (``vibewatch alerts silence``, read from the state database
at every look).

Each receiver has a dispatcher (:mod:`vibewatch.alerts.dispatch`, ``[alerts]`` grouping
and schedule) that takes the alerts its ``matchers`` match and decides what to notify
when; a notification goes to the receiver's outbox and the notifier
(:mod:`vibewatch.alerts.notifier`, started with the service) delivers it. The alerts,
the groups and the notifications are saved together (:mod:`vibewatch.alerts.store`):
after a restart, firing alerts stay firing and nothing is notified twice. With
``alerts.alertmanager_url``, the alerts go to that Alertmanager instead
(:mod:`vibewatch.alerts.alertmanager`), which groups and notifies.

For the dashboards, each alert that fires or resolves, and every ``report_interval_s``
the number of firing alerts of each rule, are written to InfluxDB
(:mod:`vibewatch.alerts.points`) through a :class:`~vibewatch.influx.reporter.PointReporter`,
which writes in the background: InfluxDB being down never holds the service up.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from vibewatch.alerts.alertmanager import RESEND_S, RESOLVED_RETENTION_S, alert_json, post_alerts
from vibewatch.alerts.dispatch import Dispatcher, Matcher, Route, parse_matcher
from vibewatch.alerts.model import Alert
from vibewatch.alerts.notifier import Notifier
from vibewatch.alerts.points import alert_point, firing_points
from vibewatch.alerts.rules import IngestReport, Rule, RuleEngine, RuleKind
from vibewatch.alerts.silences import Silence, SilenceStore
from vibewatch.alerts.store import AlertStore
from vibewatch.config import Config
from vibewatch.errors import ProtocolError, VibewatchError
from vibewatch.influx import schema
from vibewatch.influx.reporter import PointReporter
from vibewatch.influx.writers import make_writer
from vibewatch.mqtt import AckToken, MqttSession, broker_settings
from vibewatch.protocol import (
    AnomalyEvent,
    Kind,
    Limits,
    Status,
    Telemetry,
    decode_message,
    parse_topic,
    subscription_filters,
)
from vibewatch.state import open_state_db, service_reports

__all__ = ["AlertService", "ReceiverRoute"]

log = logging.getLogger(__name__)

_MS: Final = 1_000_000
_RETAIN_NS: Final = int(RESOLVED_RETENTION_S * 1_000_000_000)
#: Messages taken into one saved step at most.
_BATCH: Final = 1000
#: Seconds between two looks at the silences, rollouts and ingest reports.
_LOOK_S: Final = 1.0

_Message = AnomalyEvent | Status | Telemetry
#: Matcher operators in Alertmanager's order (its ``MatchType``).
_OPS: Final = ("=", "!=", "=~", "!~")


@dataclasses.dataclass(frozen=True)
class ReceiverRoute:
    """What a receiver takes and how its notifications are grouped.

    Attributes:
        route: Grouping and schedule (``receiver`` names the receiver).
        matchers: What an alert must match to go to it (none: everything).
    """

    route: Route
    matchers: tuple[Matcher, ...] = ()

    def takes(self, alert: Alert) -> bool:
        """Whether ``alert`` goes to this receiver."""
        return all(m.matches(alert.labels) for m in self.matchers)


def receiver_routes(config: Config) -> list[ReceiverRoute]:
    """One route per configured receiver: a receiver without matchers is the root
    route's (group keys ``{}:...``), one with matchers a child route's
    (``{}/{matchers}:...``, the matchers in Alertmanager's order: by name, value, then
    operator), as in the equivalent Alertmanager configuration."""
    alerts = config.alerts
    out = []
    for receiver in alerts.receivers:
        matchers = tuple(parse_matcher(m) for m in receiver.matchers)
        ordered = sorted(matchers, key=lambda m: (m.name, m.value, _OPS.index(m.op)))
        key = "{}/{" + ",".join(map(str, ordered)) + "}" if matchers else "{}"
        route = Route(
            receiver.name,
            tuple(name.strip() for name in alerts.group_by.split(",")),
            alerts.group_wait,
            alerts.group_interval,
            alerts.repeat_interval,
            send_resolved=receiver.send_resolved,
            key=key,
        )
        out.append(ReceiverRoute(route, matchers))
    return out


class AlertService:
    """Alerts from the devices' messages to the receivers (see the module documentation)."""

    name = "alerts"

    def __init__(
        self,
        *,
        session_for: Callable[[bool], MqttSession],
        notifier: Notifier,
        state_db: Path,
        routes: Sequence[ReceiverRoute],
        rules: Sequence[Rule],
        topic_prefix: str,
        external_url: str = "",
        alertmanager_url: str = "",
        threshold_of: Callable[[str, int], float | None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        tick_s: float = 0.1,
        reporter: PointReporter | None = None,
        site: str = "",
        report_interval_s: float = 10.0,
    ) -> None:
        """Assemble the service; nothing connects until :meth:`start`.

        Args:
            session_for: The MQTT session, subscribed to ``event`` and ``status``, and to
                ``telemetry`` when given True.
            notifier: Delivers the notifications (started and stopped with the service).
            state_db: The state database (alerts, groups, silences, outbox).
            routes: The receivers' routes.
            rules: The alert rules.
            topic_prefix: Topic prefix of the wire contract.
            external_url: The notifications' ``externalURL``.
            alertmanager_url: An Alertmanager to post the alerts to instead; empty: none.
            threshold_of: A model version's threshold (the sustained-score rules').
            clock: Wall clock, nanoseconds.
            tick_s: Seconds between two looks at the groups.
            reporter: Writes the alerts' points (started and stopped with the service);
                None: no points are written.
            site: The ``site`` tag of the points; empty: none.
            report_interval_s: Seconds between two counts of the firing alerts.
        """
        self._engine = RuleEngine(rules, threshold_of=threshold_of)
        self._session = session_for(self._engine.needs_telemetry)
        self._notifier = notifier
        self._state_db = state_db
        self._silences: list[Silence] = []
        self._alertmanager = alertmanager_url
        self._posted: dict[str, tuple[Alert, float]] = {}  # fingerprint: (alert, posted at)
        self._routes = [
            (r, Dispatcher(r.route, external_url=external_url, muted=self._muted)) for r in routes
        ]
        self._prefix = topic_prefix
        self._clock = clock
        self._tick_s = tick_s
        self._reporter = reporter
        self._site = site
        self._report_interval_s = report_interval_s
        self._next_report = 0.0
        self._inbox: queue.Queue[tuple[_Message, AckToken | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.rejected = 0
        self.notified = 0

    @classmethod
    def from_config(cls, config: Config) -> AlertService:
        """The service as the configuration describes it."""
        mqtt = config.mqtt
        alerts = config.alerts

        def session_for(telemetry: bool) -> MqttSession:
            kinds = (Kind.EVENT, Kind.STATUS, *((Kind.TELEMETRY,) if telemetry else ()))
            return MqttSession(
                dataclasses.replace(broker_settings(mqtt), client_id=f"{mqtt.client_id}-alerts"),
                subscription_filters(mqtt.topic_prefix, kinds),
            )

        return cls(
            session_for=session_for,
            notifier=Notifier.from_config(config),
            state_db=config.state_db,
            routes=receiver_routes(config),
            rules=alerts.rules,
            topic_prefix=mqtt.topic_prefix,
            external_url=alerts.external_url,
            alertmanager_url=alerts.alertmanager_url,
            threshold_of=_registry_thresholds(config),
            reporter=PointReporter(make_writer(config.influx), name="alerts"),
            site=config.ingest.site,
            report_interval_s=config.ingest.stats_interval,
        )

    def _muted(self, alert: Alert, _group: Sequence[Alert]) -> bool:
        if any(silence.mutes(alert.labels) for silence in self._silences):
            return True
        return self._engine.muted(alert)

    @property
    def ready(self) -> bool:
        """Whether its subscriptions stand."""
        return self._session.ready

    def start(self, timeout: float = 30.0) -> None:
        """Load the saved state, start the notifier and the service's thread, subscribe.

        Raises:
            VibewatchError: The state database cannot be used.
            MqttError: The broker refused the service.
            TimeoutError: The subscriptions were not granted within ``timeout``.
        """
        if self._reporter is not None:
            self._reporter.start()
        self._thread = threading.Thread(target=self._run, name="vibewatch-alerts", daemon=True)
        self._thread.start()
        self._started.wait(timeout)
        if self._failure is not None:
            raise self._failure
        self._notifier.start(timeout)
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
        if self._reporter is not None:  # what it could not write is in the state database
            self._reporter.stop()
        log.info(
            "alerts stopped; notifications %d, rejected %d%s",
            self.notified,
            self.rejected,
            f"; {self._reporter.counts}" if self._reporter is not None else "",
        )
        return clean

    def _handle(self, topic: str | None, payload: bytes, token: AckToken | None) -> None:
        try:
            device, kind = parse_topic(topic, self._prefix)
            now_ms = self._clock() // _MS
            message = decode_message(kind, device, payload, now_ms=now_ms, limits=Limits())
        except ProtocolError as exc:
            self.rejected += 1
            log.warning("alerts: rejected message on %r: %s", topic, exc)
            self._session.ack([token] if token is not None else [])
            return
        if isinstance(message, _Message):
            self._inbox.put((message, token))
        elif token is not None:
            self._session.ack([token])

    def _run(self) -> None:
        try:
            db = open_state_db(self._state_db)
            store = AlertStore(db)
            self._restore(store)
        except (VibewatchError, sqlite3.Error, ValueError) as exc:
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._loop(store, SilenceStore(db), db)
        finally:
            db.close()

    def _restore(self, store: AlertStore) -> None:
        now = self._clock()
        store.forget_resolved(now / 1e9)
        firing = [s.alert for s in store.alerts()]
        self._engine.restore(firing, store.devices(), now)
        if self._alertmanager:
            self._posted = {a.fingerprint: (a, -RESEND_S) for a in firing}
        for route, dispatcher in self._routes:
            dispatcher.restore(store.groups(route.route.receiver))
        log.info("alerts: %d firing alerts taken back from the state database", len(firing))

    def _take(self) -> list[tuple[_Message, AckToken | None]]:
        try:
            batch = [self._inbox.get(timeout=0.05)]
        except queue.Empty:
            return []
        while len(batch) < _BATCH:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _loop(self, store: AlertStore, silences: SilenceStore, db: sqlite3.Connection) -> None:
        next_tick = next_look = 0.0
        step = _Step()
        while not self._stop.is_set() or not self._inbox.empty() or step.waiting:
            batch = self._take()
            changed: list[Alert] = []
            for message, _token in batch:
                changed += self._engine.message(message, self._clock())
            now_mono = time.monotonic()
            if now_mono >= next_look:
                next_look = now_mono + _LOOK_S
                try:
                    self._silences = silences.silences(active_at=self._clock() / 1e9)
                    engine = self._engine  # only what a rule in force reads
                    looked = (
                        store.rollouts() if engine.watches(RuleKind.ROLLOUT_ABORTED) else [],
                        _ingest(db) if engine.watches(RuleKind.INGESTION) else [],
                    )
                except sqlite3.Error as exc:
                    log.warning("alerts: cannot read the state database: %s", exc)
                else:
                    changed += self._engine.tick(self._clock(), *looked)
            for alert in changed:
                self._route(alert)
            self._report(changed, now_mono)
            notices: list[tuple[str, bytes]] = []
            if not self._alertmanager and (changed or now_mono >= next_tick):
                next_tick = now_mono + self._tick_s
                now = self._clock()
                for _route, dispatcher in self._routes:
                    notices += [(n.receiver, n.body) for n in dispatcher.due(now)]
            step.add(changed, {r.route.receiver: d.changes() for r, d in self._routes}, notices,
                     [token for _m, token in batch if token is not None])  # fmt: skip
            self._save(store, step)
            if self._alertmanager:
                self._post_due()

    def _report(self, changed: Sequence[Alert], now_mono: float) -> None:
        """Queue the points of the alerts that changed, and the count of those firing
        when it is due."""
        if self._reporter is None:
            return
        points = [alert_point(alert, site=self._site) for alert in changed]
        if now_mono >= self._next_report:
            self._next_report = now_mono + self._report_interval_s
            firing = self._engine.firing.values()
            now_ms = self._clock() // _MS
            points += firing_points(self._engine.rules, firing, time_ms=now_ms, site=self._site)
        self._reporter.put(points)

    def _save(self, store: AlertStore, step: _Step) -> None:
        """Save what the step changed, then wake the receivers and acknowledge its
        messages; when the database cannot take it, it is tried again with the next."""
        if step.alerts or step.notices or any(step.groups.values()):
            try:
                store.save(step.alerts, step.groups, step.notices, self._clock() / 1e9)
            except sqlite3.Error as exc:
                log.warning("alerts: cannot save to the state database (tried again): %s", exc)
                time.sleep(0.5)
                return
            for receiver in {r for r, _ in step.notices}:
                self._notifier.wake(receiver)
            self.notified += len(step.notices)
        if step.tokens:
            self._session.ack(step.tokens)
        step.clear()

    def _route(self, alert: Alert) -> None:
        if self._alertmanager:
            self._posted[alert.fingerprint] = (alert, -RESEND_S)  # due now
            return
        now = self._clock()
        for route, dispatcher in self._routes:
            if route.takes(alert):
                dispatcher.put(alert, now)

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


@dataclasses.dataclass
class _Step:
    """What the loop changed and has not saved yet."""

    alerts: list[Alert] = dataclasses.field(default_factory=list)
    groups: dict[str, dict[str, dict[str, Any] | None]] = dataclasses.field(default_factory=dict)
    notices: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)
    tokens: list[AckToken] = dataclasses.field(default_factory=list)

    @property
    def waiting(self) -> bool:
        """Whether something is left to save or acknowledge."""
        return bool(self.alerts or self.notices or self.tokens or any(self.groups.values()))

    def add(
        self,
        alerts: list[Alert],
        groups: dict[str, dict[str, dict[str, Any] | None]],
        notices: list[tuple[str, bytes]],
        tokens: list[AckToken],
    ) -> None:
        """Take one more round's changes (a group's latest state wins)."""
        self.alerts += alerts
        for receiver, changed in groups.items():
            self.groups.setdefault(receiver, {}).update(changed)
        self.notices += notices
        self.tokens += tokens

    def clear(self) -> None:
        """Everything was saved and acknowledged."""
        self.alerts, self.groups, self.notices, self.tokens = [], {}, [], []


def _ingest(db: sqlite3.Connection) -> list[IngestReport]:
    """The ingest processes' latest reports."""
    out = []
    for report in service_reports(db, "ingest"):
        figures = report.figures
        out.append(
            IngestReport(
                report.instance,
                report.at_s,
                report.interval_s,
                int(figures.get(schema.MESSAGES_IN, 0)),
                int(figures.get(schema.REJECTED, 0)),
                int(figures.get(schema.SPOOL_RECORDS, 0)),
            )
        )
    return out


def _registry_thresholds(config: Config) -> Callable[[str, int], float | None]:
    """A model version's threshold from the registry (remembered; None when it has no
    such version or cannot be read, which is logged once)."""
    known: dict[tuple[str, int], float | None] = {}

    def threshold_of(model_id: str, version: int) -> float | None:
        if (model_id, version) not in known:
            from vibewatch.models.keys import load_public_key
            from vibewatch.models.registry import Registry

            try:
                key = load_public_key(config.train.verify_key)
                with Registry(config.train.registry_dir, config.state_db, key) as registry:
                    value = registry.load(model_id, version).manifest["threshold"]
                known[(model_id, version)] = float(value)
            except (VibewatchError, OSError, ValueError, KeyError, TypeError) as exc:
                log.info("alerts: no threshold for %s v%d: %s", model_id, version, exc)
                known[(model_id, version)] = None
        return known[(model_id, version)]

    return threshold_of
