"""The alerts benchmark's pure parts (``benchmarks/alerts.py``): the events it publishes,
the count of what the receiver got (lost, duplicated), the percentile, the bars and the
config file of the alerts process."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

from vibewatch.alerts.model import Alert, webhook_body
from vibewatch.config import load_config
from vibewatch.protocol import AnomalyEvent, EventKind, Kind, Limits, decode_message, parse_topic
from vibewatch.testing.webhooks import Received

from .benchmarks import load_benchmark

T0_NS = 1_760_000_000_000_000_000


bench = load_benchmark("alerts")


def test_the_events_are_anomaly_starts_in_the_wire_format() -> None:
    topic, payload = bench.anomaly_start("vw/v1/", "bench-tp-00007", 1007, 1_760_000_000_000)
    device, kind = parse_topic(topic, "vw/v1/")
    assert (device, kind) == ("bench-tp-00007", Kind.EVENT)
    event = decode_message(kind, device, payload, now_ms=1_760_000_000_000, limits=Limits())
    assert isinstance(event, AnomalyEvent)
    assert event.kind is EventKind.START and event.score > event.threshold
    assert (event.seq, event.t) == (1007, 1_760_000_000_000)
    assert bench.device_ids("out", 3) == ["bench-out-00000", "bench-out-00001", "bench-out-00002"]


def _alert(device: str, *, resolved: bool = False) -> Alert:
    labels = {"alertname": "DeviceAnomaly", "device": device, "severity": "warning"}
    return Alert(labels, {"summary": device}, T0_NS, T0_NS + 1 if resolved else None)


def _request(
    msg_id: str, alerts: list[Alert], status: int = 200, *, verified: bool = True, at: float = 0.0
) -> Received:
    body = webhook_body(
        receiver="bench",
        alerts=alerts,
        group_labels=dict(alerts[0].labels),
        group_key="{}:{}",
        external_url="",
    )
    headers = {"webhook-id": msg_id}
    return Received("/hook", headers, body, at, verified, status)


def test_lost_and_duplicated_count_by_alert_and_by_webhook_id() -> None:
    requests = [
        _request("msg_a", [_alert("a")], 503, at=1.0),  # the receiver is down
        _request("msg_a", [_alert("a")], at=2.0),  # the retry, accepted
        _request("msg_a", [_alert("a")], at=3.0),  # again: the receiver drops it (same id)
        _request("msg_b1", [_alert("b")], at=4.0),
        _request("msg_b2", [_alert("b")], at=5.0),  # b once more, by another id: a duplicate
        _request("msg_c", [_alert("c")], 503, at=6.0),  # c never accepted ...
        _request("msg_c2", [_alert("c", resolved=True)], at=7.0),  # ... resolved is not fired
        _request("msg_d", [_alert("d")], 401, verified=False, at=8.0),  # a bad signature
        _request("msg_x", [_alert("x"), _alert("e")], at=9.0),  # x was not fired
    ]
    delivery = bench.tally(["a", "b", "c", "d", "e"], requests)
    assert delivery.lost == ("c", "d")
    assert delivery.duplicated == 1
    assert delivery.redelivered == 1
    assert delivery.first_accepted == {"a": 2.0, "b": 4.0, "e": 9.0}
    assert (delivery.requests, delivery.refused, delivery.unverified) == (9, 3, 1)
    assert delivery.notifications == 5  # msg_a, msg_b1, msg_b2, msg_c2, msg_x
    assert delivery.unexpected == 1
    clean = bench.tally(["a"], requests[:3])
    assert clean.lost == () and clean.duplicated == 0


def test_firing_alerts_reads_fingerprint_and_device() -> None:
    body = webhook_body(
        receiver="bench",
        alerts=[_alert("a"), _alert("b", resolved=True)],
        group_labels={},
        group_key="{}:{}",
        external_url="",
    )
    assert bench.firing_alerts(body) == [(_alert("a").fingerprint, "a")]


def test_the_percentile_is_the_nearest_rank() -> None:
    assert bench.percentile([float(v) for v in range(100, 0, -1)], 0.99) == 99.0
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert bench.percentile([7.0], 0.99) == 7.0
    assert math.isnan(bench.percentile([], 0.99))


def test_the_bars() -> None:
    results = bench.Results(alerts_per_s=620.0, delivery_ms=[10.0] * 99 + [900.0])
    results.lost, results.duplicated = 0, 0
    assert [name for name, met, _ in results.bars() if not met] == []
    assert results.as_json()["bars_met"] is True
    assert results.as_json()["p99_delivery_ms"] == 10.0
    slow = dataclasses.replace(results, alerts_per_s=499.0, delivery_ms=[600.0])
    assert [name for name, met, _ in slow.bars() if not met] == [
        "alerts_per_s >= 500",
        "p99_delivery_ms <= 500",
    ]
    unmeasured = bench.Results(alerts_per_s=800.0, delivery_ms=[1.0])
    assert [name for name, met, _ in unmeasured.bars() if not met] == [
        "lost == 0",
        "duplicated == 0",
    ]
    duplicated = dataclasses.replace(results, duplicated=2)
    assert duplicated.as_json()["bars_met"] is False


def test_the_config_file_turns_grouping_off(tmp_path: Path) -> None:
    broker = SimpleNamespace(port=18830)
    receiver = SimpleNamespace(url="http://127.0.0.1:18080/hook")
    runs = bench.Bench(broker, tmp_path, group_interval_s=2.5)
    process = runs.alerts_process("latency", receiver)
    assert process.command == "alerts" and process.args[:2] == ("serve", "--config")
    assert not any(name.startswith("VIBEWATCH_") for name in process.env)
    config = load_config(Path(process.args[2]), environ={})
    assert (config.mqtt.port, config.mqtt.client_id) == (18830, "bench-alerts-latency")
    assert config.alerts.group_by == "..."
    assert (config.alerts.group_wait, config.alerts.group_interval) == (0.0, 2.5)
    (only,) = config.alerts.receivers
    assert only.url == receiver.url
    assert [s.reveal() for s in only.secrets] == [runs.secret]
    assert config.state_db == runs.state_db("latency")
