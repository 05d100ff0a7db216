"""Grouping and the notification schedule as Alertmanager 0.25 keeps it (the timings
were measured on the real binary), and label matchers."""

from __future__ import annotations

import json

import pytest

from vibewatch.alerts.dispatch import Dispatcher, Matcher, Route, parse_matcher
from vibewatch.alerts.model import Alert

S = 1_000_000_000
ROUTE = Route("oncall", ("alertname",), group_wait_s=1, group_interval_s=2, repeat_interval_s=5)


def anomaly(device: str, start_s: float = 0.0, end_s: float | None = None) -> Alert:
    ends = None if end_s is None else int(end_s * S)
    return Alert({"alertname": "DeviceAnomaly", "device": device}, {}, int(start_s * S), ends)


def run(dispatcher: Dispatcher, until_s: float, step_s: float = 0.5) -> list[tuple[float, dict]]:
    sent, t = [], 0.0
    while t <= until_s:
        for notice in dispatcher.due(int(t * S)):
            sent.append((t, json.loads(notice.body)))
        t += step_s
    return sent


def test_first_after_the_group_wait_then_a_repeat_at_the_first_look_past_the_interval() -> None:
    dispatcher = Dispatcher(ROUTE)
    dispatcher.put(anomaly("pump-01"), 0)
    # Alertmanager: sends at about 1 s, 7 s and 13 s (looks every 2 s, repeat after 5 s)
    assert [t for t, _ in run(dispatcher, 14)] == [1.0, 7.0, 13.0]


def test_fifty_alerts_within_the_group_wait_make_one_notification() -> None:
    dispatcher = Dispatcher(ROUTE)
    for n in range(50):
        dispatcher.put(anomaly(f"pump-{n:02d}", start_s=n / 100), int(n / 100 * S))
    sent = run(dispatcher, 4)
    assert len(sent) == 1 and len(sent[0][1]["alerts"]) == 50
    assert sent[0][1]["groupKey"] == '{}:{alertname="DeviceAnomaly"}'


def test_resolved_alerts_are_notified_once_then_the_group_resolves() -> None:
    dispatcher = Dispatcher(ROUTE)
    for device in ("a", "b", "c"):
        dispatcher.put(anomaly(device), 0)
    assert len(run(dispatcher, 1)) == 1  # at 1 s: three firing
    dispatcher.put(anomaly("a", end_s=1.5), int(1.5 * S))
    ((at, body),) = [(t, b) for t, b in run_from(dispatcher, 1.5, 3.5)]
    assert at == 3.0 and body["status"] == "firing"
    assert {a["labels"]["device"]: a["status"] for a in body["alerts"]} == {
        "a": "resolved", "b": "firing", "c": "firing",
    }  # fmt: skip
    for device in ("b", "c"):
        dispatcher.put(anomaly(device, end_s=4.0), int(4 * S))
    ((_, last),) = run_from(dispatcher, 4.0, 6.0)
    assert last["status"] == "resolved" and len(last["alerts"]) == 2  # "a" was sent already
    assert dispatcher.next_ns() is None  # the group is gone


def run_from(dispatcher: Dispatcher, start_s: float, until_s: float) -> list[tuple[float, dict]]:
    sent, t = [], start_s
    while t <= until_s:
        sent += [(t, json.loads(n.body)) for n in dispatcher.due(int(t * S))]
        t += 0.5
    return sent


def test_an_alert_that_started_long_ago_skips_the_group_wait() -> None:
    dispatcher = Dispatcher(Route("oncall", group_wait_s=30, group_interval_s=60))
    dispatcher.put(anomaly("pump-01", start_s=0), 100 * S)
    assert len(dispatcher.due(100 * S)) == 1


def test_muted_alerts_are_left_out_and_alone_send_nothing() -> None:
    silence = [parse_matcher('device=~"pump-0[12]"')]
    dispatcher = Dispatcher(
        ROUTE, muted=lambda alert, _others: all(m.matches(alert.labels) for m in silence)
    )
    dispatcher.put(anomaly("pump-01"), 0)
    assert run(dispatcher, 4) == []
    dispatcher.put(anomaly("pump-03"), 4 * S)
    sent = run_from(dispatcher, 4.0, 6.0)
    assert [[a["labels"]["device"] for a in body["alerts"]] for _, body in sent] == [["pump-03"]]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="page"', {"severity": "page"}, True),
        ("severity!=page", {"severity": "page"}, False),
        ('device=~"pump-.*"', {"device": "pump-7"}, True),
        ('device=~"pump"', {"device": "pump-7"}, False),  # anchored: the whole value
        ('device!~"pump-.*"', {"device": "fan-1"}, True),
        ('site=""', {}, True),  # an absent label is the empty string
        ('site=~".+"', {}, False),
    ],
)
def test_matchers_match_whole_values(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_bad_matchers_are_refused_with_the_text() -> None:
    with pytest.raises(ValueError, match="is not a matcher"):
        parse_matcher("no operator")
    with pytest.raises(ValueError, match="device=~"):
        parse_matcher("device=~(")
    assert str(Matcher("a", "=~", 'x"y')) == 'a=~"x\\"y"'


def test_a_dispatcher_restored_from_its_changes_goes_on_where_it_stopped() -> None:
    first = Dispatcher(ROUTE)
    saved: dict[str, dict | None] = {}
    first.put(anomaly("pump-01"), 0)
    first.put(anomaly("pump-02"), 0)
    first.due(int(1 * S))  # notified both
    saved.update(first.changes())
    assert first.changes() == {}  # nothing changed since
    restored = Dispatcher(ROUTE)
    restored.restore(s for s in saved.values() if s is not None)
    restored.put(anomaly("pump-01"), int(2 * S))  # a redelivered event: no news
    assert restored.due(int(3 * S)) == []
    (repeat,) = restored.due(int(7 * S))  # the repeat keeps its schedule
    assert len(json.loads(repeat.body)["alerts"]) == 2
    restored.put(anomaly("pump-01", 0, 8), int(8 * S))
    restored.put(anomaly("pump-02", 0, 8), int(8 * S))
    (resolved,) = restored.due(int(9 * S))
    assert json.loads(resolved.body)["status"] == "resolved"
    assert restored.changes() == {'{}:{alertname="DeviceAnomaly"}': None}  # group gone


def test_a_group_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a group"):
        Dispatcher(ROUTE).restore([{"labels": {}}])
