import json
from pathlib import Path

from typer.testing import CliRunner

from vibewatch.cli import app

runner = CliRunner()


def test_config_show_json_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "vibewatch.toml"
    config.write_text('[influx]\npassword = "hunter2"\n[mqtt]\nport = 1884\n')
    result = runner.invoke(app, ["config", "show", "--json", "--config", str(config)], env={})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["mqtt"]["port"] == 1884
    assert shown["influx"]["password"] == "********"
    assert "hunter2" not in result.output


def test_invalid_value_exits_2_naming_key_and_value(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "show"], env={"VIBEWATCH_INGEST_BATCH_MAX_POINTS": "-5"})
    assert result.exit_code == 2
    assert "ingest.batch_max_points" in result.output
    assert "-5" in result.output


def test_secret_in_environment_never_reaches_output() -> None:
    result = runner.invoke(
        app,
        ["config", "show"],
        env={"VIBEWATCH_INFLUX_TOKEN": "tok-SECRET", "VIBEWATCH_INFLUX_API": "v3"},
    )
    assert result.exit_code == 2
    assert "tok-SECRET" not in result.output


def test_ingest_help_explains_group() -> None:
    result = runner.invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    assert "--group" in result.output
    assert "VIBEWATCH_CONFIG" in result.output


def test_bad_group_name_is_refused() -> None:
    result = runner.invoke(app, ["ingest", "--group", "a/b"], env={})
    assert result.exit_code == 2
    assert "mqtt.group" in result.output
