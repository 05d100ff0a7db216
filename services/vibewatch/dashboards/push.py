"""Upload the dashboards to a Grafana server through its HTTP API (``grafana-client``).

Idempotent: the folder :data:`~vibewatch.dashboards.boards.FOLDER_UID` is created when it
is missing, and each dashboard is saved under its own uid with ``overwrite``, so pushing
again makes a new version of the same dashboards, never copies. The token (a Grafana
service account token, sent as ``Authorization: Bearer``) comes from a file or the
environment, never the command line, and is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from vibewatch import __version__
from vibewatch.config import http_url_problem
from vibewatch.dashboards.boards import DASHBOARDS, FOLDER_TITLE, FOLDER_UID
from vibewatch.dashboards.export import dashboard_json
from vibewatch.errors import DataError, VibewatchError
from vibewatch.redact import mask_url

__all__ = ["GrafanaError", "Pushed", "push"]

#: Seconds each request to Grafana may take.
TIMEOUT_S = 10.0


class GrafanaError(VibewatchError):
    """Grafana refused a request or could not be reached."""


@dataclass(frozen=True)
class Pushed:
    """A dashboard Grafana saved.

    Attributes:
        uid: Its uid.
        version: The version Grafana gave it (one more on every push).
        url: Its path on the server.
    """

    uid: str
    version: int
    url: str


def _call(what: str, url: str, request: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one client request; Grafana's refusals and network errors become GrafanaError."""
    try:
        return request(*args, **kwargs)
    except GrafanaException as exc:
        status = getattr(exc, "status_code", None)
        hint = " (check the token and its role: Editor or Admin)" if status in (401, 403) else ""
        raise GrafanaError(f"Grafana at {url} refused to {what}: {exc}{hint}") from exc
    except OSError as exc:  # niquests' connection errors are OSErrors
        raise GrafanaError(f"cannot reach Grafana at {url} to {what}: {exc}") from exc


def push(url: str, token: str, *, message: str = "") -> list[Pushed]:
    """Save every dashboard into the vibewatch folder of the Grafana at ``url``.

    Args:
        url: Grafana's base URL (``https://grafana.example`` or ``http://host:3000/sub``).
        token: A service account token with the Editor role, or empty for none.
        message: The version message (default: the vibewatch version that pushed).

    Raises:
        DataError: ``url`` is not a plain http(s) URL.
        GrafanaError: Grafana refused a request or could not be reached.
    """
    problem = http_url_problem(url)
    if problem is not None:
        raise DataError(f"Grafana URL {mask_url(url)} {problem}")
    api = GrafanaApi.from_url(url.rstrip("/"), credential=token or None, timeout=TIMEOUT_S)
    try:
        _call("read the folder", url, api.folder.get_folder, FOLDER_UID)
    except GrafanaError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, GrafanaClientError) and cause.status_code == 404):
            raise
        _call("create the folder", url, api.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID)
    out = []
    for uid in DASHBOARDS:
        answer = _call(
            f"save dashboard {uid}",
            url,
            api.dashboard.update_dashboard,
            {
                "dashboard": dashboard_json(uid),
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": message or f"vibewatch {__version__}",
            },
        )
        out.append(Pushed(uid, int(answer.get("version", 0)), str(answer.get("url", ""))))
    return out
