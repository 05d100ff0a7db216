"""``python -m vibewatch ingest`` (or ``serve``) as a real process, and the publisher its
tests use.

:class:`ServiceProcess` starts the service with an environment (:func:`ingest_env` points
it at local servers), waits until it is ready, and stops it with SIGTERM (it flushes and
exits 0), kills it with SIGKILL (as a crash or power cut would) or starts it again with
the same data home. Each start logs into a file of its own; the dead-letter log is read
back as JSON.

Readiness is the service's own report, sent the way systemd's ``Type=notify`` expects
(``READY=1`` on ``$NOTIFY_SOCKET``, see :func:`vibewatch.serve.notify`) once the broker's
SUBACK granted its subscriptions: a message published after
:meth:`ServiceProcess.start` returns reaches the service.

:class:`Publisher` is a :class:`~vibewatch.testing.load.LoadGenerator` that publishes
every message again until the broker acknowledges it, so it survives broker restarts; it
also publishes a device's feature vectors and anomaly events (training data).

Failures to start or stop raise :class:`~vibewatch.testing.servers.LocalServerError`
with the tail of the service's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vibewatch.config import load_config
from vibewatch.protocol import (
    DEFAULT_PREFIX,
    AnomalyEvent,
    EventKind,
    Features,
    FeatureVector,
    Kind,
    topic_for,
)
from vibewatch.testing.load import LoadGenerator
from vibewatch.testing.servers import LocalServerError

__all__ = [
    "TEST_SETTINGS",
    "VECTORS_PER_MESSAGE",
    "Publisher",
    "ServiceProcess",
    "ingest_env",
    "wait_for",
]

TEST_SETTINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Batches leave within 0.1 s and statistics are written every second, so tests
        # see points quickly; two quick retries, then the spool.
        "VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.1",
        "VIBEWATCH_INGEST_STATS_INTERVAL": "1",
        "VIBEWATCH_INGEST_RETRY_BUDGET": "2",
        "VIBEWATCH_INGEST_RETRY_MAX": "2",
    }
)
"""Settings that make ingest react within a test's patience (the default of :func:`ingest_env`)."""


