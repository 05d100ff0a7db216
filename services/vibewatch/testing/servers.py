"""Real Mosquitto and InfluxDB 1.x processes on free loopback ports.

Tests, benchmarks and ``vibewatch demo`` need the real servers a site runs, not
stand-ins: :class:`LocalMosquitto` and :class:`LocalInfluxDB` each write their
own configuration into a working directory, start the Debian-packaged binary
(``mosquitto``, ``influxd``) on ``127.0.0.1``, wait until it answers, and stop,
kill or restart it. A restart keeps the port and the data, so clients reconnect
to the same address and find their persistent sessions and their points.

The broker runs with :data:`NO_LOSS_SETTINGS`, the same values that
``deploy/mosquitto.conf`` ships and ``docs/broker.md`` explains: with them a
persistent subscriber that is away never has QoS 1 messages silently dropped by
Mosquitto's default queue limit.

Errors raised here::

    VibewatchError
    └── LocalServerError            a server did not start, stop or answer as asked
        └── ExecutableNotFoundError the binary is not installed (names the Debian package)

Errors of the project's InfluxDB client met by the helpers (:class:`QueryError`,
:class:`~vibewatch.errors.WriteError`) are raised as :class:`LocalServerError`, chained.

:class:`LocalInfluxDB` also sets up and checks data (:meth:`~LocalInfluxDB.query`,
:meth:`~LocalInfluxDB.create_database`, :meth:`~LocalInfluxDB.count`,
:meth:`~LocalInfluxDB.write_lines`, :func:`rows`) through the project's own InfluxDB
client, :class:`~vibewatch.influx.query.InfluxQL` and
:class:`~vibewatch.influx.writers.InfluxV1Writer`: what the tests check is read the way
the services read it.

Every started server is also stopped at interpreter exit (:mod:`atexit`), so a
test run that forgets one, or fails half-way, leaves no process behind. A
parent killed with SIGKILL cannot clean up: its servers stay in its process
group, so they stop with the terminal session (Ctrl-C reaches them too) or must
be killed by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import http.client
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Final, Self

from vibewatch.errors import VibewatchError, WriteError
from vibewatch.influx.query import InfluxQL, QueryError, Series, quote_identifier
from vibewatch.influx.writers import InfluxV1Writer
from vibewatch.sim.network import raise_open_files_limit

__all__ = [
    "NO_LOSS_SETTINGS",
    "ExecutableNotFoundError",
    "LocalAlertmanager",
    "LocalInfluxDB",
    "LocalMosquitto",
    "LocalServer",
    "LocalServerError",
    "find_executable",
    "free_port",
    "listening",
    "local_servers",
    "rows",
]

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"

#: Broker options for a Mosquitto 2.0 broker that must not drop ingest's QoS 1
#: messages. ``deploy/mosquitto.conf`` carries the same lines with the reasoning
#: for each, and ``docs/broker.md`` explains the guarantee end to end; a test
#: keeps the three in step. The ``persistence_location`` is set separately
#: because it is a path of the host.
NO_LOSS_SETTINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Keep sessions, subscriptions and queued messages across restarts.
        "persistence": "true",
        # Seconds between snapshots of the in-memory store: the most a broker
        # crash (not a clean stop, which always saves) can lose.
        "autosave_interval": "10",
        "autosave_on_changes": "false",
        # The default of 1000 messages silently drops QoS 1 messages queued for
        # a subscriber that is away. These bounds are sized from memory instead
        # (about 400 B of broker overhead per message plus the payload); the
        # first one reached drops, counted in $SYS/broker/publish/messages/dropped.
        "max_queued_messages": "1000000",
        "max_queued_bytes": "268435456",
        # Outgoing window per client (an MQTT 5 client's Receive Maximum replaces
        # it); must cover ingest's largest batch, acked only once written.
        "max_inflight_messages": "1000",
        # Sessions of clients gone for longer than this are removed with their
        # queues; caps the MQTT 5 Session Expiry Interval too.
        "persistent_client_expiration": "7d",
        # Whole MQTT packet: twice the 64 KiB ingest payload limit, so topic,
        # properties and headers fit and ingest sees (and dead-letters) payloads
        # just over its limit instead of the broker cutting off the device.
        "max_packet_size": "131072",
    }
)

#: Debian package that provides each executable, for the error message.
_PACKAGES: Final[Mapping[str, str]] = MappingProxyType(
    {"mosquitto": "mosquitto", "influxd": "influxdb"}
)

#: Directories searched after ``PATH``: Debian installs ``mosquitto`` in
#: ``/usr/sbin``, which is not on a normal user's ``PATH``.
_FALLBACK_DIRS: Final = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")

DEFAULT_START_TIMEOUT: Final = 15.0
DEFAULT_STOP_TIMEOUT: Final = 15.0
#: Open files a server may hold (the limit is raised to it, or to the hard limit, before
#: a server starts): a simulated fleet of thousands of devices, a socket each.
OPEN_FILES: Final = 16384


class LocalServerError(VibewatchError):
    """A local server did not start, stop or answer as asked."""


class ExecutableNotFoundError(LocalServerError):
    """The server's executable is not installed; the message names the Debian package."""


