"""The ingestion service: wires the MQTT subscriber, decoding, the pipeline and InfluxDB.

One :class:`IngestService` per process. The MQTT network thread decodes each
message with pure functions (:func:`~vibewatch.protocol.parse_topic`,
:func:`~vibewatch.protocol.decode_message`,
:func:`~vibewatch.ingest.points.lines_for`) and submits its encoded lines to
the :class:`~vibewatch.ingest.pipeline.Pipeline`, which acknowledges the
message once the lines are durable. A rejected message is written to the
dead-letter log, counted, logged, and acknowledged in its turn. Nothing a
client sends can stop the service: any unexpected error while handling one
message is a rejection with reason ``internal_error``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from vibewatch.config import Config, IngestConfig
from vibewatch.errors import PointError, ProtocolError
from vibewatch.influx.lineprotocol import FieldValue, encode_point
from vibewatch.influx.writers import InfluxV1Writer, PointWriter, make_writer
from vibewatch.ingest.deadletter import DeadLetterLog
from vibewatch.ingest.pipeline import BatchPolicy, Pipeline
from vibewatch.ingest.points import lines_for
from vibewatch.ingest.spool import Spool
from vibewatch.ingest.stats import IngestStats, stats_point
from vibewatch.mqtt import AckToken, MqttSession, Subscription, broker_settings
from vibewatch.protocol import (
    REJECT_REASONS,
    Kind,
    Limits,
    decode_message,
    parse_topic,
    subscription_filters,
)
from vibewatch.state import ServiceReport, StateError, open_state_db, record_report

log = logging.getLogger(__name__)

#: The message kinds the ingestion service stores.
INGESTED_KINDS = (Kind.TELEMETRY, Kind.EVENT, Kind.FEATURES, Kind.STATUS)

#: Reasons for rejections that happen after decoding.
UNENCODABLE = "unencodable"
INTERNAL_ERROR = "internal_error"
INFLUX_REJECTED = "influx_rejected"


class _ClearedStatus(Exception):  # noqa: N818 - an outcome, not an error
    """An empty ``status`` payload: the retained status of a decommissioned device cleared."""

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.device = device


class _RateLimitedLog:
    """Logs each rejection at WARNING, at most ``per_second`` a second; counts the rest."""

    def __init__(self, per_second: int = 10) -> None:
        self._per_second = per_second
        self._window = 0
        self._count = 0
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        second = int(time.monotonic())
        if second != self._window:
            if self.suppressed:
                log.warning(
                    "%d more rejections not logged (see the dead-letter log)", self.suppressed
                )
            self._window, self._count, self.suppressed = second, 0, 0
        self._count += 1
        if self._count <= self._per_second:
            log.warning(message, *args)
        else:
            self.suppressed += 1


class IngestService:
    """MQTT in, InfluxDB out: one process of ``vibewatch ingest``.

    It receives its collaborators: the MQTT session it subscribes through, the writer,
    the spool and the dead-letter log (:meth:`from_config` builds them from the
    configuration), so tests can hand it real or in-memory ones.
    """

    #: The service's name in ``vibewatch serve`` and in its log.
    name = "ingest"

    def __init__(
        self,
        settings: IngestConfig,
        *,
        session: Subscription,
        writer: PointWriter,
        spool: Spool,
        deadletter: DeadLetterLog,
        topic_prefix: str,
        instance: str,
        clock: Callable[[], float] = time.time,
        on_stats: Callable[[dict[str, FieldValue]], None] | None = None,
    ) -> None:
        """Assemble the service (nothing connects until :meth:`start`).

        Args:
            settings: The ``[ingest]`` settings.
            session: The MQTT session subscribed to the ingested topics.
            writer: Where points go.
            spool: Where points wait while the writer cannot take them.
            deadletter: Where rejected messages are recorded.
            topic_prefix: Topic prefix of the wire contract.
            instance: Name of this process in its statistics (its MQTT client id).
            clock: Wall clock in seconds (for timestamp checks and statistics).
            on_stats: Called with every snapshot of the statistics (the state database's
                report the alerts' ingestion rule reads); None: nothing.
        """
        self._on_stats = on_stats
        self._settings = settings
        self._clock = clock
        self._prefix = topic_prefix
        self._site = settings.site
        self._instance = instance
        self._limits = Limits(
            max_payload_bytes=settings.max_payload_bytes,
            max_future_ms=settings.max_future_seconds * 1000,
        )
        # every reason counted from the first snapshot on, so a dashboard sees the first
        # rejection of each as a step from 0
        reasons = (*REJECT_REASONS, UNENCODABLE, INTERNAL_ERROR, INFLUX_REJECTED)
        self.stats = IngestStats(rejected=Counter(dict.fromkeys(reasons, 0)))
        self._writer = writer
        self._spool = spool
        self._deadletter = deadletter
        self._dead_dirty = False
        self._reject_log = _RateLimitedLog()
        self._pipeline: Pipeline[AckToken] = Pipeline(
            writer=self._writer,
            spool=self._spool,
            stats=self.stats,
            on_ack=self._ack,
            on_reject=self._influx_rejected,
            policy=BatchPolicy(
                batch_max_points=settings.batch_max_points,
                batch_max_age=settings.batch_max_age,
                buffer_max_points=settings.buffer_max_points,
                retry_initial=settings.retry_initial,
                retry_max=settings.retry_max,
                retry_budget=settings.retry_budget,
                write_concurrency=settings.write_concurrency,
            ),
        )
        self._session = session
        self._stop = threading.Event()
        self._stats_thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        writer: PointWriter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> IngestService:
        """The service as the configuration describes it.

        Its MQTT session subscribes to the ingested kinds (through ``$share/GROUP/`` in a
        group) and unsubscribes what the session held under an earlier configuration,
        as recorded in the data home.

        Args:
            config: Validated configuration.
            writer: Writer to use instead of the one ``config.influx`` selects.
            clock: Wall clock in seconds.
        """
        mqtt, ingest = config.mqtt, config.ingest
        plain = subscription_filters(mqtt.topic_prefix, INGESTED_KINDS)
        filters = [f"$share/{mqtt.group}/{f}" for f in plain] if mqtt.group else plain
        record = SubscriptionRecord(config.data_home / SUBSCRIPTIONS_FILE)
        # What the session may hold beyond what is asked now: what it held last time,
        # and, in a group, the plain filters of a start before the group was joined.
        stale = [*record.get(mqtt.client_id), *(plain if mqtt.group else ())]
        session = MqttSession(
            broker_settings(mqtt),
            filters,
            stale_filters=stale,
            on_subscribed=lambda held: record.put(mqtt.client_id, held),
        )
        return cls(
            ingest,
            session=session,
            writer=writer or make_writer(config.influx),
            spool=Spool(ingest.spool_dir, max_bytes=ingest.spool_max_bytes),
            deadletter=DeadLetterLog(ingest.deadletter_path, max_bytes=ingest.deadletter_max_bytes),
            topic_prefix=mqtt.topic_prefix,
            instance=mqtt.client_id,
            clock=clock,
            on_stats=lambda values: _report(config, values, clock()),
        )

    # ----------------------------------------------------------------- running
    def start(self, timeout: float = 30.0) -> None:
        """Start writing, then connect to the broker and subscribe.

        Raises:
            MqttError: The broker refused the connection or the subscriptions.
            TimeoutError: The subscriptions were not granted within ``timeout``; the
                session keeps trying and the service runs on.
        """
        if isinstance(self._writer, InfluxV1Writer):
            try:
                self._writer.ensure_database()
            except Exception as exc:  # the spool covers a database that is down or locked
                log.warning("could not ensure the database exists: %s", exc)
        if self._spool.records:
            log.info("spool holds %d batches from before; replaying", self._spool.records)
        self._pipeline.start()
        self._stats_thread = threading.Thread(
            target=self._stats_loop, name="vibewatch-stats", daemon=True
        )
        self._stats_thread.start()
        self._session.start(self.handle, timeout)

    @property
    def ready(self) -> bool:
        """Whether the broker granted the subscriptions on the current connection."""
        return self._session.ready

    def stop(self, timeout: float = 30.0, *, retire: bool = False, quiet: float = 0.5) -> bool:
        """Flush everything, acknowledge what is durable, disconnect.

        Messages that keep arriving are taken in and acknowledged until none has
        arrived for half a second; within ``timeout`` everything received is written
        or spooled and acknowledged. Past it, the log says how many messages were
        left to the broker, which delivers them again on the next start.

        Args:
            timeout: Seconds for the whole shutdown.
            retire: End the persistent session (see :meth:`retire`).
            quiet: Seconds without a new message after which no more are taken in.

        Returns:
            ``True`` when every received message was made durable and acknowledged.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._stats_thread is not None:
            self._stats_thread.join(5)
        self._pipeline.submit(self._stats_lines(), None)
        self._pipeline.drain(quiet=quiet, timeout=max(0.0, deadline - time.monotonic() - 1))
        clean = self._pipeline.close(max(1.0, deadline - time.monotonic()))
        self._session.stop(end_session=retire)
        left = self._pipeline.unacknowledged
        self._deadletter.close()
        self._spool.close()
        self._writer.close()
        if clean and not left:
            log.info("ingest stopped (clean); %s", self._summary())
        else:
            log.warning(
                "ingest stopped (NOT everything was flushed within %.0f s): %d messages left "
                "unacknowledged, the broker delivers them again on the next start; %s",
                timeout,
                left,
                self._summary(),
            )
        return clean and not left

    def retire(self, timeout: float = 300.0) -> bool:
        """Leave for good: unsubscribe, ingest what the broker kept, end the session.

        For a process with its own client id that leaves a ``--group`` or the fleet:
        after this, no message is routed or queued for its client id any more.

        Returns:
            ``True`` when everything the broker held was ingested and acknowledged.
        """
        if not self._session.unsubscribe_all():
            log.error("the broker did not confirm the unsubscription; the session is kept")
            self.stop(timeout)
            return False
        log.info("unsubscribed; ingesting what the broker kept for %r", self._instance)
        # queued messages flow as fast as they are acknowledged: a longer lull means done
        return self.stop(timeout, retire=True, quiet=2.0)

    # ---------------------------------------------------------------- messages
    def handle(self, topic: str | None, payload: bytes, token: AckToken | None) -> None:
        """Decode one message and queue its points; reject it with a reason on bad input."""
        self.stats.messages_in += 1
        lines: list[str] = []
        try:
            lines = self._lines_for(topic, payload)
        except _ClearedStatus as cleared:
            with self.stats.lock:
                self.stats.status_cleared += 1
            log.info("retained status of device %r cleared (device decommissioned)", cleared.device)
        except ProtocolError as exc:
            self._reject(topic, exc.reason, exc.detail, payload)
        except PointError as exc:
            self._reject(topic, UNENCODABLE, str(exc), payload)
        except Exception as exc:  # never let one message stop the service
            log.exception("unexpected error handling a message on %r", topic)
            self._reject(topic, INTERNAL_ERROR, repr(exc), payload)
        else:
            self.stats.messages_ok += 1
        self._pipeline.submit(lines, token)

    def _lines_for(self, topic: str | None, payload: bytes) -> list[str]:
        device, kind = parse_topic(topic, self._prefix)
        if kind not in INGESTED_KINDS:
            raise ProtocolError("bad_topic", f"{kind.value!r} messages are not ingested")
        if kind is Kind.STATUS and not payload:
            # an empty retained payload is how a retained status is cleared
            raise _ClearedStatus(device)
        now_ms = int(self._clock() * 1000)
        message = decode_message(kind, device, payload, now_ms=now_ms, limits=self._limits)
        return lines_for(message, site=self._site, received_ms=now_ms)

    def _reject(self, topic: str | None, reason: str, detail: str, payload: bytes) -> None:
        self.stats.reject(reason)
        self._deadletter.record(topic=topic, reason=reason, detail=detail, payload=payload)
        self._dead_dirty = True
        self._reject_log.warning("rejected message on %r: %s: %s", topic, reason, detail[:200])

    def _influx_rejected(self, line: str, error: str) -> None:
        self._reject(None, INFLUX_REJECTED, error, line.encode("utf-8"))

    def _ack(self, tokens: Sequence[AckToken]) -> None:
        if self._dead_dirty:
            self._dead_dirty = False
            self._deadletter.sync()
        self._session.ack(tokens)

    # -------------------------------------------------------------- statistics
    def _stats_lines(self) -> list[str]:
        with self.stats.lock:
            self.stats.spool_records = self._spool.records
            self.stats.spool_bytes = self._spool.size_bytes
            self.stats.buffer_points = self._pipeline.buffered_points
            self.stats.stale_acks = self._session.stale_acks
        values = self.stats.snapshot()
        if self._on_stats is not None:
            self._on_stats(values)
        point = stats_point(
            values, instance=self._instance, site=self._site, time_ms=int(self._clock() * 1000)
        )
        return [encode_point(point)]

    def _summary(self) -> str:
        s = self.stats
        reasons = {reason: n for reason, n in s.rejected.items() if n}
        return (
            f"messages in {s.messages_in}, ok {s.messages_ok}, rejected {sum(s.rejected.values())} "
            f"{reasons}, points written {s.points_written}, spooled {s.points_spooled}, "
            f"replayed {s.points_replayed}, spool {self._spool.records} batches"
        )

    def _stats_loop(self) -> None:
        interval = self._settings.stats_interval
        while not self._stop.wait(interval):
            self._pipeline.submit(self._stats_lines(), None)
            log.info("ingest: %s", self._summary())


def _report(config: Config, values: dict[str, FieldValue], now_s: float) -> None:
    """Keep a snapshot as this process's report in the state database (logged, not
    raised, when the database cannot take it: statistics never stop ingestion)."""
    report = ServiceReport(
        "ingest", config.mqtt.client_id, now_s, config.ingest.stats_interval, values
    )
    try:
        db = open_state_db(config.state_db)
        try:
            record_report(db, report)
        finally:
            db.close()
    except (StateError, sqlite3.Error) as exc:
        log.warning("ingest: cannot keep its report in the state database: %s", exc)


SUBSCRIPTIONS_FILE = "mqtt-subscriptions.json"
"""File under the data home recording each client id's subscriptions."""


class SubscriptionRecord:
    """The subscriptions each client id's persistent session holds, kept in a JSON file.

    A file that is missing or unreadable counts as empty: the worst case is a stale
    subscription the service cannot name (the log of the earlier start names it).
    """

    def __init__(self, path: Path) -> None:
        """Use ``path`` (created on the first :meth:`put`)."""
        self._path = path

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self._path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(k): [f for f in v if isinstance(f, str) and f and "\x00" not in f]
            for k, v in data.items()
            if isinstance(v, list)
        }

    def get(self, client_id: str) -> list[str]:
        """The filters recorded for ``client_id`` (empty if none)."""
        return self._load().get(client_id, [])

    def put(self, client_id: str, filters: Sequence[str]) -> None:
        """Record that ``client_id``'s session holds exactly ``filters`` (atomic replace)."""
        data = self._load()
        if data.get(client_id) == list(filters):
            return
        data[client_id] = list(filters)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            tmp.replace(self._path)
        except OSError as exc:
            log.warning("cannot record the MQTT subscriptions in %s: %s", self._path, exc)
