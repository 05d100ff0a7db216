"""vibewatch.dashboards: Grafana's substitution, the SDK's types, schema names, the files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.config import load_config
from vibewatch.dashboards.boards import DASHBOARDS, DATASOURCE_UID, EVENT_QUERIES
from vibewatch.dashboards.check import queries_of
from vibewatch.dashboards.export import dashboard_json, datasource_yaml, export
from vibewatch.dashboards.influxql import interval_text, register, render, targets_of
from vibewatch.errors import DataError
from vibewatch.influx import schema
from vibewatch.ota.rollout import DeviceState

REPO = Path(__file__).resolve().parents[2]


def queries(model: dict[str, Any]) -> list[str]:
    """Every InfluxQL query of a dashboard: variables, panel targets, annotations."""
    out = [v["query"] for v in model.get("templating", {}).get("list", [])]
    out += [t["query"] for p in model["panels"] for t in targets_of(p)]
    out += [a["target"]["query"] for a in model.get("annotations", {}).get("list", [])]
    return out


# ---- what Grafana substitutes ----


def test_render_formats_variables_as_regular_expressions() -> None:
    query = 'SELECT * FROM "r" WHERE "device" =~ /^$device$/ AND "s" =~ /^${site}$/ AND [[x]]'
    sent = render(
        query,
        variables={"device": ["pump.1"], "site": ["a", "b/c"], "x": ["(y)"]},
        start_ms=1_000,
        end_ms=2_000,
        interval_ms=10_000,
    )
    assert sent == (
        'SELECT * FROM "r" WHERE "device" =~ /^pump\\.1$/ AND "s" =~ /^(a|b\\/c)$/ AND \\(y\\)'
    )


def test_render_substitutes_the_time_range_and_interval_as_grafana_does() -> None:
    query = "SELECT 1 WHERE $timeFilter GROUP BY time($__interval) -- $interval $__interval_ms"
    sent = render(
        query,
        variables={},
        start_ms=1_700_000_000_000,
        end_ms=1_700_003_600_000,
        interval_ms=60_000,
    )
    assert sent == (
        "SELECT 1 WHERE time >= 1700000000000ms and time <= 1700003600000ms "
        "GROUP BY time(1m) -- 1m 60000"
    )


@pytest.mark.parametrize(
    ("variables", "start", "end", "message"),
    [
        ({}, 0, 1, r"variable \$device, which is not given"),
        ({"device": []}, 0, 1, r"variable \$device has no value"),
        ({"device": ["a"]}, 2, 1, "ends before it starts"),
    ],
)
def test_render_refuses_what_grafana_would_send_broken(
    variables: dict[str, list[str]], start: int, end: int, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        render(
            "SELECT 1 WHERE d =~ /^$device$/",
            variables=variables,
            start_ms=start,
            end_ms=end,
            interval_ms=1000,
        )


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1, "1ms"),
        (500, "500ms"),
        (1000, "1s"),
        (59_999, "59s"),
        (60_000, "1m"),
        (90_000, "1m"),
        (7_200_000, "2h"),
        (86_400_000, "1d"),
        (400 * 86_400_000, "1y"),
    ],
)
def test_interval_text_uses_the_largest_whole_unit(ms: int, text: str) -> None:
    assert interval_text(ms) == text


def test_interval_text_refuses_less_than_a_millisecond() -> None:
    with pytest.raises(DataError, match="interval 0 ms"):
        interval_text(0)


# ---- the dashboards ----


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_dashboard_round_trips_through_the_sdk_models(uid: str) -> None:
    """Decoded into the foundation SDK's typed models and encoded again, a dashboard is the
    same: every key is one the types know (the SDK drops others), every value decodes.
    Annotation targets (the SDK types them as the built-in store's) are checked apart."""
    plugins.register_default_plugins()
    register()
    model = dashboard_json(uid)
    for annotation in model.get("annotations", {}).get("list", []):
        target = annotation.pop("target")
        assert set(target) == {
            "query",
            "rawQuery",
            "fromAnnotations",
            "refId",
            "textColumn",
            "tagsColumn",
        }
        for column in [target["textColumn"], *target["tagsColumn"].split(",")]:
            assert f'"{column}"' in target["query"].split(" FROM ")[0], (column, target)
    again = json.loads(JSONEncoder().encode(Dashboard.from_json(json.loads(json.dumps(model)))))
    assert again == model


def _schema_names() -> set[str]:
    names = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str)}
    states = {schema.devices_field(state) for state in DeviceState}
    return names | set(schema.READING_FIELDS) | set(schema.STATUS_FIELDS) | states


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_name_a_query_uses_comes_from_the_schema(uid: str) -> None:
    known = _schema_names()
    for query in queries(dashboard_json(uid)):
        aliases = set(re.findall(r'AS "([^"]+)"', query))
        used = set(re.findall(r'"([^"]+)"', query)) - aliases
        assert used <= known, (used - known, query)
        for pattern in re.findall(r"/\^([a-z_]+)/", query):  # a regex of field names
            assert pattern.rstrip("_") in known, query


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_panel_queries_the_provisioned_datasource(uid: str) -> None:
    model = dashboard_json(uid)
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == DATASOURCE_UID for p in panels)
    assert all(targets_of(p) for p in panels)
    ids = [p["id"] for p in model["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    for p in panels:  # refIds unique within a panel
        refs = [t["refId"] for t in targets_of(p)]
        assert len(refs) == len(set(refs)), p["title"]


def test_device_detail_is_templated_by_device_with_events_and_model_changes() -> None:
    model = dashboard_json("vibewatch-device")
    (variable,) = model["templating"]["list"]
    assert variable["name"] == "device" and variable["multi"] is True
    assert variable["query"] == 'SHOW TAG VALUES FROM "reading" WITH KEY = "device"'
    names = [a["name"] for a in model["annotations"]["list"]]
    assert names == ["Anomaly events", "Model changes"]
    for query in queries(model)[1:]:
        assert '"device" =~ /^$device$/' in query, query


def test_rollouts_is_templated_by_rollout_and_the_fleet_shows_rollouts_and_alerts() -> None:
    model = dashboard_json("vibewatch-rollouts")
    (variable,) = model["templating"]["list"]
    assert variable["name"] == "rollout" and variable["multi"] and variable["includeAll"]
    assert variable["query"] == 'SHOW TAG VALUES FROM "ota_rollout" WITH KEY = "rollout"'
    titles = [p["title"] for p in model["panels"] if p["type"] != "row"]
    assert titles == [
        "Rollouts in progress",
        "Rollouts",
        "Devices per state",
        "Progress per wave",
        "Failures by reason",
        "Failed devices",
    ]
    in_progress, *selected = queries(model)[1:]
    assert "$rollout" not in in_progress  # every rollout counts
    for query in selected:
        assert '"rollout" =~ /^$rollout$/' in query, query
    waves = next(p for p in model["panels"] if p["title"] == "Progress per wave")
    (target,) = targets_of(waves)
    assert 'GROUP BY time($__interval), "rollout", "wave" fill(previous)' in target["query"]
    for state in DeviceState:  # every state, under its own name
        assert f'last("devices_{state}") AS "{state}"' in target["query"]
    fleet = dashboard_json("vibewatch-fleet")
    stats = {p["title"]: p for p in fleet["panels"] if p["type"] == "stat"}
    assert set(stats) >= {"Firing alerts", "Rollouts in progress"}
    assert targets_of(stats["Rollouts in progress"]) == targets_of(model["panels"][1])


def test_every_query_of_events_names_a_query_of_its_dashboard() -> None:
    assert set(EVENT_QUERIES) <= set(DASHBOARDS)
    for uid, wheres in EVENT_QUERIES.items():
        assert wheres <= {where for where, _ in queries_of(uid)}, uid
    # events: anomaly events and failed devices, never a gauge that is always written
    events = (schema.ANOMALY, schema.ROLLOUT_FAILURE)
    for uid, wheres in EVENT_QUERIES.items():
        queries = dict(queries_of(uid))
        for where in wheres:
            assert any(f'FROM "{name}"' in queries[where] for name in events), where


def test_the_committed_files_are_what_export_writes(tmp_path: Path) -> None:
    """``dashboards/`` holds what ``vibewatch dashboards export dashboards`` writes with the
    default configuration: regenerate it when the dashboards change."""
    written = export(tmp_path, load_config(None, {}).influx)
    for path in written:
        committed = REPO / "dashboards" / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `vibewatch dashboards export dashboards`"
        )


def test_datasource_of_influxdb_2_uses_the_bucket_and_a_token_from_the_environment() -> None:
    env = {
        "VIBEWATCH_INFLUX_API": "v2",
        "VIBEWATCH_INFLUX_URL": "https://influx.example:8086",
        "VIBEWATCH_INFLUX_ORG": "plant",
        "VIBEWATCH_INFLUX_BUCKET": "vibration",
        "VIBEWATCH_INFLUX_TOKEN": "s3cret-token",
    }
    text = datasource_yaml(load_config(None, env).influx)
    assert 'url: "https://influx.example:8086"' in text
    assert 'dbName: "vibration"' in text and "version: InfluxQL" in text
    assert "httpHeaderName1: Authorization" in text
    assert 'httpHeaderValue1: "Token $VIBEWATCH_INFLUX_TOKEN"' in text
    assert "s3cret-token" not in text


def test_datasource_of_influxdb_1_with_basic_auth_names_the_password_variable() -> None:
    env = {"VIBEWATCH_INFLUX_USERNAME": "grafana", "VIBEWATCH_INFLUX_PASSWORD": "pw-123"}
    text = datasource_yaml(load_config(None, env).influx)
    assert 'user: "grafana"' in text and "password: $VIBEWATCH_INFLUX_PASSWORD" in text
    assert "pw-123" not in text


def test_export_command_writes_the_files_and_lists_them(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "export", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    assert [Path(f).name for f in files] == [
        *(f"{uid}.json" for uid in DASHBOARDS),
        "vibewatch.yaml",
        "vibewatch.yaml",
    ]
    assert all(Path(f).is_file() for f in files)


def test_export_command_refuses_a_relative_dashboards_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dashboards", "export", str(tmp_path), "--dashboards-path", "dashboards"]
    )
    assert result.exit_code == 2
    assert "dashboards path 'dashboards' is not absolute" in result.output


def test_dashboard_json_names_the_known_dashboards_for_an_unknown_one() -> None:
    with pytest.raises(DataError, match="no dashboard 'nope'; there are vibewatch-fleet"):
        dashboard_json("nope")
