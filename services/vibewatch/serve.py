"""Running the back end's services: start in order, report readiness, stop in reverse.

``vibewatch serve`` runs every back-end service in one process (the ingestion service,
the OTA controller and the alerts service), and each service's own command
(``vibewatch ingest``, ``vibewatch ota serve``, ``vibewatch alerts serve``) runs it alone;
all go through
:func:`run_services`, the one place that handles signals and the order of shutdown:

1. services start in the order given; one that cannot start (the broker refused it,
   a file it needs cannot be opened) stops those started before it, in reverse
   order, and the exit status is 1; one that is not ready in time (a broker that is
   down) is logged and keeps trying in the background;
2. once all are ready, readiness is reported to the service manager the way systemd's
   ``Type=notify`` units expect (``READY=1`` on ``$NOTIFY_SOCKET``; see
   :func:`notify`), which is also how tests and the demo know a process is ready;
3. SIGTERM or SIGINT (Ctrl-C) stops the services in reverse order, each flushing
   what it holds; the exit status is 0 when every one stopped clean. A signal while a
   service still waits to be ready (each start runs on a thread of its own) stops it
   at once, with those started before it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from vibewatch.config import Config
from vibewatch.errors import VibewatchError

__all__ = ["SERVICES", "Service", "build_services", "notify", "run_services"]

log = logging.getLogger(__name__)


class Service(Protocol):
    """A back-end service: started once, stopped once."""

    @property
    def name(self) -> str:
        """Short name, used in the log."""

    @property
    def ready(self) -> bool:
        """Whether the service does its job now (its broker granted its subscriptions)."""

    def start(self, timeout: float = 30.0) -> None:
        """Start, waiting up to ``timeout`` seconds for readiness.

        Raises:
            TimeoutError: Not ready within ``timeout``; the service keeps trying.
            VibewatchError: The service cannot run (the message says why).
            OSError: A file or socket it needs cannot be opened.
        """

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop within ``timeout`` seconds; whether everything was flushed clean."""


def _ingest(config: Config) -> Service:
    from vibewatch.ingest.service import IngestService  # imported here: keeps --help fast

    return IngestService.from_config(config)


def _ota(config: Config) -> Service:
    from vibewatch.ota.controller import OtaController

    return OtaController.from_config(config)


def _alerts(config: Config) -> Service:
    from vibewatch.alerts.service import AlertService

    return AlertService.from_config(config)


SERVICES: Mapping[str, Callable[[Config], Service]] = {
    "ingest": _ingest,
    "ota": _ota,
    "alerts": _alerts,
}
"""Every back-end service by name, in start order, each built from the configuration."""


def build_services(config: Config, names: Sequence[str] = ()) -> list[Service]:
    """The services ``vibewatch serve`` runs, built from ``config``.

    Args:
        config: Validated configuration.
        names: The services to run, in any order; all of them when empty.

    Raises:
        ValueError: A name that is not in :data:`SERVICES`.
    """
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise ValueError(
            f"unknown service {', '.join(map(repr, unknown))}; the services are "
            + ", ".join(SERVICES)
        )
    return [build(config) for name, build in SERVICES.items() if not names or name in names]


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Tell the service manager about a state change (systemd's ``sd_notify``).

    Sends ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``, newline separated) as
    one datagram to the Unix socket ``$NOTIFY_SOCKET`` names (a leading ``@`` names an
    abstract socket). Without ``$NOTIFY_SOCKET`` nothing is sent.

    Returns:
        Whether the state was sent.
    """
    env = os.environ if environ is None else environ
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify the service manager at NOTIFY_SOCKET=%s: %s", path, exc)
        return False
    return True


def _stop(services: Sequence[Service], timeout: float) -> bool:
    clean = True
    for service in reversed(services):
        log.info("stopping %s", service.name)
        try:
            clean = service.stop(timeout) and clean
        except Exception:  # one service's failure must not keep the others running
            log.exception("%s failed to stop", service.name)
            clean = False
    return clean


def _start(service: Service, timeout: float, stop: threading.Event) -> None:
    """``service.start(timeout)`` on a thread of its own, so that a signal while the service
    waits for readiness (a broker that is down) ends the wait at once: the caller then stops
    the service as it is, with the others. What the start raised is raised here."""
    raised: list[BaseException] = []

    def start() -> None:
        try:
            service.start(timeout)
        except BaseException as exc:  # handed to the caller's thread
            raised.append(exc)

    thread = threading.Thread(target=start, name=f"vibewatch-start-{service.name}", daemon=True)
    thread.start()
    while thread.is_alive() and not stop.wait(0.05):
        pass
    if raised:
        raise raised[0]


def run_services(
    services: Sequence[Service],
    *,
    stop: threading.Event | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
) -> int:
    """Run ``services`` until SIGTERM or SIGINT (or ``stop``); see the module documentation.

    Signal handlers are installed for the run (so this must be called on the main
    thread) and restored afterwards.

    Args:
        services: The services, in start order.
        stop: An event that ends the run like a signal does.
        start_timeout: Seconds each service may take to become ready.
        stop_timeout: Seconds each service may take to stop.

    Returns:
        The exit status: 0 when every service started and stopped clean, 1 otherwise.
    """
    stop = stop if stop is not None else threading.Event()
    handlers = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    started: list[Service] = []
    try:
        for service in services:
            started.append(service)  # a failed start may have begun: it is stopped too
            try:
                _start(service, start_timeout, stop)
            except TimeoutError as exc:
                log.warning("%s: %s", service.name, exc)
            except (VibewatchError, OSError) as exc:
                log.error("%s cannot start: %s", service.name, exc)
                _stop(started, stop_timeout)
                return 1
            if stop.is_set():
                break
        names = ", ".join(service.name for service in services)
        while not all(service.ready for service in started) and not stop.wait(0.1):
            pass  # a service that timed out keeps trying: ready once it succeeds
        if not stop.is_set():
            notify(f"READY=1\nSTATUS=running {names}")
            log.info("running %s; SIGTERM or Ctrl-C stops", names)
        stop.wait()
        notify("STOPPING=1")
        log.info("stopping: flushing what the services hold")
        return 0 if _stop(started, stop_timeout) else 1
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