def free_port() -> int:
    """Return a TCP port on ``127.0.0.1`` that is free right now.

    The port is found by binding port 0 and closing the socket, so another
    process may take it before the caller binds it; :meth:`LocalServer.start`
    picks a new one if that happens before a server's first start.

    Returns:
        A port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts connections on ``127.0.0.1:port`` (a server left running)."""
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


def _port_is_free(port: int) -> bool:
    """Tell whether ``127.0.0.1:port`` can be bound the way a server binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Both servers set SO_REUSEADDR, so a port left in TIME_WAIT by the
        # previous run of the same server counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def find_executable(name: str, *, override: str | os.PathLike[str] | None = None) -> str:
    """Locate a server executable.

    Args:
        name: Executable name, ``mosquitto`` or ``influxd``.
        override: A path or a command name to use instead of ``name``.

    Returns:
        The absolute path of the executable.

    Raises:
        ExecutableNotFoundError: Nothing executable was found; the message says
            where it looked and which Debian package to install.
    """
    wanted = os.fspath(override) if override is not None else name
    if os.sep in wanted:
        if os.path.isfile(wanted) and os.access(wanted, os.X_OK):
            return os.path.abspath(wanted)
        searched = wanted
    else:
        found = shutil.which(wanted)
        if found is None:
            for directory in _FALLBACK_DIRS:
                found = shutil.which(wanted, path=directory)
                if found is not None:
                    break
        if found is not None:
            return found
        searched = f"{wanted!r} on PATH or in {', '.join(_FALLBACK_DIRS)}"
    package = _PACKAGES.get(name, name)
    raise ExecutableNotFoundError(
        f"{name} executable not found (looked for {searched}); "
        f"install the Debian package {package!r}: apt-get install {package}"
    )


_LIVE: set[LocalServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    """Stop every server this process started and did not stop."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        try:
            server.stop(timeout=5.0)
        except Exception:  # best effort at exit: log and go on with the others
            log.exception("could not stop %r at exit", server)


atexit.register(_stop_all_at_exit)


