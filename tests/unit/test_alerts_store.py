"""The alerts service's state in the state database: alerts, groups and notifications
saved together, the rollouts as the rules see them, and the ingest processes' reports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vibewatch.alerts.model import Alert
from vibewatch.alerts.outbox import Outbox
from vibewatch.alerts.store import RESOLVED_KEPT_S, AlertStore
from vibewatch.config import Config
from vibewatch.ingest.service import _report
from vibewatch.ota.rollout import RolloutPlan
from vibewatch.ota.store import RolloutStore
from vibewatch.state import open_state_db, service_reports


def test_a_step_is_saved_whole_or_not_at_all(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "state.db")
    store = AlertStore(db)
    firing = Alert({"alertname": "DeviceAnomaly", "device": "pump-1"}, {"summary": "s"}, 5)
    group = {"key": "{}:{}", "alerts": [firing.as_dict()]}
    (sent,) = store.save([firing], {"oncall": {"{}:{}": group}}, [("oncall", b"{}")], 100.0)
    assert sent[0] == "oncall" and Outbox(db).notifications()[0].id == sent[1]
    assert [s.alert for s in store.alerts()] == [firing]
    assert store.groups("oncall") == [group] and store.groups("other") == []
    with pytest.raises(sqlite3.IntegrityError):  # the group's deletion is undone with it
        store.save([], {"oncall": {"{}:{}": None}}, [("oncall", b"{}")], "x")  # type: ignore[arg-type]
    assert store.groups("oncall") == [group] and len(Outbox(db).notifications()) == 1

    resolved = Alert(firing.labels, firing.annotations, 5, 9)
    store.save([resolved], {"oncall": {"{}:{}": None}}, [], 200.0)
    assert store.alerts() == [] and store.groups("oncall") == []
    assert [s.alert for s in store.alerts(firing_only=False)] == [resolved]
    assert store.forget_resolved(200.0 + RESOLVED_KEPT_S - 1) == 0
    assert store.forget_resolved(200.0 + RESOLVED_KEPT_S + 1) == 1
    db.close()


def test_rollouts_and_devices_as_the_rules_see_them(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "state.db")
    rollouts = RolloutStore(db)
    rollout = rollouts.create(RolloutPlan("pump-ae", 3, ("pump-1", "pump-2")))
    rollout.abort("guard: 4 events", 0.0)
    rollouts.save(rollout)
    (record,) = AlertStore(db).rollouts()
    assert (record.rollout_id, record.model_id, record.version) == (
        rollout.rollout_id,
        "pump-ae",
        3,
    )
    assert (record.phase, record.reason) == ("aborted", "guard: 4 events")
    assert record.updated_s > 1.7e9
    db.close()


def test_the_ingest_process_keeps_its_report(tmp_path: Path) -> None:
    config = Config(data_home=tmp_path)
    _report(config, {"messages_in": 10, "rejected": 2, "spool_records": 0}, 1000.0)
    _report(config, {"messages_in": 20, "rejected": 2, "spool_records": 1}, 1010.0)
    db = open_state_db(config.state_db)
    (report,) = service_reports(db, "ingest")
    assert (report.instance, report.at_s) == (config.mqtt.client_id, 1010.0)
    assert report.figures == {"messages_in": 20, "rejected": 2, "spool_records": 1}
    assert report.interval_s == config.ingest.stats_interval
    db.close()
