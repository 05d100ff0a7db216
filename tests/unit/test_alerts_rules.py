"""The alert rules: which messages and looks start and resolve which alerts, once each;
their configuration; and inhibition."""

from __future__ import annotations

import json

import pytest

from vibewatch.alerts.dispatch import Dispatcher, Route
from vibewatch.alerts.rules import (
    DEFAULT_RULES,
    IngestReport,
    RolloutRecord,
    RuleEngine,
    RuleKind,
    parse_rules,
)
from vibewatch.protocol import AnomalyEvent, DeviceState, EventKind, Reading, Status, Telemetry

S = 1_000_000_000
T0 = 1_800_000_000  # seconds since the epoch


def event(device: str, kind: EventKind, t_ms: int) -> AnomalyEvent:
    return AnomalyEvent(device, 7, t_ms, kind, 3.25, 1.5, "pump-ae", 4)


def engine(tables: dict[str, object] | None = None) -> RuleEngine:
    return RuleEngine(parse_rules(tables or {}), threshold_of=lambda _m, _v: 2.0)


def test_anomaly_events_fire_once_and_resolve_once() -> None:
    rules = engine()
    (start,) = rules.message(event("pump-1", EventKind.START, 1000), 0)
    assert start.labels == {"alertname": "DeviceAnomaly", "device": "pump-1", "severity": "warning"}
    assert start.firing and start.starts_at_ns == 1000 * 1_000_000
    assert start.annotations["summary"] == (
        "pump-1: anomaly score 3.25 above the threshold 1.5 of pump-ae v4"
    )
    assert rules.message(event("pump-1", EventKind.START, 2000), 0) == []  # fires once
    (end,) = rules.message(event("pump-1", EventKind.END, 5000), 0)
    assert end.fingerprint == start.fingerprint and end.ends_at_ns == 5000 * 1_000_000
    assert end.annotations == start.annotations and end.starts_at_ns == start.starts_at_ns
    assert rules.message(event("pump-1", EventKind.END, 6000), 0) == []  # resolves once


def test_a_last_will_fires_device_offline_and_the_next_birth_resolves_it() -> None:
    rules = engine()
    (will,) = rules.message(Status("pump-1", DeviceState.OFFLINE), 42 * S)
    assert will.labels["alertname"] == "DeviceOffline" and will.firing
    assert will.starts_at_ns == 42 * S  # a will carries no time: the time it arrived
    assert will.annotations["summary"] == "pump-1 is offline (its connection dropped)"
    birth = Status("pump-1", DeviceState.ONLINE, t=50_000, firmware="fw", model_id="m",
                   model_version=1, model_sha256="0" * 64)  # fmt: skip
    (back,) = rules.message(birth, 0)
    assert back.fingerprint == will.fingerprint and back.ends_at_ns == 50 * S


def test_a_device_silent_for_longer_than_silent_for_is_offline_until_it_speaks() -> None:
    rules = engine({"DeviceOffline": {"silent_for": 60}})
    rules.restore([], ["pump-1", "pump-2"], T0 * S)  # known before a restart
    assert rules.message(telemetry("pump-2", [0.1], T0 * 1000), (T0 + 50) * S) == []
    (silent,) = rules.tick((T0 + 61) * S)
    assert silent.labels["device"] == "pump-1"
    assert silent.annotations["summary"] == "pump-1 is offline (nothing from it for 60 s)"
    assert rules.tick((T0 + 62) * S) == []
    (quiet,) = rules.tick((T0 + 111) * S)  # pump-2's turn
    assert quiet.labels["device"] == "pump-2"
    (back,) = rules.message(telemetry("pump-1", [0.1], T0 * 1000), (T0 + 120) * S)
    assert back.labels["device"] == "pump-1" and not back.firing


def test_silent_for_zero_watches_only_the_last_will() -> None:
    rules = engine({"DeviceOffline": {"silent_for": 0}})
    rules.restore([], ["pump-1"], 0)
    assert rules.tick(10**6 * S) == []
    no_telemetry = engine({"DeviceOffline": {"silent_for": 0}, "AnomalyScoreSustained": {
        "enabled": False}})  # fmt: skip
    assert not no_telemetry.needs_telemetry and engine().needs_telemetry
    assert engine().watches(RuleKind.INGESTION)
    assert not engine({"IngestionTrouble": {"enabled": False}}).watches(RuleKind.INGESTION)