class LocalServer:
    """One server process on loopback: configuration, start, stop, kill, restart.

    Subclasses write their configuration file, name their command line and say
    when the process is ready. The port is chosen once (or given) and kept for
    every restart; the working directory holds configuration, data and log.
    """

    #: Executable name, looked up by :func:`find_executable`.
    executable_name: ClassVar[str]
    #: Short name used in messages and file names.
    label: ClassVar[str]

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None,
        executable: str | os.PathLike[str] | None,
        start_timeout: float,
    ) -> None:
        # Absolute: the process runs in workdir and is given paths inside it.
        self.workdir = Path(workdir).absolute()
        self._auto_port = port is None
        self._port = free_port() if port is None else port
        self.executable = executable
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._log_offset = 0

    # -- public surface -------------------------------------------------------

    @property
    def host(self) -> str:
        """Address the server listens on (always ``127.0.0.1``)."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """Port the server listens on; the same across restarts."""
        return self._port

    @property
    def running(self) -> bool:
        """True while the process started by :meth:`start` is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id while running, else ``None``."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr go there too)."""
        return self.workdir / f"{self.label}.log"

    @property
    def config_path(self) -> Path:
        """The configuration file written on every start."""
        return self.workdir / f"{self.label}.conf"

    def start(self) -> None:
        """Write the configuration, start the process and wait until it answers.

        If the port was chosen automatically and another process takes it
        before the first start, a new free port is chosen (at most twice);
        after a first successful start the port never changes.

        Raises:
            ExecutableNotFoundError: The executable is not installed.
            LocalServerError: The process exited, or did not answer within
                :attr:`start_timeout` seconds; the message ends with the log tail.
        """
        if self.running:
            raise LocalServerError(f"{self!r} is already running")
        binary = find_executable(self.executable_name, override=self.executable)
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 3 if self._auto_port and not self._started_once else 1
        for attempt in range(1, attempts + 1):
            if not self._ports_free():
                if attempt < attempts:
                    self._choose_new_ports()
                    continue
                raise LocalServerError(
                    f"{self.label}: port {self._describe_ports()} is in use by another process"
                )
            try:
                self._spawn_and_wait(binary)
            except LocalServerError as exc:
                if attempt < attempts and "address already in use" in str(exc).lower():
                    log.info("%s lost its port to another process; choosing another", self.label)
                    self._choose_new_ports()
                    continue
                raise
            break
        self._started_once = True

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop cleanly (SIGTERM) and wait; both servers save their state on this path.

        Does nothing if the server is not running. A process that does not exit
        within ``timeout`` seconds is killed and an error is raised.

        Args:
            timeout: Seconds to wait for a clean exit.

        Raises:
            LocalServerError: The process had to be killed.
        """
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise LocalServerError(
                        f"{self.label} did not stop within {timeout:g}s of SIGTERM and was "
                        f"killed\n{self._tail_for_error()}"
                    ) from None
        finally:
            self._forget()

    def kill(self) -> None:
        """Kill with SIGKILL, as a crash or power cut would: nothing is saved on the way out."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        finally:
            self._forget()

    def restart(self) -> None:
        """Stop cleanly (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    def log_tail(self, n: int = 20) -> str:
        """Return the last ``n`` lines of the log file ('' if there is none yet).

        Args:
            n: Number of lines.
        """
        try:
            with self.log_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 64 * 1024))
                data = handle.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def __enter__(self) -> Self:
        """Start the server; :meth:`stop` runs on exit of the ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}({self.host}:{self.port}, {state}, workdir={self.workdir})"

    # -- for subclasses -------------------------------------------------------

    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self, binary: str) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        """The process's environment; ``None``: the caller's."""
        return None

    def _ready(self, new_log: str) -> bool:
        """Tell whether the server answers; ``new_log`` is the log written since spawn."""
        raise NotImplementedError

    def _ports(self) -> tuple[int, ...]:
        return (self._port,)

    def _choose_new_ports(self) -> None:
        self._port = free_port()

    # -- mechanism ------------------------------------------------------------

    def _ports_free(self) -> bool:
        return all(_port_is_free(port) for port in self._ports())

    def _describe_ports(self) -> str:
        return ", ".join(str(port) for port in self._ports())

    def _spawn_and_wait(self, binary: str) -> None:
        self._write_config()
        # A broker of a thousand simulated devices holds a thousand sockets.
        raise_open_files_limit(OPEN_FILES)
        with self.log_path.open("ab") as handle:
            self._log_offset = handle.tell()
            began = time.monotonic()
            # Same process group as the caller: a Ctrl-C in the terminal stops
            # the servers too, which is what a developer expects.
            proc = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._environment(),
            )
        self._proc = proc
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = began + self.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._forget()
                raise LocalServerError(
                    f"{self.label} exited with status {code} while starting "
                    f"(config {self.config_path})\n{self._tail_for_error()}"
                )
            if self._ready(self._new_log()):
                # The answer may have come from a process that held the port
                # before ours failed to bind it: check that ours still runs.
                if proc.poll() is None:
                    break
                continue
            if time.monotonic() > deadline:
                self.kill()
                raise LocalServerError(
                    f"{self.label} did not answer on {self.host}:{self.port} within "
                    f"{self.start_timeout:g}s (config {self.config_path})\n{self._tail_for_error()}"
                )
            time.sleep(0.02)
        log.debug(
            "%s ready on %s:%d in %.3fs (pid %d)",
            self.label,
            self.host,
            self.port,
            time.monotonic() - began,
            proc.pid,
        )

    def _new_log(self) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _tail_for_error(self) -> str:
        tail = self.log_tail(20)
        return f"--- last lines of {self.log_path} ---\n{tail}" if tail else "(log is empty)"

    def _forget(self) -> None:
        self._proc = None
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _answers(port: int, path: str, status: int) -> bool:
    """Whether ``GET path`` on the loopback ``port`` answers ``status`` within a second."""
    # http.client, like the project's client, never goes through a proxy.
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


