"""The simulator's network thread without a broker: calls and timers run on it, in order."""

from __future__ import annotations

import threading
import time

from vibewatch.sim.network import Network


def test_calls_before_the_start_neither_block_nor_get_lost() -> None:
    network = Network()
    ran: list[int] = []
    for i in range(5000):  # far more wake-ups than a socket buffer holds
        network.call(lambda i=i: ran.append(i))
    network.start()
    done = threading.Event()
    network.call(done.set)
    assert done.wait(5)
    network.stop()
    assert ran == list(range(5000))


def test_calls_later_run_on_the_network_thread_after_their_delay() -> None:
    network = Network(name="net")
    network.start()
    seen: list[tuple[str, float]] = []
    done = threading.Event()
    start = time.monotonic()

    def later() -> None:
        seen.append((threading.current_thread().name, time.monotonic() - start))
        done.set()

    network.call_later(0.2, later)
    assert done.wait(5)
    network.stop()
    ((name, after),) = seen
    assert name == "net" and after >= 0.2
    assert network.connections == 0
