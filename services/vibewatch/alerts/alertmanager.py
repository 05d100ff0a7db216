"""Alerts to a Prometheus Alertmanager that a site already runs (``alerts.alertmanager_url``).

As Prometheus does it: ``POST /api/v2/alerts`` with a JSON array of alerts (labels,
annotations, ``startsAt``, ``endsAt``, ``generatorURL``); a firing alert is posted again
every :data:`RESEND_S` with ``endsAt`` four resends ahead (Alertmanager resolves an
alert it stops hearing of), a resolved one with its ``endsAt`` for
:data:`RESOLVED_RETENTION_S` (so that an Alertmanager that missed it learns it).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from vibewatch.alerts.model import Alert, format_time

__all__ = ["RESEND_S", "RESOLVED_RETENTION_S", "alert_json", "post_alerts"]

#: Seconds between two posts of a firing alert (Prometheus's ``--rules.alert.resend-delay``).
RESEND_S: Final = 60.0
#: Seconds a resolved alert is posted again (Prometheus's ``resolvedRetention``).
RESOLVED_RETENTION_S: Final = 900.0
_S: Final = 1_000_000_000


def alert_json(alert: Alert, now_ns: int) -> dict[str, object]:
    """An alert as ``/api/v2/alerts`` takes it; a firing one ends four resends from now."""
    ends = alert.ends_at_ns if alert.ends_at_ns is not None else now_ns + int(4 * RESEND_S * _S)
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": format_time(alert.starts_at_ns),
        "endsAt": format_time(ends),
        "generatorURL": alert.generator_url,
    }


def post_alerts(url: str, alerts: Sequence[dict[str, object]], timeout: float = 10.0) -> None:
    """``POST {url}/api/v2/alerts``.

    Raises:
        OSError: No answer (the message says why).
        ValueError: An answer other than 200 (the message holds it).
    """
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=timeout)
    path = parts.path.rstrip("/") + "/api/v2/alerts"
    try:
        conn.request(
            "POST", path, json.dumps(alerts).encode(), {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        answer = response.read(2000).decode("utf-8", "replace")
    except http.client.HTTPException as exc:
        raise OSError(f"Alertmanager at {parts.netloc}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise ValueError(f"Alertmanager at {parts.netloc} answered {response.status}: {answer}")