_MOSQUITTO_RUNNING: Final = re.compile(r"mosquitto version \S+ running")


def _conf_path(path: Path) -> str:
    """Render a path for mosquitto.conf, which splits values on whitespace."""
    text = str(path)
    if any(ch.isspace() for ch in text):
        raise LocalServerError(f"mosquitto cannot use a path with whitespace: {text!r}")
    return text


class LocalMosquitto(LocalServer):
    """A Mosquitto 2 broker on ``127.0.0.1`` with persistence in its working directory.

    Example::

        with LocalMosquitto(workdir=tmp / "broker") as broker:
            client.connect(broker.host, broker.port)
    """

    executable_name = "mosquitto"
    label = "mosquitto"

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        anonymous: bool = True,
        settings: Mapping[str, str] = NO_LOSS_SETTINGS,
        config: str = "",
        executable: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        """Configure the broker; nothing runs until :meth:`start`.

        Args:
            workdir: Directory for configuration, persistence and log (created).
            port: Listener port; a free one is chosen once when ``None``.
            extra_conf: Lines appended to the generated mosquitto.conf.
            config: A whole mosquitto.conf to run instead of the generated one (a site's
                file with its paths and listener moved here: its listener must be
                ``port`` on loopback, its log on standard error); ``extra_conf``,
                ``anonymous`` and ``settings`` are then unused.
            anonymous: Whether clients without a user name may connect (False with a
                ``password_file`` in ``extra_conf``).
            settings: Broker options written as ``key value`` lines;
                :data:`NO_LOSS_SETTINGS` unless a test compares with other values.
            executable: Path or name of the mosquitto binary to use instead of
                the one found on ``PATH`` or in ``/usr/sbin``.
            start_timeout: Seconds :meth:`start` waits for the listener.
        """
        super().__init__(
            workdir=workdir, port=port, executable=executable, start_timeout=start_timeout
        )
        self.extra_conf = extra_conf
        self.anonymous = anonymous
        self.settings = dict(settings)
        self.config = config

    @property
    def persistence_dir(self) -> Path:
        """Directory of ``mosquitto.db``."""
        return self.workdir / "persistence"

    def _write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        if self.config:
            self.config_path.write_text(self.config, encoding="utf-8")
            return
        lines = [
            "# Written by vibewatch.testing.servers on every start; edits are lost.",
            f"listener {self.port} {LOOPBACK}",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            # Only has an effect when run as root: stay that user instead of
            # switching to "mosquitto", who cannot write into the workdir.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"persistence_location {_conf_path(self.persistence_dir)}/",
            "persistence_file mosquitto.db",
            f"log_dest file {_conf_path(self.log_path)}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            "",
            "# Delivery settings (vibewatch.testing.servers.NO_LOSS_SETTINGS by default).",
            *(f"{key} {value}" for key, value in self.settings.items()),
            "",
        ]
        if self.extra_conf:
            lines += ["# extra_conf", self.extra_conf.rstrip("\n"), ""]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    def _command(self, binary: str) -> list[str]:
        return [binary, "-c", str(self.config_path)]

    def _ready(self, new_log: str) -> bool:
        # "mosquitto version X running" is logged only once every listener is
        # bound, so a connect that succeeds after it reaches this process.
        if _MOSQUITTO_RUNNING.search(new_log) is None:
            return False
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1.0):
                return True
        except OSError:
            return False


def _toml_string(value: str) -> str:
    """Quote a string for TOML (a JSON string is a valid TOML basic string)."""
    return json.dumps(value)