VECTORS_PER_MESSAGE: Final = 25
"""Feature vectors per ``features`` message of :meth:`Publisher.publish_features`."""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it holds.

    Args:
        condition: What must become true.
        timeout: Seconds to wait at most.
        what: What is awaited, for the message.

    Raises:
        TimeoutError: ``condition`` did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def ingest_env(
    *,
    mqtt_port: int,
    influx_url: str,
    database: str,
    data_home: Path,
    client_id: str,
    topic_prefix: str | None = None,
    settings: Mapping[str, str] = TEST_SETTINGS,
) -> dict[str, str]:
    """The environment of an ingest process pointed at local servers.

    This process's environment without any ``VIBEWATCH_*`` variable, plus the broker,
    the database, the data home and ``settings``.

    Args:
        mqtt_port: Port of the broker on loopback.
        influx_url: Base URL of InfluxDB.
        database: InfluxDB database.
        data_home: Data home of the process (spool, dead-letter log).
        client_id: MQTT client id (the persistent session's name).
        topic_prefix: Topic prefix; the configuration's default when ``None``.
        settings: Further ``VIBEWATCH_*`` variables; :data:`TEST_SETTINGS` by default,
            ``{}`` for the service's defaults.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    env.update(
        {
            "VIBEWATCH_MQTT_PORT": str(mqtt_port),
            "VIBEWATCH_MQTT_CLIENT_ID": client_id,
            "VIBEWATCH_INFLUX_URL": influx_url,
            "VIBEWATCH_INFLUX_DATABASE": database,
            "VIBEWATCH_DATA_HOME": str(data_home),
        }
    )
    if topic_prefix is not None:
        env["VIBEWATCH_MQTT_TOPIC_PREFIX"] = topic_prefix
    env.update(settings)
    return env


def _peak_rss_mb(pid: int) -> float:
    """A process's peak resident set size (``VmHWM``) in MiB; 0.0 where ``/proc`` has none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class ServiceProcess:
    """One ``python -m vibewatch ingest`` (or ``serve``) process with its own data home and
    log files.

    Example::

        ingest = ServiceProcess(ingest_env(...), workdir)
        ingest.start()          # returns once the broker granted the subscriptions
        ...
        assert ingest.stop() == 0
    """

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        args: Sequence[str] = (),
        *,
        command: str = "ingest",
        name: str = "",
        ready_timeout: float = 30.0,
    ) -> None:
        """Configure the process; nothing runs until :meth:`start`.

        Args:
            env: Its whole environment (see :func:`ingest_env`).
            workdir: Directory of its log files (must exist).
            args: Arguments after the command on the command line.
            command: The ``vibewatch`` command that runs the service: ``ingest`` or
                ``serve``.
            name: Start of the log file names, ``<name>-<start>.log`` [default: the
                command].
            ready_timeout: Seconds :meth:`start` waits for readiness.
        """
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.args = tuple(args)
        self.command = command
        self.name = name or command
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        #: How many times :meth:`start` started the process.
        self.starts = 0
        #: Peak resident set size of the last run in MiB, read just before :meth:`stop`.
        self.peak_rss_mb = 0.0

    @property
    def log_path(self) -> Path:
        """The log file of the current (or last) start."""
        return self.workdir / f"{self.name}-{self.starts}.log"

    @property
    def deadletter_path(self) -> Path:
        """The dead-letter log, where the process's configuration puts it."""
        return load_config(environ=self.env).ingest.deadletter_path

    @property
    def running(self) -> bool:
        """True while the process started last is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        """Process id of the current (or last) start.

        Raises:
            LocalServerError: Never started.
        """
        if self.proc is None:
            raise LocalServerError(f"{self.name} was never started")
        return self.proc.pid

    def start(self, timeout: float | None = None, *, wait: bool = True) -> None:
        """Start the process and wait until it reports that it is ready (the broker granted
        its subscriptions).

        Args:
            timeout: Seconds to wait for readiness; ``ready_timeout`` when ``None``.
            wait: Whether to wait for readiness at all: ``False`` for a process that is
                not meant to become ready (no broker) or that ends on its own
                (``--retire``; see :meth:`wait`).

        Raises:
            LocalServerError: It is running already, exited while starting, or was not
                ready in time (it is killed then); the message ends with its log tail.
        """
        if self.running:
            raise LocalServerError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.peak_rss_mb = 0.0
        with contextlib.ExitStack() as stack:
            env = dict(self.env)
            notices: socket.socket | None = None
            if wait:  # its readiness comes as a datagram on an abstract socket of its own
                notices = stack.enter_context(
                    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                )
                name = f"vibewatch-test-{os.getpid()}-{id(self):x}-{self.starts}"
                notices.bind("\0" + name)
                env["NOTIFY_SOCKET"] = "@" + name
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "vibewatch", self.command, *self.args],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if notices is not None:
                self._wait_ready(notices, self.ready_timeout if timeout is None else timeout)

    def _wait_ready(self, notices: socket.socket, limit: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + limit
        notices.settimeout(0.05)
        while True:
            try:
                if b"READY=1" in notices.recv(4096).split(b"\n"):
                    return
            except TimeoutError:
                pass
            code = self.proc.poll()
            if code is not None:
                raise LocalServerError(
                    f"{self.name} exited with status {code} while starting\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise LocalServerError(
                    f"{self.name} was not ready within {limit:g}s\n{self._tail()}"
                )

    def log(self) -> str:
        """The log of the current (or last) start so far ('' before the first)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of :meth:`log`."""
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> int:
        """Stop with SIGTERM (the service flushes what it holds) and wait.

        The peak RSS is read first (:attr:`peak_rss_mb`). A process that has exited
        already is only waited for.

        Args:
            timeout: Seconds to wait for the exit.

        Returns:
            The exit status: 0 for a clean stop.

        Raises:
            LocalServerError: Never started, or still running after ``timeout`` seconds
                (it is killed then).
        """
        if self.proc is None:
            raise LocalServerError(f"{self.name} was never started")
        if self.proc.poll() is None:
            self.peak_rss_mb = _peak_rss_mb(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LocalServerError(
                f"{self.name} did not stop within {timeout:g}s of SIGTERM and was killed\n"
                f"{self._tail()}"
            ) from None

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit on its own and return its exit status.

        Args:
            timeout: Seconds to wait.

        Raises:
            LocalServerError: Never started, or still running after ``timeout`` seconds
                (it keeps running).
        """
        if self.proc is None:
            raise LocalServerError(f"{self.name} was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LocalServerError(
                f"{self.name} still runs after {timeout:g}s\n{self._tail()}"
            ) from None

    def kill(self) -> None:
        """Kill with SIGKILL, as a crash would: nothing is flushed on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Kill the process if it still runs (cleanup after a failure)."""
        self.kill()

    def deadletters(self) -> list[dict[str, Any]]:
        """The entries of the dead-letter log, oldest first ([] while there is none)."""
        try:
            text = self.deadletter_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines()]

    def _tail(self) -> str:
        return f"--- last lines of {self.log_path} ---\n{self.log_tail(20)}"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"ServiceProcess({self.name}, {state}, workdir={self.workdir})"


