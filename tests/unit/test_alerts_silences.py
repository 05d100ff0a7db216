"""Silences in the state database, and `vibewatch alerts silence | silences | expire`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibewatch.alerts.dispatch import parse_matcher
from vibewatch.alerts.silences import SilenceError, SilenceStore
from vibewatch.cli import app
from vibewatch.state import open_state_db

runner = CliRunner()


def test_a_silence_mutes_what_matches_all_its_matchers_while_it_lasts(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "state.db")
    store = SilenceStore(db)
    matchers = [parse_matcher('device=~"pump-0[12]"'), parse_matcher("alertname=DeviceAnomaly")]
    silence = store.add(matchers, 3600, "bearing swap", "ana", 1000.0)
    assert silence.id.startswith("sil_") and silence.ends_s == 4600.0
    assert silence.mutes({"alertname": "DeviceAnomaly", "device": "pump-02"})
    assert not silence.mutes({"alertname": "DeviceOffline", "device": "pump-02"})
    assert not silence.mutes({"alertname": "DeviceAnomaly", "device": "pump-03"})
    assert [s.id for s in store.silences(active_at=2000.0)] == [silence.id]
    assert store.silences(active_at=5000.0) == []
    store.expire(silence.id, 2000.0)
    assert store.silences(active_at=2001.0) == [] and len(store.silences()) == 1
    with pytest.raises(SilenceError, match="has ended already"):
        store.expire(silence.id, 2002.0)
    with pytest.raises(SilenceError, match="no silence 'sil_nope'"):
        store.expire("sil_nope", 2002.0)
    with pytest.raises(SilenceError, match="a matcher that does not match every alert"):
        store.add([parse_matcher('site=""')], 60, "everything", "ana", 0.0)
    with pytest.raises(SilenceError, match="duration must be > 0"):
        store.add(matchers, 0, "nothing", "ana", 0.0)
    db.close()


def test_the_commands_make_list_and_expire_silences(tmp_path: Path) -> None:
    env = {"VIBEWATCH_DATA_HOME": str(tmp_path)}
    made = runner.invoke(
        app,
        ["alerts", "silence", "--matcher", 'device="pump-01"', "--duration", "2h",
         "--comment", "maintenance", "--by", "ana", "--json"],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    silence = json.loads(made.output)
    assert silence["matchers"] == ['device="pump-01"'] and silence["comment"] == "maintenance"
    listed = json.loads(runner.invoke(app, ["alerts", "silences", "--json"], env=env).output)
    assert [s["id"] for s in listed] == [silence["id"]]
    assert runner.invoke(app, ["alerts", "expire", silence["id"]], env=env).exit_code == 0
    assert json.loads(runner.invoke(app, ["alerts", "silences", "--json"], env=env).output) == []
    every = runner.invoke(app, ["alerts", "silences", "--all"], env=env).output
    assert silence["id"] in every and "ana: maintenance" in every
    bad = runner.invoke(
        app, ["alerts", "silence", "--matcher", "device~pump", "--duration", "1h",
              "--comment", "x"], env=env,
    )  # fmt: skip
    assert bad.exit_code == 2 and "'device~pump' is not a matcher" in bad.output
    long = runner.invoke(
        app, ["alerts", "silence", "--matcher", "device=a", "--duration", "soon",
              "--comment", "x"], env=env,
    )  # fmt: skip
    assert long.exit_code == 2 and "--duration must be a duration like 90s" in long.output