class LocalInfluxDB(LocalServer):
    """An InfluxDB 1.x server (``influxd``) on ``127.0.0.1`` with its data in the working directory.

    Besides process control it has small helpers that tests use to set up and
    check data: :meth:`query`, :meth:`create_database`, :meth:`count` and
    :meth:`write_lines`, built on the project's InfluxDB client.
    """

    executable_name = "influxd"
    label = "influxd"

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None = None,
        rpc_port: int | None = None,
        executable: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        http_timeout: float = 30.0,
    ) -> None:
        """Configure the server; nothing runs until :meth:`start`.

        Args:
            workdir: Directory for configuration, meta, data, WAL and log (created).
            port: HTTP port; a free one is chosen once when ``None``.
            rpc_port: Backup/restore RPC port (influxd binds 8088 unless told);
                a free one is chosen once when ``None``.
            executable: Path or name of the influxd binary to use instead of the
                one found on ``PATH``.
            start_timeout: Seconds :meth:`start` waits for ``/ping``.
            http_timeout: Socket timeout of the helper requests.
        """
        super().__init__(
            workdir=workdir, port=port, executable=executable, start_timeout=start_timeout
        )
        self._auto_rpc_port = rpc_port is None
        self._rpc_port = free_port() if rpc_port is None else rpc_port
        self.http_timeout = http_timeout

    @property
    def rpc_port(self) -> int:
        """Port of the backup/restore RPC service; the same across restarts."""
        return self._rpc_port

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, ``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    def _ports(self) -> tuple[int, ...]:
        return (self._port, self._rpc_port)

    def _choose_new_ports(self) -> None:
        if self._auto_port:
            self._port = free_port()
        if self._auto_rpc_port:
            self._rpc_port = free_port()

    def _write_config(self) -> None:
        def q(path: Path) -> str:
            return _toml_string(str(path))

        text = f"""\
# Written by vibewatch.testing.servers on every start; edits are lost.
# Debian's build reads reporting-enabled, upstream builds reporting-disabled;
# each ignores the other's key.
reporting-enabled = false
reporting-disabled = true
# The backup/restore RPC service binds 8088 on every start unless told otherwise.
bind-address = {_toml_string(f"{LOOPBACK}:{self._rpc_port}")}

[meta]
  dir = {q(self.workdir / "meta")}
  logging-enabled = false

[data]
  dir = {q(self.workdir / "data")}
  wal-dir = {q(self.workdir / "wal")}
  # 0s: every write is fsynced to the WAL before it is acknowledged.
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = {_toml_string(f"{LOOPBACK}:{self.port}")}
  log-enabled = false

[ifql]
  enabled = false

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true
"""
        self.config_path.write_text(text, encoding="utf-8")

    def _command(self, binary: str) -> list[str]:
        return [binary, "-config", str(self.config_path)]

    def _ready(self, new_log: str) -> bool:
        # The HTTP service opens after the store has loaded shards and WAL, so
        # /ping answering means the data is there; the log line proves the
        # answer comes from this process and not an earlier holder of the port.
        if f"addr={LOOPBACK}:{self.port}" not in new_log:
            return False
        return self.ping()

    # -- HTTP helpers ---------------------------------------------------------

    def ping(self) -> bool:
        """Tell whether ``GET /ping`` answers 204 (the readiness probe of InfluxDB 1.x)."""
        return _answers(self.port, "/ping", 204)

    def client(self, db: str = "") -> InfluxQL:
        """The project's query client for database ``db`` on this server.

        Args:
            db: Database for statements that need one; empty for none.
        """
        return InfluxQL(url=self.url, database=db, timeout=self.http_timeout)

    def query(self, q: str, db: str | None = None) -> list[Series]:
        """Run InfluxQL and return the series of its answer.

        Statements that change something (``CREATE``, ``DROP``) run too: the
        client sends every statement by ``GET``, which InfluxDB 1.x executes
        with a deprecation note in the answer.

        Args:
            q: One or more InfluxQL statements.
            db: Database for statements that need one.

        Returns:
            The series of every statement, in order (see :meth:`InfluxQL.query`).

        Raises:
            LocalServerError: The server is unreachable, refuses the query or
                reports an error in any statement's result.
        """
        try:
            return self.client(db or "").query(q)
        except QueryError as exc:
            raise LocalServerError(str(exc)) from exc

    def create_database(self, name: str, retention: str | None = None) -> None:
        """Create a database (idempotent), optionally with a default retention duration.

        Args:
            name: Database name.
            retention: InfluxQL duration of the default retention policy,
                e.g. ``"1h"`` or ``"30d"``; ``None`` keeps data forever.

        Raises:
            LocalServerError: The server refused.
        """
        if retention is None:
            # What ingest does at start-up: the writer's own CREATE DATABASE.
            writer = InfluxV1Writer(url=self.url, database=name, timeout=self.http_timeout)
            try:
                writer.ensure_database()
            except WriteError as exc:
                raise LocalServerError(f"CREATE DATABASE {name!r}: {exc}") from exc
            finally:
                writer.close()
            return
        self.query(f"CREATE DATABASE {quote_identifier(name)} WITH DURATION {retention}")

    def count(self, db: str, measurement: str, field: str, where: str = "") -> int:
        """Count the points of a measurement that have ``field``.

        Args:
            db: Database.
            measurement: Measurement name.
            field: Field whose values are counted.
            where: InfluxQL condition without the ``WHERE`` keyword, or empty.

        Returns:
            The count, 0 when no point matches.
        """
        # Identifiers are quoted; ``where`` is the caller's InfluxQL on purpose.
        target = f"count({quote_identifier(field)}) FROM {quote_identifier(measurement)}"
        statement = f"SELECT {target}"
        if where:
            statement += f" WHERE {where}"
        return sum(int(row[1]) for series in self.query(statement, db) for row in series.values)

    def write_lines(self, db: str, lines: str) -> None:
        """Write line protocol through the writer ingest uses, so with its timestamp precision.

        Args:
            db: Database.
            lines: Newline-separated line protocol, timestamps in nanoseconds (the
                precision of :class:`~vibewatch.influx.writers.InfluxV1Writer`).

        Raises:
            LocalServerError: The server refused the lines (the message holds its
                answer) or could not be reached.
        """
        writer = InfluxV1Writer(
            url=self.url, database=db, timeout=self.http_timeout, gzip_level=None
        )
        try:
            writer.write(lines.encode("utf-8"))
        except WriteError as exc:
            raise LocalServerError(f"writing to {db!r}: {exc}") from exc
        finally:
            writer.close()


