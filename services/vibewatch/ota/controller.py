"""The OTA controller: carries out the rollouts the ``vibewatch ota`` commands create.

One service of ``vibewatch serve`` (or ``vibewatch ota serve`` alone). It

* publishes each target's job (retained ``ota/job``: the manifest and the package's
  ``device.sig``) when the target's wave starts (:mod:`vibewatch.ota.rollout` decides
  when);
* serves the chunk requests the devices send on ``ota/req`` (devices pull; a global and
  a per-device rate limit drop requests beyond them, which the devices send again) from
  the blob of the rollout's package, read from the registry and verified once per
  rollout (a rollback ships the registry's signed rollback statement instead of the
  package's install signature);
* follows each target through its ``ota/req`` state reports, every device through its
  ``status`` messages (:meth:`~vibewatch.ota.store.RolloutStore.record_status`), and
  the anomaly events they raise, for the regression guard (remembered for a day, from
  the controller's start);
* carries out the operators' commands (pause, resume, abort, rollback) and the
  rollout's own decisions: a new wave, or on abort a ``rollback`` command to every
  device on the new model and the retained jobs cleared;
* publishes a job again when the device reported nothing new for a while (10 s, or
  the rollout's trial for a device on trial, which reports only when it confirms;
  doubling up to 5 minutes): a device that missed the job takes it then, and one whose
  report was lost reports again;
* saves every change (the rows of the targets whose progress changed) in the state
  database before it acknowledges the report that caused it, so a controller killed
  at any moment resumes where it was: on start it publishes again only the jobs of
  targets that have reported nothing yet;
* writes each rollout's progress and its failures to InfluxDB for the dashboards
  (:mod:`vibewatch.ota.points`) when it changes and every ``report_interval_s`` while it
  is in progress, through a :class:`~vibewatch.influx.reporter.PointReporter`, which
  writes in the background: InfluxDB being down never holds the controller up.

Chunk requests are answered on the MQTT network thread; everything else happens on the
controller's own thread, which owns the state database connection.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vibewatch.config import Config
from vibewatch.errors import MqttError, ProtocolError, VibewatchError
from vibewatch.influx.reporter import PointReporter
from vibewatch.influx.writers import make_writer
from vibewatch.models.keys import load_public_key
from vibewatch.models.registry import Registry
from vibewatch.mqtt import AckToken, MqttSession, broker_settings
from vibewatch.ota.points import RolloutPoints
from vibewatch.ota.rollout import OUTCOMES, DeviceState, Phase, Rollout, Step
from vibewatch.ota.store import RolloutStore
from vibewatch.protocol import (
    AnomalyEvent,
    Command,
    CommandName,
    EventKind,
    Kind,
    Limits,
    OtaChunk,
    OtaJob,
    OtaRequest,
    OtaRequestKind,
    Status,
    decode_message,
    parse_topic,
    subscription_filters,
    topic_for,
)
from vibewatch.state import open_state_db

__all__ = ["OtaController"]

log = logging.getLogger(__name__)

#: Bytes per chunk the jobs ask devices to use.
CHUNK_SIZE: Final = 4096
#: Seconds after which a job no report answered is published again (doubling each time,
#: up to :data:`JOB_RESEND_MAX_S`): a device that missed it while away takes it then.
JOB_RESEND_S: Final = 10.0
JOB_RESEND_MAX_S: Final = 300.0
#: A chunk a device was sent less than this many seconds ago is not sent again: the
#: requests the broker kept for the controller while it was away arrive next to the
#: ones the device sent again meanwhile, and the device stores a chunk once.
CHUNK_REPEAT_S: Final = 1.0


#: Seconds of anomaly events the regression guard remembers.
EVENT_MEMORY_S: Final = 86_400.0

_Queued = Status | OtaRequest | AnomalyEvent


@dataclass(frozen=True)
class _Package:
    """What a running rollout ships: the blob, its digest and its device signature."""

    blob: bytes
    sha256: str
    signature: bytes


class OtaController:
    """Rollouts carried out over MQTT (see the module documentation)."""

    name = "ota"

    def __init__(
        self,
        *,
        session: MqttSession,
        state_db: Path,
        registry: Callable[[], Registry],
        topic_prefix: str,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        chunk_rate: float = 2000.0,
        device_chunk_rate: float = 20.0,
        reporter: PointReporter | None = None,
        site: str = "",
        report_interval_s: float = 10.0,
    ) -> None:
        """Assemble the controller; nothing connects until :meth:`start`.

        Args:
            session: The MQTT session, subscribed to ``ota/req`` and ``status``.
            state_db: The state database (rollouts, devices).
            registry: Opens the model registry (on the controller's thread).
            topic_prefix: Topic prefix of the wire contract.
            clock: Wall clock in seconds (rollout timeouts survive a restart).
            tick_s: Seconds between two looks at timeouts and commands.
            chunk_rate: Chunks served per second at most, over all devices.
            device_chunk_rate: Chunks served one device per second at most (a burst of
                as many).
            reporter: Writes the rollouts' points (started and stopped with the
                controller); None: no points are written.
            site: The ``site`` tag of the points; empty: none.
            report_interval_s: Seconds between two points of a rollout in progress that
                did not change.
        """
        self._session = session
        self._state_db = state_db
        self._open_registry = registry
        self._prefix = topic_prefix
        self._clock = clock
        self._tick_s = tick_s
        self._chunk_rate = chunk_rate
        self._tokens = chunk_rate
        self._device_rate = device_chunk_rate
        self._device_tokens: dict[str, tuple[float, float]] = {}  # device: (tokens, at)
        self._recent: dict[tuple[str, str, int], float] = {}  # (device, job, offset): sent at
        self._refilled = time.monotonic()
        self._inbox: queue.Queue[tuple[str, _Queued, AckToken | None]] = queue.Queue()
        # the times (controller clock) of each device's anomaly starts, for the guard, and
        # when the controller first heard of each device (its known history starts)
        self._events: dict[str, collections.deque[float]] = {}
        self._since: dict[str, float] = {}
        # by job id: replaced whole (never changed in place), read on the network thread
        self._served: dict[str, _Package] = {}
        self._unpublished: set[tuple[str, str]] = set()  # (rollout id, device): to publish
        # (rollout id, device): the state last seen, when to publish its job again, interval
        self._resend: dict[tuple[str, str], tuple[DeviceState | None, float, float]] = {}
        self._reporter = reporter
        self._points = RolloutPoints(interval_s=report_interval_s, site=site)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.chunks_served = 0
        self.chunks_dropped = 0
        self.rejected = 0

    @classmethod
    def from_config(
        cls, config: Config, registry: Callable[[], Registry] | None = None
    ) -> OtaController:
        """The controller as the configuration describes it: its MQTT client id is
        ``mqtt.client_id`` with ``-ota`` appended; ``registry`` opens the model registry
        (the configured one when None)."""
        mqtt = config.mqtt
        session = MqttSession(
            dataclasses.replace(broker_settings(mqtt), client_id=f"{mqtt.client_id}-ota"),
            subscription_filters(mqtt.topic_prefix, (Kind.OTA_REQ, Kind.STATUS, Kind.EVENT)),
        )

        def configured() -> Registry:
            verify_key = config.train.verify_key
            key = load_public_key(verify_key) if verify_key.exists() else None
            return Registry(config.train.registry_dir, config.state_db, key)

        return cls(
            session=session,
            state_db=config.state_db,
            registry=registry or configured,
            topic_prefix=mqtt.topic_prefix,
            chunk_rate=config.ota.chunk_rate,
            device_chunk_rate=config.ota.device_chunk_rate,
            reporter=PointReporter(make_writer(config.influx), name="ota"),
            site=config.ingest.site,
            report_interval_s=config.ingest.stats_interval,
        )

    # ----------------------------------------------------------------- running
    @property
    def ready(self) -> bool:
        """Whether its subscriptions stand."""
        return self._session.ready

    def start(self, timeout: float = 30.0) -> None:
        """Load the rollouts in progress, start the controller's thread, subscribe.

        Raises:
            MqttError: The broker refused the controller.
            TimeoutError: The subscriptions were not granted within ``timeout``.
        """
        if self._reporter is not None:
            self._reporter.start()
        self._thread = threading.Thread(target=self._run, name="vibewatch-ota", daemon=True)
        self._thread.start()
        self._session.start(self._handle, timeout)

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the reports received, save, disconnect."""
        self._stop.set()
        clean = True
        if self._thread is not None:
            self._thread.join(timeout)
            clean = not self._thread.is_alive()
        self._session.stop()
        if self._reporter is not None:  # what it could not write is in the state database
            self._reporter.stop()
        log.info(
            "ota stopped; chunks served %d, dropped %d, messages rejected %d%s",
            self.chunks_served,
            self.chunks_dropped,
            self.rejected,
            f"; {self._reporter.counts}" if self._reporter is not None else "",
        )
        return clean

    # ------------------------------------------------------ the network thread
    def _handle(self, topic: str | None, payload: bytes, token: AckToken | None) -> None:
        try:
            device, kind = parse_topic(topic, self._prefix)
            now_ms = int(self._clock() * 1000)
            message = decode_message(kind, device, payload, now_ms=now_ms, limits=Limits())
        except ProtocolError as exc:
            self.rejected += 1
            log.warning("ota: rejected message on %r: %s", topic, exc)
            self._ack(token)
            return
        if isinstance(message, OtaRequest) and message.kind is OtaRequestKind.CHUNK:
            self._serve_chunk(message)
            self._ack(token)
        elif isinstance(message, Status | OtaRequest | AnomalyEvent):
            self._inbox.put((device, message, token))
        else:
            self._ack(token)

    def _ack(self, token: AckToken | None) -> None:
        if token is not None:
            self._session.ack([token])

    def _serve_chunk(self, request: OtaRequest) -> None:
        package = self._served.get(request.job)
        if package is None or request.offset is None or request.length is None:
            return  # not a job of a running rollout: nothing to send
        now = time.monotonic()
        sent = (request.device, request.job, request.offset)
        if now - self._recent.get(sent, -CHUNK_REPEAT_S) < CHUNK_REPEAT_S:
            return
        refill = (now - self._refilled) * self._chunk_rate
        self._tokens = min(self._chunk_rate, self._tokens + refill)
        self._refilled = now
        tokens, at = self._device_tokens.get(request.device, (self._device_rate, now))
        tokens = min(self._device_rate, tokens + (now - at) * self._device_rate)
        if self._tokens < 1 or tokens < 1:
            self._device_tokens[request.device] = (tokens, now)
            self.chunks_dropped += 1  # the device asks again after its timeout
            return
        self._tokens -= 1
        self._device_tokens[request.device] = (tokens - 1, now)
        data = package.blob[request.offset : request.offset + request.length]
        if not data:
            return
        if len(self._recent) > 100_000:
            self._recent = {k: t for k, t in self._recent.items() if now - t < CHUNK_REPEAT_S}
        if len(self._device_tokens) > 100_000:  # a bucket refills within a second:
            self._device_tokens = {  # one untouched that long is as good as none
                d: v for d, v in self._device_tokens.items() if now - v[1] < 1.0
            }
        self._recent[sent] = now
        chunk = OtaChunk.for_job(request.device, request.job, request.offset, data)
        self._session.send(topic_for(self._prefix, request.device, Kind.OTA_CHUNK), chunk.encode())
        self.chunks_served += 1

    # --------------------------------------------------- the controller's thread
    def _run(self) -> None:
        db = open_state_db(self._state_db)
        store = RolloutStore(db)
        rollouts: dict[str, Rollout] = {}
        try:
            with self._open_registry() as registry:
                for rollout_id in store.ids(active=True):
                    rollout = store.load(rollout_id)
                    self._take(rollout, registry, rollouts)
                    self._carry_out(store, rollout, self._unreported(rollout))
                next_tick = 0.0
                while not self._stop.is_set():
                    self._drain(store, rollouts, timeout=0.1)
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + self._tick_s
                        self._tick(store, registry, rollouts)
                self._drain(store, rollouts, timeout=0.0)
        except Exception:
            log.exception("the OTA controller stopped on an unexpected error")
            raise
        finally:
            db.close()

    def _take(self, rollout: Rollout, registry: Registry, rollouts: dict[str, Rollout]) -> bool:
        """Load a rollout's package, verified; one that cannot be loaded aborts."""
        plan = rollout.plan
        try:
            package = registry.load(plan.model_id, plan.version)
            signature = package.device_signature
            if plan.rollback:
                statement = registry.rollback_statement(plan.model_id, plan.version)
                if statement is None:
                    raise VibewatchError("its signed rollback statement is gone")
                signature = statement
        except VibewatchError as exc:
            rollout.abort(f"cannot load the package: {exc}", self._clock())
            return False
        blob = package.vwm
        shipped = _Package(blob, hashlib.sha256(blob).hexdigest(), signature)
        self._served = {**self._served, rollout.job_id: shipped}
        rollouts[rollout.rollout_id] = rollout
        return True

    def _unreported(self, rollout: Rollout) -> Step:
        """The targets sent a job that reported nothing yet: their job is published again."""
        return Step(
            send=tuple(d for d, p in rollout.devices.items() if p.state is DeviceState.SENT)
        )

    def _silent(self, rollout: Rollout) -> Step:
        """The targets whose job is under way but that reported nothing new for a while:
        the job is published again, and the device reports where it is (a report lost on
        the way, or a job the device missed while away)."""
        now, again = time.monotonic(), []
        for device, progress in rollout.devices.items():
            key = (rollout.rollout_id, device)
            if progress.state is DeviceState.QUEUED or progress.state in OUTCOMES:
                self._resend.pop(key, None)
                continue
            state, due, interval = self._resend.get(key, (None, 0.0, 0.0))
            if state is not progress.state:  # news from the device: wait again
                # on trial, the device says nothing until it confirms the model
                trial = rollout.plan.trial_s if progress.state is DeviceState.TRIAL else 0.0
                wait = max(JOB_RESEND_S, trial)
                self._resend[key] = (progress.state, now + wait, wait)
            elif now >= due:
                interval = min(2 * interval, JOB_RESEND_MAX_S)
                self._resend[key] = (state, now + interval, interval)
                again.append(device)
        return Step(send=tuple(again))

    def _tick(self, store: RolloutStore, registry: Registry, rollouts: dict[str, Rollout]) -> None:
        for rollout_id in store.ids(active=True):
            if rollout_id not in rollouts:  # created by `vibewatch ota deploy`
                rollout = store.load(rollout_id)
                if self._take(rollout, registry, rollouts):
                    log.info("ota: starting %s (%s)", rollout.rollout_id, rollout.job_id)
                    self._carry_out(store, rollout, rollout.start(self._clock()))
                else:
                    self._save(store, rollout)
        for rollout_id, command, reason in store.take_commands():
            target = rollouts.get(rollout_id)
            if target is None and command == "rollback":  # it ended: undo what it installed
                ended = store.load(rollout_id)
                step = ended.roll_back(reason or "rolled back by the operator", self._clock())
                self._carry_out(store, ended, step)
                self._points.forget(rollout_id)
            elif target is None:
                continue
            elif command == "pause":
                target.pause(reason or "paused by the operator")
                self._carry_out(store, target, Step())
            elif command == "resume":
                self._carry_out(store, target, target.resume(self._clock()))
            elif command == "rollback":
                step = target.roll_back(reason or "rolled back by the operator", self._clock())
                self._carry_out(store, target, step)
            else:
                step = target.abort(reason or "aborted by the operator", self._clock())
                self._carry_out(store, target, step)
        for rollout_id, device in sorted(self._unpublished):
            self._unpublished.discard((rollout_id, device))
            if rollout_id in rollouts:
                self._carry_out(store, rollouts[rollout_id], Step(send=(device,)))
        now = self._clock()
        for times in self._events.values():
            while times and times[0] < now - EVENT_MEMORY_S:
                times.popleft()
        forgotten = now - EVENT_MEMORY_S  # the known history starts no earlier
        self._since = {device: max(t, forgotten) for device, t in self._since.items()}
        for rollout in list(rollouts.values()):
            self._carry_out(store, rollout, self._silent(rollout))
            self._carry_out(store, rollout, rollout.guard(self._events, self._since, now))
            self._carry_out(store, rollout, rollout.tick(now))
            if rollout.phase in (Phase.COMPLETED, Phase.ABORTED):
                del rollouts[rollout.rollout_id]
                self._points.forget(rollout.rollout_id)
                self._served = {k: v for k, v in self._served.items() if k != rollout.job_id}

    def _drain(self, store: RolloutStore, rollouts: dict[str, Rollout], timeout: float) -> None:
        try:
            device, message, token = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._since.setdefault(device, self._clock())
            if isinstance(message, Status):
                store.record_status(message)
            elif isinstance(message, AnomalyEvent):
                if message.kind is EventKind.START:
                    self._events.setdefault(device, collections.deque()).append(self._clock())
            else:
                for rollout in rollouts.values():
                    if rollout.job_id == message.job and message.state is not None:
                        step = rollout.report(
                            device, message.state, self._clock(), message.detail or ""
                        )
                        self._carry_out(store, rollout, step)
                        if rollout.devices[device].state is DeviceState.CONFIRMED:
                            plan = rollout.plan
                            store.record_install(device, plan.model_id, plan.version)
            self._ack(token)
            try:
                device, message, token = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _carry_out(self, store: RolloutStore, rollout: Rollout, step: Step) -> None:
        """Publish what ``step`` asks (a job not acknowledged by the broker is published
        again at the next tick), then save the rollout."""
        package = self._served.get(rollout.job_id)
        for device in step.send:
            if package is None:  # its package could not be loaded: it aborted
                break
            job = OtaJob(
                device=device,
                job=rollout.job_id,
                model_id=rollout.plan.model_id,
                model_version=rollout.plan.version,
                size=len(package.blob),
                sha256=package.sha256,
                chunk_size=CHUNK_SIZE,
                signature=package.signature,
                rollback=rollout.plan.rollback,
            )
            topic = topic_for(self._prefix, device, Kind.OTA_JOB)
            if not self._publish(topic, job.encode(), retain=True):
                self._unpublished.add((rollout.rollout_id, device))
        for device in step.roll_back:
            command = Command(
                device=device,
                id=f"{rollout.rollout_id}-rollback",
                t=int(self._clock() * 1000),
                cmd=CommandName.ROLLBACK,
            )
            self._publish(topic_for(self._prefix, device, Kind.CMD), command.encode())
        for device in step.withdraw:  # the retained job goes: no device takes it
            self._publish(topic_for(self._prefix, device, Kind.OTA_JOB), b"", retain=True)
        self._save(store, rollout)
        if rollout.phase in (Phase.COMPLETED, Phase.ABORTED):
            log.info(
                "ota: %s %s%s",
                rollout.rollout_id,
                rollout.phase.value,
                f": {rollout.reason}" if rollout.reason else "",
            )

    def _save(self, store: RolloutStore, rollout: Rollout) -> None:
        """Save a rollout, then queue the points of it that are due."""
        store.save(rollout)
        if self._reporter is not None:
            self._reporter.put(self._points.due(rollout, self._clock()))

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        try:
            self._session.publish(topic, payload, retain=retain, timeout=30.0)
        except (MqttError, TimeoutError) as exc:
            log.error("ota: cannot publish on %s: %s", topic, exc)
            return False
        return True
