from pathlib import Path

import pytest

from vibewatch.ingest.service import SubscriptionRecord


def test_each_client_id_keeps_its_own_filters(tmp_path: Path) -> None:
    record = SubscriptionRecord(tmp_path / "home" / "mqtt-subscriptions.json")
    assert record.get("a") == []
    record.put("a", ["$share/g1/vw/v1/+/telemetry"])
    record.put("b", ["vw/v1/+/telemetry", "vw/v1/+/event"])
    again = SubscriptionRecord(tmp_path / "home" / "mqtt-subscriptions.json")
    assert again.get("a") == ["$share/g1/vw/v1/+/telemetry"]
    assert again.get("b") == ["vw/v1/+/telemetry", "vw/v1/+/event"]
    record.put("a", [])
    assert again.get("a") == []


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1, 2]", '{"a": "vw/v1/+/telemetry"}', '{"a": [1, "", "x\\u0000y", null]}'],
)
def test_a_damaged_record_counts_as_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mqtt-subscriptions.json"
    path.write_text(text)
    record = SubscriptionRecord(path)
    assert record.get("a") == []
    record.put("a", ["vw/v1/+/status"])  # and is replaced by the next good one
    assert record.get("a") == ["vw/v1/+/status"]


def test_an_unwritable_record_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    SubscriptionRecord(blocker / "mqtt-subscriptions.json").put("a", ["t"])
    assert "cannot record the MQTT subscriptions" in caplog.text