def telemetry(device: str, scores: list[float], t0_ms: int, step_ms: int = 1000) -> Telemetry:
    return Telemetry(
        device,
        tuple(Reading(i, t0_ms + i * step_ms, s, 1.0, 2.0, 2.0, 3.0) for i, s in enumerate(scores)),
    )


def test_a_sustained_high_score_fires_and_resolves_when_the_share_falls() -> None:
    rules = engine({"AnomalyScoreSustained": {"factor": 2.0, "share": 0.5, "span": 20,
                                              "min_windows": 10}})  # fmt: skip
    status = Status("pump-1", DeviceState.ONLINE, t=T0 * 1000, firmware="fw", model_id="m",
                    model_version=1, model_sha256="0" * 64)  # fmt: skip
    rules.message(status, T0 * S)  # threshold 2.0 from the registry: the limit is 4.0
    assert rules.message(telemetry("pump-1", [5.0] * 9, T0 * 1000), T0 * S) == []  # 9 < 10
    (fired,) = rules.message(telemetry("pump-1", [1.0, 5.0], T0 * 1000 + 9000), T0 * S)
    assert fired.labels == {"alertname": "AnomalyScoreSustained", "device": "pump-1",
                            "severity": "critical"}  # fmt: skip
    assert fired.annotations["summary"] == (
        "pump-1: 91% of its last 11 windows scored above 2 x its threshold 2"
    )
    assert rules.message(telemetry("pump-1", [5.0] * 5, T0 * 1000 + 11_000), T0 * S) == []
    # 20 s later only low scores are in the span: resolved
    (resolved,) = rules.message(telemetry("pump-1", [1.0] * 12, T0 * 1000 + 30_000), T0 * S)
    assert resolved.fingerprint == fired.fingerprint and not resolved.firing


def test_an_anomaly_event_tells_the_threshold_and_silence_resolves_a_sustained_alert() -> None:
    rules = RuleEngine(parse_rules({"AnomalyScoreSustained": {"min_windows": 2}}))
    assert rules.message(telemetry("pump-1", [9.0] * 5, T0 * 1000), T0 * S) == []  # unknown
    rules.message(event("pump-1", EventKind.START, T0 * 1000), T0 * S)  # threshold 1.5
    (fired,) = rules.message(telemetry("pump-1", [9.0] * 5, T0 * 1000 + 5000), T0 * S)
    assert fired.labels["alertname"] == "AnomalyScoreSustained"
    (gone,) = [a for a in rules.tick((T0 + 601) * S) if a.labels["alertname"] == fired.labels[
        "alertname"]]  # fmt: skip
    assert not gone.firing


def record(number: int, phase: str, model: str = "pump-ae") -> RolloutRecord:
    return RolloutRecord(f"ro-{number}", number, model, number + 1, phase, "guard: 3 events", T0)


def test_an_aborted_rollout_fires_until_a_later_rollout_of_its_model_starts() -> None:
    rules = engine()
    (aborted,) = rules.tick(T0 * S, [record(1, "completed"), record(2, "aborted"),
                                     record(3, "aborted", "fan-ae")])[:1]  # fmt: skip
    assert aborted.labels == {"alertname": "RolloutAborted", "rollout": "ro-2",
                              "model": "pump-ae", "severity": "critical"}  # fmt: skip
    assert aborted.annotations["summary"] == "rollout ro-2 of pump-ae v3 aborted: guard: 3 events"
    assert aborted.starts_at_ns == T0 * S
    assert rules.tick(T0 * S, [record(2, "aborted"), record(3, "aborted", "fan-ae")]) == []
    (resolved,) = rules.tick(T0 * S, [record(2, "aborted"), record(3, "aborted", "fan-ae"),
                                      record(4, "running")])  # fmt: skip
    assert resolved.labels["rollout"] == "ro-2" and not resolved.firing


def report(at: float, messages: int, rejected: int, spool: int = 0) -> IngestReport:
    return IngestReport("ingest-1", at, 10.0, messages, rejected, spool)


