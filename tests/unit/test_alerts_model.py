"""Fingerprints, group keys and webhook bodies as Alertmanager 0.25 makes them: the
expected values were produced by the real ``prometheus-alertmanager`` 0.25.0 binary."""

from __future__ import annotations

from vibewatch.alerts.model import (
    Alert,
    fingerprint,
    format_time,
    group_key,
    labels_text,
    webhook_body,
)


def test_fingerprints_are_alertmanagers() -> None:
    disk = {"alertname": "DiskFull", "device": "sda", "instance": "h1", "job": "node"}
    assert fingerprint(disk) == "3b12a65bfc5b8299"
    assert fingerprint(disk | {"instance": "h2"}) == "c557befd14794960"
    assert fingerprint({"alertname": "DiskFull", "device": "sda", "zz": "1"}) == "f1deb9d90a949811"
    assert fingerprint({"alertname": "R"}) == "d28cefc389ad90e0"
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint(dict(reversed(list(disk.items())))) == "3b12a65bfc5b8299"  # any order


def test_group_keys_sort_the_printed_labels_and_quote_as_go_does() -> None:
    assert group_key({"alertname": "DiskFull", "device": "sda"}) == (
        '{}:{alertname="DiskFull", device="sda"}'
    )
    assert group_key({}) == "{}:{}"
    # whole `name="value"` strings are sorted: a1="2" before a="1"
    labels = {"a": "1", "a1": "2", "a_b": "3", "aB": "4", "alertname": "Q", "grp": "all"}
    labels["v"] = 'q"uo\\te\nnl\ttab é \a \u00a0'
    assert labels_text(labels) == (
        '{a1="2", a="1", aB="4", a_b="3", alertname="Q", grp="all", '
        'v="q\\"uo\\\\te\\nnl\\ttab é \\a \\u00a0"}'
    )
    assert group_key({"alertname": "P"}, route_key='{}/{severity="page"}') == (
        '{}/{severity="page"}:{alertname="P"}'
    )


def test_the_body_of_a_firing_alert_is_byte_for_byte_alertmanagers() -> None:
    alert = Alert({"alertname": "R"}, starts_at_ns=1796422777_223595604)
    body = webhook_body(
        receiver="hook",
        alerts=[alert],
        group_labels={"alertname": "R"},
        group_key=group_key({"alertname": "R"}),
        external_url="http://vm:19099",
    )
    assert body == (
        b'{"receiver":"hook","status":"firing","alerts":[{"status":"firing","labels":'
        b'{"alertname":"R"},"annotations":{},"startsAt":"2026-12-04T22:19:37.223595604Z",'
        b'"endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"d28cefc389ad90e0"}],'
        b'"groupLabels":{"alertname":"R"},"commonLabels":{"alertname":"R"},'
        b'"commonAnnotations":{},"externalURL":"http://vm:19099","version":"4",'
        b'"groupKey":"{}:{alertname=\\"R\\"}","truncatedAlerts":0}\n'
    )


def test_alerts_are_ordered_cut_and_summed_up_as_alertmanager_does() -> None:
    i3 = Alert({"alertname": "X", "instance": "i3"}, {"summary": "s", "note": "3"}, 0)
    i1 = Alert({"alertname": "X", "instance": "i1"}, {"summary": "s", "note": "1"}, 0, 5)
    i2 = Alert({"alertname": "X", "instance": "i2", "job": "j"}, {"summary": "s"}, 0, 5)
    body = webhook_body(
        receiver="hook.re",
        alerts=[i3, i1, i2],
        group_labels={"alertname": "X"},
        group_key=group_key({"alertname": "X"}),
        external_url="http://127.0.0.1:9093/",
        max_alerts=2,
    ).decode()
    assert body.index('"i2"') < body.index('"i1"') and '"i3"' not in body  # job first
    assert '"truncatedAlerts":1' in body and '"receiver":"hook\\\\.re"' in body
    assert '"status":"resolved","alerts"' in body  # both sent ones resolved
    assert '"commonLabels":{"alertname":"X"}' in body
    assert '"commonAnnotations":{"summary":"s"}' in body
    assert '"externalURL":"http://127.0.0.1:9093"' in body
    assert '"endsAt":"1970-01-01T00:00:00.000000005Z"' in body


def test_strings_are_escaped_as_go_escapes_them() -> None:
    alert = Alert({"alertname": "E"}, {"text": "b\bf\fr\rdel\x7f\u2029<a&b>"}, 0)
    body = webhook_body(
        receiver="r", alerts=[alert], group_labels={}, group_key="{}:{}", external_url=""
    )
    assert b'"text":"b\\u0008f\\u000cr\\rdel\x7f\\u2029\\u003ca\\u0026b\\u003e"' in body


def test_times_drop_trailing_zeros() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_time(1796422777_223595604) == "2026-12-04T22:19:37.223595604Z"