def rows(influxdb: LocalInfluxDB, db: str, query: str) -> list[dict[str, Any]]:
    """Run an InfluxQL query; return one dict per row, tags merged in, time in epoch ms.

    Args:
        influxdb: The server.
        db: Database.
        query: One or more InfluxQL statements; the rows of all of them are returned.

    Raises:
        LocalServerError: As for :meth:`LocalInfluxDB.query`.
    """
    out: list[dict[str, Any]] = []
    for series in influxdb.query(query, db):
        for values in series.values:
            row = dict(zip(series.columns, values, strict=True))
            row.update(series.tags)
            out.append(row)
    return out


@contextlib.contextmanager
def local_servers(workdir: Path) -> Iterator[tuple[LocalMosquitto, LocalInfluxDB]]:
    """A Mosquitto and an InfluxDB with their data in ``workdir``, started; both stopped
    on the way out, whatever happens (what the benchmarks and the demo run on)."""
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(LocalMosquitto(workdir=workdir / "mosquitto"))
        influx = stack.enter_context(LocalInfluxDB(workdir=workdir / "influxdb"))
        yield broker, influx


class LocalAlertmanager(LocalServer):
    """A Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) on ``127.0.0.1``,
    clustering off, its state in the working directory, its clock's zone UTC (the times it
    fills in itself are written in its local zone), ``externalURL`` its own address.

    Args:
        workdir: Directory for configuration, data and log (created).
        config: The ``alertmanager.yml`` text (route, receivers, inhibition rules).
        port: Web port; a free one is chosen once when ``None``.
        executable: Path or name of the binary instead of the one on ``PATH``.
        start_timeout: Seconds :meth:`start` waits for ``/-/ready``.
    """

    executable_name = "prometheus-alertmanager"
    label = "alertmanager"

    def __init__(
        self,
        *,
        workdir: Path,
        config: str,
        port: int | None = None,
        executable: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        super().__init__(
            workdir=workdir, port=port, executable=executable, start_timeout=start_timeout
        )
        self.config = config

    @property
    def url(self) -> str:
        """Its base URL (also its ``externalURL``), ``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    def _write_config(self) -> None:
        self.config_path.write_text(self.config, encoding="utf-8")

    def _command(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            f"--web.external-url={self.url}/",
            "--cluster.listen-address=",
        ]

    def _environment(self) -> dict[str, str] | None:
        return {**os.environ, "TZ": "UTC"}

    def _ready(self, new_log: str) -> bool:
        return _answers(self.port, "/-/ready", 200)

    def post_alerts(self, alerts: list[dict[str, object]]) -> None:
        """``POST /api/v2/alerts``, as Prometheus (and vibewatch) post them.

        Raises:
            LocalServerError: It did not answer 200.
        """
        from vibewatch.alerts.alertmanager import post_alerts

        try:
            post_alerts(self.url, alerts)
        except (OSError, ValueError) as exc:
            raise LocalServerError(str(exc)) from exc