class Publisher(LoadGenerator):
    """A QoS 1 publisher that publishes every message again until the broker acknowledges it.

    It survives broker restarts: a message not acknowledged within ``retry_after``
    seconds is published again (a duplicate rewrites the same points). It connects when
    created.
    """

    def __init__(
        self, port: int, client_id: str = "test-publisher", *, retry_after: float = 2.0
    ) -> None:
        """Connect to the broker on loopback.

        Args:
            port: Broker port.
            client_id: MQTT client id.
            retry_after: Seconds without acknowledgement before a message is sent again.

        Raises:
            LocalServerError: The broker did not accept the connection.
        """
        super().__init__(port, client_id=client_id, retry_after=retry_after)
        self.connect()

    @property
    def failures(self) -> int:
        """Publishes that were not acknowledged at once: made while disconnected, or resent."""
        return self.offline + self.resent

    def publish_features(
        self,
        device: str,
        spec_id: str,
        vectors: npt.NDArray[np.float32],
        times_ms: Sequence[int],
        *,
        seq0: int = 0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        """Publish feature vectors as ``features`` messages of at most
        :data:`VECTORS_PER_MESSAGE` vectors each.

        Args:
            device: The device they come from.
            spec_id: Their feature spec's id.
            vectors: The vectors, one a row.
            times_ms: Each vector's device time, milliseconds since the epoch.
            seq0: Sequence number of the first vector; the others count up from it.
            prefix: Topic prefix.
        """
        for first in range(0, len(vectors), VECTORS_PER_MESSAGE):
            batch = tuple(
                FeatureVector(
                    seq=seq0 + i, t=int(times_ms[i]), x=tuple(float(v) for v in vectors[i])
                )
                for i in range(first, min(first + VECTORS_PER_MESSAGE, len(vectors)))
            )
            message = Features(device=device, spec=spec_id, vectors=batch)
            self.publish(topic_for(prefix, device, Kind.FEATURES), message.encode())

    def publish_event(
        self, device: str, kind: EventKind, t_ms: int, *, seq: int, prefix: str = DEFAULT_PREFIX
    ) -> None:
        """Publish one anomaly ``start`` (score 2.5) or ``end`` (score 0.25) event of the
        factory model (threshold 1.0).

        Args:
            device: The device it comes from.
            kind: Start or end.
            t_ms: Its device time, milliseconds since the epoch.
            seq: Its sequence number.
            prefix: Topic prefix.
        """
        event = AnomalyEvent(
            device=device,
            seq=seq,
            t=t_ms,
            kind=kind,
            score=2.5 if kind is EventKind.START else 0.25,
            threshold=1.0,
            model_id="ae-factory",
            model_version=1,
        )
        self.publish(topic_for(prefix, device, Kind.EVENT), event.encode())

    def publish_all(self, messages: Iterable[tuple[str, bytes]], rate: float | None = None) -> None:
        """Publish in order, at most ``rate`` messages a second when given.

        Raises:
            LocalServerError: Some message was not acknowledged within two minutes.
        """
        report = self.run(list(messages), rate=rate or 0.0)
        if report.failed:
            raise LocalServerError(
                f"{report.failed} of {report.messages} messages not acknowledged by the broker"
            )
