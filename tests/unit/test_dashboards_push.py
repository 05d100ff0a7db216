"""``vibewatch dashboards push`` against a local HTTP server that answers as Grafana's API
does (:class:`~vibewatch.testing.grafana.FakeGrafana`), and every request it got: paths,
the bearer token, bodies, folder, overwrite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.config import read_secret_file
from vibewatch.dashboards.boards import DASHBOARDS, FOLDER_TITLE, FOLDER_UID
from vibewatch.dashboards.export import dashboard_json
from vibewatch.testing.grafana import FakeGrafana
from vibewatch.testing.servers import free_port

TOKEN = "glsa_test-token-123"


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(TOKEN) as server:
        yield server


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
