"""Alerts as InfluxDB points: each change of an alert, and the firing ones per rule."""

from __future__ import annotations

from vibewatch.alerts.model import Alert
from vibewatch.alerts.points import alert_point, firing_points
from vibewatch.alerts.rules import DEFAULT_RULES, RuleEngine, parse_rules
from vibewatch.influx.lineprotocol import encode_point
from vibewatch.protocol import AnomalyEvent, EventKind

MS = 1_000_000


def event(device: str, kind: EventKind, t_ms: int) -> AnomalyEvent:
    return AnomalyEvent(device, 7, t_ms, kind, 3.25, 1.5, "pump-ae", 4)


def test_an_alert_that_fires_then_resolves_is_two_points_of_its_series() -> None:
    engine = RuleEngine(DEFAULT_RULES)
    (fired,) = engine.message(event("pump-1", EventKind.START, 1000), 0)
    (resolved,) = engine.message(event("pump-1", EventKind.END, 4000), 0)
    first, second = alert_point(fired, site="north"), alert_point(resolved, site="north")
    tags = (("alertname", "DeviceAnomaly"), ("device", "pump-1"), ("severity", "warning"),
            ("site", "north"))  # fmt: skip
    assert first.measurement == second.measurement == "alert"
    assert first.tags == second.tags == tags
    assert dict(first.fields) == {
        "firing": True,
        "summary": "pump-1: anomaly score 3.25 above the threshold 1.5 of pump-ae v4",
    }
    assert first.time_ns == 1000 * MS  # when it started
    assert dict(second.fields)["firing"] is False and second.time_ns == 4000 * MS  # ended
    assert encode_point(first).startswith("alert,alertname=DeviceAnomaly,device=pump-1,")


def test_an_alert_without_a_device_is_tagged_with_its_subject_and_labels_made_fit() -> None:
    alert = Alert(
        {"alertname": "RolloutAborted", "rollout": "rollout-3", "model": "ae",
         "severity": "very\\bad\nindeed", "team": "x"},
        {},
        5 * MS,
    )  # fmt: skip
    point = alert_point(alert)
    assert dict(point.tags) == {
        "alertname": "RolloutAborted",
        "rollout": "rollout-3",
        "severity": "very bad indeed",
    }
    assert dict(point.fields) == {"firing": True, "summary": ""}
    encode_point(point)


def test_every_rule_counts_its_firing_alerts_zero_included() -> None:
    rules = parse_rules({"Custom": {"kind": "anomaly", "labels": {}}})
    engine = RuleEngine(rules)
    engine.message(event("pump-1", EventKind.START, 1000), 0)
    engine.message(event("pump-2", EventKind.START, 1000), 0)
    stale = Alert({"alertname": "Gone", "device": "pump-9", "severity": "info"}, {}, 0)
    points = firing_points(rules, [*engine.firing.values(), stale], time_ms=7000)
    counts = {dict(p.tags)["alertname"]: dict(p.fields)["alerts"] for p in points}
    assert counts == {
        "AnomalyScoreSustained": 0,
        "Custom": 2,
        "DeviceAnomaly": 2,
        "DeviceOffline": 0,
        "Gone": 1,  # a firing alert of a rule no longer configured
        "IngestionTrouble": 0,
        "RolloutAborted": 0,
    }
    by_name = {dict(p.tags)["alertname"]: p for p in points}
    assert by_name["DeviceAnomaly"].tags == (
        ("alertname", "DeviceAnomaly"),
        ("severity", "warning"),
    )
    assert by_name["Custom"].tags == (("alertname", "Custom"),)  # no severity label
    assert dict(by_name["Gone"].tags)["severity"] == "info"
    assert {p.measurement for p in points} == {"alerts_firing"}
    assert {p.time_ns for p in points} == {7000 * MS}
