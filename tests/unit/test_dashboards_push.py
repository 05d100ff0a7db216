"""``vibewatch dashboards push`` against a local HTTP server that answers as Grafana's API
does and checks every request: paths, the bearer token, bodies, folder, overwrite."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.config import read_secret_file
from vibewatch.dashboards.boards import DASHBOARDS, FOLDER_TITLE, FOLDER_UID
from vibewatch.dashboards.export import dashboard_json
from vibewatch.testing.servers import free_port

TOKEN = "glsa_test-token-123"


class FakeGrafana(ThreadingHTTPServer):
    """Folders and dashboards in memory, versioned as Grafana versions them; every request
    is recorded, and one without the bearer token is answered 401."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.folders: dict[str, str] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:
        pass

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
        if method == "POST" and self.path == "/api/folders":
            assert body is not None
            grafana.folders[body["uid"]] = body["title"]
            return self._answer(200, {"uid": body["uid"], "title": body["title"]})
        if method == "POST" and self.path == "/api/dashboards/db":
            assert body is not None
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


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def push(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["dashboards", "push", *args], env=env or {})


def test_push_takes_url_and_token_from_the_configuration(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    env = {"VIBEWATCH_GRAFANA_URL": grafana.url, "VIBEWATCH_GRAFANA_TOKEN_FILE": str(token)}
    result = push(env=env)
    assert result.exit_code == 0, result.output
    assert sorted(grafana.dashboards) == sorted(DASHBOARDS)


def test_push_creates_the_folder_then_saves_every_dashboard_in_it(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    result = push("--url", grafana.url, "--token-file", str(token_file), "--json")
    assert result.exit_code == 0, result.output
    assert [r[:2] for r in grafana.requests] == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
        *(("POST", "/api/dashboards/db") for _ in DASHBOARDS),
    ]
    assert grafana.folders == {FOLDER_UID: FOLDER_TITLE}
    for uid in DASHBOARDS:
        saved = grafana.dashboards[uid]
        assert saved["dashboard"] == dashboard_json(uid) and "id" not in saved["dashboard"]
        assert saved["folderUid"] == FOLDER_UID and saved["overwrite"] is True
        assert saved["message"].startswith("vibewatch ")
    shown = json.loads(result.output)["dashboards"]
    assert [(d["uid"], d["version"]) for d in shown] == [(uid, 1) for uid in DASHBOARDS]
    assert TOKEN not in result.output


def test_push_again_saves_new_versions_of_the_same_dashboards(grafana: FakeGrafana) -> None:
    env = {"VIBEWATCH_GRAFANA_TOKEN": TOKEN}
    assert push("--url", grafana.url, env=env).exit_code == 0
    grafana.requests.clear()
    result = push("--url", grafana.url + "/", "--message", "second", env=env)
    assert result.exit_code == 0, result.output
    assert ("POST", "/api/folders") not in [r[:2] for r in grafana.requests]
    assert sorted(grafana.dashboards) == sorted(DASHBOARDS)
    assert all(d["version"] == 2 and d["message"] == "second" for d in grafana.dashboards.values())
    assert "vibewatch-fleet: version 2 /d/vibewatch-fleet/x" in result.output


def test_push_with_a_wrong_token_fails_naming_grafana_not_the_token(
    grafana: FakeGrafana,
) -> None:
    result = push("--url", grafana.url, env={"VIBEWATCH_GRAFANA_TOKEN": "wrong-secret"})
    assert result.exit_code == 1
    assert f"Grafana at {grafana.url} refused to read the folder" in result.output
    assert "check the token" in result.output and "wrong-secret" not in result.output
    assert grafana.dashboards == {}


def test_push_to_nothing_listening_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = push("--url", url)
    assert result.exit_code == 1
    assert f"cannot reach Grafana at {url}" in result.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("grafana:3000", "must be an http:// or https:// URL with a host"),
        ("http://admin:pw@grafana:3000", "must not hold credentials"),
        ("http://grafana:3000/?token=x", "must not hold credentials"),
        ("http://grafana:70000", "port 70000 is out of range (1 to 65535)"),
        ("http://grafana:3000/#top", "must not have a query or a fragment"),
    ],
)
def test_push_refuses_urls_that_are_not_plain(url: str, message: str) -> None:
    result = push("--url", url)
    assert result.exit_code == 2
    assert message in result.output and "pw" not in result.output.replace(message, "")


def test_push_refuses_an_empty_or_missing_token_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = push("--url", "http://127.0.0.1:1", "--token-file", str(empty))
    assert result.exit_code == 2 and f"--token-file: {empty} is empty" in result.output
    spaced = tmp_path / "spaced"
    spaced.write_text(" glsa_token \n")  # read as VIBEWATCH_GRAFANA_TOKEN_FILE reads it
    assert read_secret_file(spaced) == " glsa_token "
    result = push("--url", "http://127.0.0.1:1", "--token-file", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "No such file" in result.output
