"""A webhook receiver on loopback, for tests, benchmarks and the demo.

A real HTTP server (``http.server``, one thread per request) on a free port that
verifies each notification's Standard Webhooks signature with the secrets it knows
(answering 401 when none verifies), answers as the test scripts it (a status, a delay,
headers: a receiver that fails, hangs or asks to be called later) and keeps every
request, and the ids it accepted (a notification whose ``webhook-id`` it accepted
before is answered 200 and not accepted again, as a receiver that deduplicates does)::

    with LocalReceiver([secret]) as receiver:
        receiver.script([Reply(503)] * 5)       # then 200 for the rest
        ... receiver.url ...
        receiver.wait_accepted(1)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vibewatch.alerts.signing import SignatureError, verify

__all__ = ["LocalReceiver", "Received", "Reply"]


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request.

    Attributes:
        status: HTTP status.
        delay_s: Seconds to wait before answering (a hanging receiver).
        headers: Extra headers (``Retry-After``).
    """

    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it.

    Attributes:
        path: The request path.
        headers: Its headers (names lower-cased).
        body: Its body.
        at: When it arrived (``time.time()``).
        verified: Whether its signature verified with a secret the receiver knows.
        status: What the receiver answered.
    """

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool
    status: int


class LocalReceiver:
    """The receiver (see the module documentation)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        """Listen on a free loopback port.

        Args:
            secrets: The secrets it verifies signatures with (any one suffices); none:
                it takes unsigned notifications too (Alertmanager's).
        """
        self._secrets = list(secrets)
        self._lock = threading.Condition()
        self._script: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.accepted: dict[str, bytes] = {}  # webhook-id: body, in the order accepted
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._take(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, replies: Iterable[Reply]) -> None:
        """Answer the next requests so, one reply each; then 200 again."""
        with self._lock:
            self._script.extend(replies)

    def unscript(self) -> None:
        """Forget the replies not given yet: 200 from now on."""
        with self._lock:
            self._script.clear()

    def _take(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        now = time.time()
        verified = False
        for secret in self._secrets:
            try:
                verify(secret, headers, body, now)
            except SignatureError:
                continue
            verified = True
            break
        with self._lock:
            reply = self._script.popleft() if self._script else Reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        status = reply.status if verified or not self._secrets else 401
        with self._lock:
            self.requests.append(Received(handler.path, headers, body, now, verified, status))
            msg_id = headers.get("webhook-id", "")
            if 200 <= status < 300 and msg_id not in self.accepted:
                self.accepted[msg_id] = body
            self._lock.notify_all()
        try:
            handler.send_response(status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok" if 200 <= status < 300 else b"no")
        except OSError:
            pass  # the sender gave up waiting (its timeout): nothing to answer to

    def wait_accepted(self, count: int, timeout: float = 30.0) -> dict[str, bytes]:
        """Wait until ``count`` notifications were accepted; returns them.

        Raises:
            TimeoutError: Fewer were accepted within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.accepted) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.accepted)} of {count} notifications accepted; "
                        f"{len(self.requests)} requests"
                    )
                self._lock.wait(left)
            return dict(self.accepted)

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
