"""The alert rules: which device messages start and resolve which alerts, and the
inhibition of an offline device's anomaly alert."""

from __future__ import annotations

import json

from vibewatch.alerts.dispatch import Dispatcher, Route
from vibewatch.alerts.model import Alert
from vibewatch.alerts.service import _inhibited, alerts_of
from vibewatch.protocol import AnomalyEvent, DeviceState, EventKind, Status

S = 1_000_000_000


def event(device: str, kind: EventKind, t_ms: int) -> AnomalyEvent:
    return AnomalyEvent(device, 7, t_ms, kind, 3.25, 1.5, "pump-ae", 4)


def test_anomaly_events_start_and_resolve_an_alert() -> None:
    (start,) = alerts_of(event("pump-1", EventKind.START, 1000), 0)
    assert start.labels == {"alertname": "DeviceAnomaly", "device": "pump-1", "severity": "warning"}
    assert start.firing and start.starts_at_ns == 1000 * 1_000_000
    assert start.annotations["summary"] == (
        "pump-1: anomaly score 3.25 above the threshold 1.5 of pump-ae v4"
    )
    (end,) = alerts_of(event("pump-1", EventKind.END, 5000), 0)
    assert end.fingerprint == start.fingerprint and end.ends_at_ns == 5000 * 1_000_000


def test_a_last_will_fires_device_offline_and_the_next_birth_resolves_it() -> None:
    (will,) = alerts_of(Status("pump-1", DeviceState.OFFLINE), 42 * S)
    assert will.labels["alertname"] == "DeviceOffline" and will.firing
    assert will.starts_at_ns == 42 * S  # a will carries no time: the time it arrived
    birth = Status("pump-1", DeviceState.ONLINE, t=50_000, firmware="fw", model_id="m",
                   model_version=1, model_sha256="0" * 64)  # fmt: skip
    (back,) = alerts_of(birth, 0)
    assert back.fingerprint == will.fingerprint and back.ends_at_ns == 50 * S


def test_an_offline_device_does_not_also_page_for_its_anomaly() -> None:
    offline = alerts_of(Status("pump-1", DeviceState.OFFLINE), 0)[0]
    sick = [alerts_of(event(d, EventKind.START, 0), 0)[0] for d in ("pump-1", "pump-2")]
    assert _inhibited(sick[0], [offline, *sick]) and not _inhibited(sick[1], [offline, *sick])
    assert not _inhibited(offline, [offline, *sick])
    resolved = Alert(offline.labels, offline.annotations, 0, 1)
    assert not _inhibited(sick[0], [resolved, *sick])  # only a firing alert inhibits
    everything: list[Alert] = [offline, *sick]
    dispatcher = Dispatcher(
        Route("hook", group_wait_s=0, group_interval_s=1),
        muted=lambda alert, _group: _inhibited(alert, everything),
    )
    for alert in sick:
        dispatcher.put(alert, 0)
    (notice,) = dispatcher.due(0)
    assert [a["labels"]["device"] for a in json.loads(notice.body)["alerts"]] == ["pump-2"]
