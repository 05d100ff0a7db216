"""The MQTT input and output of many simulated devices on one thread.

paho runs each client with a thread of its own and ``select()``, which cannot watch a
file descriptor above 1,023: a few hundred clients in one process stop connecting. A
:class:`Network` instead runs the clients given to it (:meth:`Network.attach`) through
paho's external-loop interface on one thread and one ``selectors`` selector (epoll on
Linux, no such limit), with one file descriptor per connection. Clients may publish and
connect from any thread: paho asks for write readiness through a callback, and the
network thread applies such changes itself, woken through a socket pair. Work that must
run on the network thread (closing a socket to cut a connection, a reconnection later)
goes through :meth:`Network.call` and :meth:`Network.call_later`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

__all__ = ["Network", "raise_open_files_limit"]

log = logging.getLogger(__name__)

#: How often every client's keepalive is looked after (``loop_misc``), in seconds.
MISC_INTERVAL_S = 1.0


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's limit of open files (``RLIMIT_NOFILE``) to ``wanted``, or to
    the hard limit when that is lower; processes it starts inherit it. A thousand
    simulated devices hold a thousand sockets, and the broker as many (the usual soft
    limit is 1,024).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Network:
    """One network thread for many paho clients (see the module documentation).

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str = "vibewatch-sim-network") -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full buffer already means "woken"
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._clients: set[paho.Client] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the network thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the network thread; the clients' sockets stay as they are."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def connections(self) -> int:
        """Sockets the network watches (connected clients)."""
        watched = self._selector.get_map()
        return 0 if watched is None else len(watched) - 1  # the wake-up socket aside; stopped: 0

    def attach(self, client: paho.Client) -> None:
        """Run ``client``'s input and output on this network from now on (before it
        connects)."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._written
        self.call(lambda: self._clients.add(client))

    def detach(self, client: paho.Client) -> None:
        """Stop looking after ``client``'s keepalive (its socket goes when it closes)."""
        self.call(lambda: self._clients.discard(client))

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the network thread, soon (at once when called from it)."""
        if threading.current_thread() is self._thread:
            fn()
            return
        with self._lock:
            self._calls.append(fn)
        self._wake()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the network thread after ``delay_s`` seconds."""
        when = time.monotonic() + delay_s
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._order), fn))
        self._wake()

    # ---- paho's external-loop callbacks (any thread) ----

    def _opened(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.call(lambda: self._watch(sock, client, selectors.EVENT_READ))

    def _closed(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.call(lambda: self._watch(sock, None, 0))

    def _want_write(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.call(lambda: self._watch(sock, client, selectors.EVENT_READ | selectors.EVENT_WRITE))

    def _written(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.call(lambda: self._watch(sock, client, selectors.EVENT_READ))

    # ---- the network thread ----

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (the buffer is full), or stopped
            self._wake_w.send(b"\0")

    def _watch(self, sock: Any, client: paho.Client | None, events: int) -> None:
        """Watch ``sock`` for ``events`` on behalf of ``client``; 0: no more."""
        try:
            if events == 0:
                self._selector.unregister(sock)
            elif self._registered(sock):
                self._selector.modify(sock, events, client)
            else:
                self._selector.register(sock, events, client)
        except (KeyError, ValueError, OSError):
            pass  # a socket closed meanwhile: nothing left to watch

    def _registered(self, sock: Any) -> bool:
        try:
            self._selector.get_key(sock)
        except (KeyError, ValueError):
            return False
        return True

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while True:
            with self._lock:
                stopping = self._stopping
                calls, self._calls = self._calls, []
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    calls.append(heapq.heappop(self._timers)[2])
                timeout = min(next_misc, self._timers[0][0] if self._timers else next_misc)
            for fn in calls:
                self._safely(fn)
            if stopping:  # after the calls asked for before the stop
                return
            for key, events in self._selector.select(max(0.0, timeout - time.monotonic())):
                client = key.data
                if client is None:
                    self._drain()
                    continue
                if events & selectors.EVENT_READ:
                    self._safely(client.loop_read)
                if events & selectors.EVENT_WRITE:
                    self._safely(client.loop_write)
            if time.monotonic() >= next_misc:
                for client in list(self._clients):
                    self._safely(client.loop_misc)
                next_misc = time.monotonic() + MISC_INTERVAL_S

    def _drain(self) -> None:
        with contextlib.suppress(OSError):  # nothing more to read
            while self._wake_r.recv(4096):
                pass

    @staticmethod
    def _safely(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # a client's error must not stop every other client's network
            log.exception("network: %r failed", fn)