def test_ingestion_trouble_from_the_reject_rate_or_the_spool() -> None:
    rules = engine()
    assert rules.tick(T0 * S, ingest=[report(T0, 1000, 10)]) == []  # nothing to compare yet
    (bad,) = rules.tick((T0 + 10) * S, ingest=[report(T0 + 10, 2000, 110)])
    assert bad.labels == {"alertname": "IngestionTrouble", "instance": "ingest-1",
                          "severity": "critical"}  # fmt: skip
    assert bad.annotations["summary"] == "ingest ingest-1: 10.0% of 1000 messages rejected"
    assert rules.tick((T0 + 15) * S, ingest=[report(T0 + 10, 2000, 110)]) == []  # no news
    (good,) = rules.tick((T0 + 20) * S, ingest=[report(T0 + 20, 3000, 111)])
    assert not good.firing
    (spool,) = rules.tick((T0 + 30) * S, ingest=[report(T0 + 30, 3050, 111, 20_000)])
    assert spool.annotations["summary"] == "ingest ingest-1: 20000 records waiting in its spool"
    (stopped,) = rules.tick((T0 + 100) * S, ingest=[report(T0 + 30, 3050, 111, 20_000)])
    assert not stopped.firing  # its reports stopped: not this rule's to say


def test_an_offline_device_does_not_also_page_for_its_anomaly() -> None:
    rules = engine()
    sick = [rules.message(event(d, EventKind.START, 0), 0)[0] for d in ("pump-1", "pump-2")]
    rules.message(Status("pump-1", DeviceState.OFFLINE), 0)
    assert rules.muted(sick[0]) and not rules.muted(sick[1])
    dispatcher = Dispatcher(
        Route("hook", group_wait_s=0, group_interval_s=1),
        muted=lambda alert, _group: rules.muted(alert),
    )
    for alert in sick:
        dispatcher.put(alert, 0)
    (notice,) = dispatcher.due(0)
    assert [a["labels"]["device"] for a in json.loads(notice.body)["alerts"]] == ["pump-2"]
    rules.message(Status("pump-1", DeviceState.ONLINE, t=1), 0)
    assert not rules.muted(sick[0])  # only a firing alert inhibits


def test_rules_from_tables_change_defaults_and_add_rules() -> None:
    rules = {r.name: r for r in parse_rules({
        "DeviceAnomaly": {"labels": {"team": "pumps"},
                          "annotations": {"runbook_url": "https://wiki/{device}"}},
        "IngestionTrouble": {"enabled": False},
        "PumpOffline": {"kind": "offline", "silent_for": 300, "labels": {"severity": "page"}},
    })}  # fmt: skip
    assert set(rules) == {r.name for r in DEFAULT_RULES} - {"IngestionTrouble"} | {"PumpOffline"}
    anomaly = rules["DeviceAnomaly"]
    assert anomaly.labels == {"severity": "warning", "team": "pumps"}
    assert set(anomaly.annotations) == {"summary", "runbook_url"}
    assert anomaly.annotate({"device": "p1"})["runbook_url"] == "https://wiki/p1"
    assert rules["PumpOffline"].kind is RuleKind.OFFLINE
    assert rules["PumpOffline"].params == {"silent_for": 300}
    assert rules["PumpOffline"].annotations == {}


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"1bad": {}}, "rule name '1bad'"),
        ({"X": {}}, "rule X: kind is required"),
        ({"X": {"kind": "weather"}}, "kind 'weather' is not one of anomaly"),
        ({"DeviceOffline": {"silent_for": -1}}, "silent_for must be a number in [0,"),
        ({"DeviceOffline": {"factor": 2}}, "unknown key 'factor' for kind offline"),
        ({"AnomalyScoreSustained": {"min_windows": 2.5}}, "min_windows must be an integer"),
        ({"AnomalyScoreSustained": {"share": True}}, "share must be a number"),
        ({"DeviceAnomaly": {"labels": {"alertname": "x"}}}, "'alertname' cannot be a label"),
        ({"DeviceAnomaly": {"labels": {"a": 1}}}, "labels must be a table of strings"),
        (
            {"DeviceAnomaly": {"annotations": {"summary": "{rollout}"}}},
            "uses {rollout}; this kind knows device, model, score",
        ),
        ({"DeviceAnomaly": {"annotations": {"summary": "{oops"}}}, "annotation summary:"),
        ({"DeviceAnomaly": {"inhibited_by": ["Nope"]}}, "inhibited_by names no rule 'Nope'"),
        ({"DeviceAnomaly": {"enabled": "no"}}, "enabled must be true or false"),
    ],
)
def test_bad_rule_tables_are_refused_with_what_is_wrong(
    tables: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_rules(tables)
    assert message in str(caught.value)


def test_a_format_spec_that_does_not_fit_shows_the_value_plain() -> None:
    (rule,) = parse_rules({"X": {"kind": "offline", "annotations": {"s": "{device:.2f}!"}}})[-1:]
    assert rule.annotate({"device": "pump-1"}) == {"s": "pump-1!"}
