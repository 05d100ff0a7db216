"""run_services: start order, readiness on $NOTIFY_SOCKET, signals, reverse stop order."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator

import pytest

from vibewatch.config import load_config
from vibewatch.errors import MqttError
from vibewatch.serve import SERVICES, build_services, notify, run_services


class Recorder:
    """A service that records what happened to it in a shared journal."""

    def __init__(
        self, name: str, journal: list[str], *, fail: Exception | None = None, ready: bool = True
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail = fail
        self.ready = ready
        self.clean = True

    def start(self, timeout: float = 30.0) -> None:
        self.journal.append(f"start {self.name}")
        if self.fail is not None:
            raise self.fail

    def stop(self, timeout: float = 30.0) -> bool:
        self.journal.append(f"stop {self.name}")
        return self.clean


@pytest.fixture
def notices(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"vibewatch-unit-{os.getpid()}"
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def test_services_start_in_order_report_ready_and_stop_in_reverse_on_sigterm(
    notices: socket.socket,
) -> None:
    journal: list[str] = []
    services = [Recorder("a", journal), Recorder("b", journal)]
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert run_services(services) == 0
    assert journal == ["start a", "start b", "stop b", "stop a"]
    assert notices.recv(100) == b"READY=1\nSTATUS=running a, b"
    assert notices.recv(100) == b"STOPPING=1"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored


def test_a_service_that_cannot_start_stops_those_before_it() -> None:
    journal: list[str] = []
    refused = MqttError("the broker refused", 0x87, "Not authorized")
    services = [
        Recorder("a", journal),
        Recorder("b", journal, fail=refused),
        Recorder("c", journal),
    ]
    assert run_services(services) == 1
    assert journal == ["start a", "start b", "stop b", "stop a"]


def test_readiness_waits_for_a_service_that_timed_out(notices: socket.socket) -> None:
    journal: list[str] = []
    late = Recorder("late", journal, fail=TimeoutError("no SUBACK yet"), ready=False)
    stop = threading.Event()
    threading.Timer(0.3, lambda: setattr(late, "ready", True)).start()
    threading.Timer(0.6, stop.set).start()
    unclean = Recorder("unclean", journal)
    unclean.clean = False
    assert run_services([late, unclean], stop=stop) == 1  # one did not stop clean
    assert notices.recv(100).startswith(b"READY=1")
    assert journal == ["start late", "start unclean", "stop unclean", "stop late"]


class Slow(Recorder):
    """A service whose start waits for readiness until it is stopped (a broker that is down)."""

    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__(name, journal, ready=False)
        self.released = threading.Event()
        self.starting = False

    def start(self, timeout: float = 30.0) -> None:
        self.journal.append(f"start {self.name}")
        self.starting = True
        self.released.wait(timeout)  # the session's wait for its SUBACK
        self.starting = False
        raise TimeoutError("no SUBACK")

    def stop(self, timeout: float = 30.0) -> bool:
        self.journal.append(f"stop {self.name}" + (" while it starts" if self.starting else ""))
        self.released.set()  # the session closes: the wait ends
        return True


def test_sigterm_while_a_service_waits_to_be_ready_stops_it_then(
    notices: socket.socket,
) -> None:
    journal: list[str] = []
    services = [Recorder("a", journal), Slow("slow", journal), Recorder("never", journal)]
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert run_services(services, start_timeout=120) == 0
    assert journal == ["start a", "start slow", "stop slow while it starts", "stop a"]
    assert notices.recv(100) == b"STOPPING=1"  # never ready


def test_notify_without_a_socket_sends_nothing() -> None:
    assert notify("READY=1", environ={}) is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": "@vibewatch-nobody-listens"}) is False


def test_build_services_names_the_unknown() -> None:
    config = load_config(environ={})
    assert list(SERVICES) == ["ingest", "ota", "alerts"]
    with pytest.raises(ValueError, match="unknown service 'pager'; the services are ingest, ota"):
        build_services(config, ["pager"])
