"""A fake Grafana on loopback, for ``vibewatch dashboards push`` in tests.

A real HTTP server (``http.server``, one thread per request) on a free port that answers
the part of Grafana's HTTP API the push uses, as Grafana answers it: folders
(``GET /api/folders/UID``, ``POST /api/folders``) and dashboards
(``POST /api/dashboards/db``), kept in memory and versioned as Grafana versions them (a
save without ``overwrite`` of a dashboard that exists is refused with 412). Every request
is recorded; one without the bearer token is answered 401::

    with FakeGrafana("glsa_token") as grafana:
        ... vibewatch dashboards push --url grafana.url ...
        grafana.dashboards["vibewatch-fleet"]["version"]
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeGrafana"]


class FakeGrafana(ThreadingHTTPServer):
    """The fake (see the module documentation); it serves from :meth:`__enter__` to
    :meth:`__exit__`.

    Attributes:
        token: The service account token it accepts.
        folders: Folder titles by uid.
        dashboards: The last save of each dashboard by uid: the request's body and the
            ``version`` it got.
        requests: ``(method, path, JSON body or None)`` of every request, in order.
    """

    def __init__(self, token: str) -> None:
        """Listen on a free loopback port (nothing is answered before :meth:`__enter__`).

        Args:
            token: The token it accepts as ``Authorization: Bearer TOKEN``.
        """
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.folders: dict[str, str] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._answer(401, {"message": "Unauthorized"})
        grafana = self.server
        if method == "GET" and self.path.startswith("/api/folders/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid not in grafana.folders:
                return self._answer(404, {"message": "folder not found"})
            return self._answer(200, {"uid": uid, "title": grafana.folders[uid]})
        if method == "POST" and self.path == "/api/folders" and body is not None:
            grafana.folders[body["uid"]] = body["title"]
            return self._answer(200, {"uid": body["uid"], "title": body["title"]})
        if method == "POST" and self.path == "/api/dashboards/db" and body is not None:
            dashboard = body["dashboard"]
            if body.get("folderUid") not in grafana.folders:
                return self._answer(400, {"message": "folder not found"})
            uid = dashboard["uid"]
            version = grafana.dashboards.get(uid, {}).get("version", 0) + 1
            if uid in grafana.dashboards and not body.get("overwrite"):
                return self._answer(412, {"message": "version-mismatch"})
            grafana.dashboards[uid] = {**body, "version": version}
            return self._answer(
                200, {"uid": uid, "version": version, "status": "success", "url": f"/d/{uid}/x"}
            )
        return self._answer(404, {"message": "not found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
