import json
import logging
import shutil
import signal
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import typer.main
from typer.testing import CliRunner

from vibewatch import __version__
from vibewatch.cli import app
from vibewatch.errors import SpoolError

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


# --- help texts --------------------------------------------------------------------


def _help(*args: str) -> str:
    """The rendered ``--help`` of a command, its table borders and line breaks collapsed."""
    result = runner.invoke(app, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.replace("│", " ").split())


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _command_paths(sub, (*path, name))
    return found


COMMANDS = _command_paths(typer.main.get_command(app))


def test_every_command_is_walked() -> None:
    assert {("train",), ("evaluate",), ("models", "verify"), ("dataset", "import")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "vibewatch")
def test_flags_show_no_type_in_help(path: tuple[str, ...]) -> None:
    shown = _help(*path)
    assert "--help Show this message and exit." in shown
    assert "<bool>" not in shown


def test_config_help_names_the_environment_variables() -> None:
    shown = _help("config", "show")
    assert "set by a VIBEWATCH_<SECTION>_<KEY> environment variable" in shown
    assert "--json Print one JSON object." in shown


def test_sample_rate_help_says_what_it_does_for_each_command() -> None:
    evaluate = _help("evaluate")
    assert "InfluxDB" not in evaluate
    assert "without a time column); it must be the model's." in evaluate
    train = _help("train")
    assert "With --start/--end, the rate of the default feature spec" in train


def test_list_options_say_to_repeat_the_flag() -> None:
    for command, flags in (("train", ("--recordings", "--faulty", "--device")), ("evaluate", ())):
        shown = _help(command)
        assert "Several may follow the flag" not in shown
        for flag in flags:
            assert f"{flag} " in shown
        assert "Repeat the flag for several." in shown or "repeat the flag for several" in shown


def test_version_option_and_command_print_the_version() -> None:
    for args in (["--version"], ["version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        assert result.stdout == f"{__version__}\n"


# --- configuration -----------------------------------------------------------------


def test_config_errors_have_one_header() -> None:
    result = runner.invoke(
        app,
        ["config", "show"],
        env={"VIBEWATCH_INGEST_BATCH_MAX_POINTS": "-5", "VIBEWATCH_MQTT_PORT": "x"},
    )
    assert result.exit_code == 2
    assert result.stderr.count("invalid configuration") == 1
    assert result.stderr.splitlines()[0] == "error: invalid configuration (2 problems):"


def test_config_show_puts_top_level_keys_at_the_top_level(tmp_path: Path) -> None:
    env = {"VIBEWATCH_DATA_HOME": str(tmp_path)}
    shown = json.loads(runner.invoke(app, ["config", "show", "--json"], env=env).stdout)
    assert "" not in shown
    assert shown["data_home"] == str(tmp_path)
    assert shown["mqtt"]["port"] == 1883
    text = runner.invoke(app, ["config", "show"], env=env).stdout.splitlines()
    assert text[0] == f"data_home = {json.dumps(str(tmp_path))}"
    assert "[mqtt]" in text


@pytest.fixture
def restored_process_state() -> Iterator[None]:
    """Put back what ``vibewatch ingest`` changes in the process: logging and signals."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for signum, handler in signals.items():
        signal.signal(signum, handler)


def test_ingest_logs_its_configuration_with_top_level_keys_at_the_top_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_process_state: None
) -> None:
    class Refusing:
        name = "ingest"
        ready = False

        @classmethod
        def from_config(cls, config: object) -> object:
            return cls()

        def start(self, timeout: float = 30.0) -> None:
            raise SpoolError("the spool is full")

        def stop(self, timeout: float = 30.0) -> bool:
            return True

    service = types.ModuleType("vibewatch.ingest.service")
    service.IngestService = Refusing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vibewatch.ingest.service", service)
    result = runner.invoke(
        app,
        ["ingest"],
        env={"VIBEWATCH_DATA_HOME": str(tmp_path), "VIBEWATCH_LOG_FORMAT": "text"},
    )
    assert result.exit_code == 1
    line = next(line for line in result.stderr.splitlines() if "configuration: " in line)
    logged = json.loads(line.split("configuration: ", 1)[1])
    assert "" not in logged
    assert logged["data_home"] == str(tmp_path)
    assert logged["mqtt"]["host"] == "127.0.0.1"
    assert "ingest cannot start: the spool is full" in result.stderr


# --- model packages ----------------------------------------------------------------

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_verify_of_a_missing_directory_says_it_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    result = runner.invoke(
        app, ["models", "verify", str(missing)], env={"VIBEWATCH_DATA_HOME": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert f"{missing} does not exist" in result.stderr


@pytest.mark.parametrize("with_own_key", [True, False], ids=["own-key", "no-key"])
def test_verify_of_the_factory_package_names_the_release_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_own_key: bool
) -> None:
    env = {"VIBEWATCH_DATA_HOME": str(tmp_path)}
    if with_own_key:
        assert runner.invoke(app, ["keys", "generate"], env=env).exit_code == 0
    monkeypatch.chdir(MODELS.parent)
    result = runner.invoke(app, ["models", "verify", "models/factory/package"], env=env)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    key = tmp_path / "keys" / "model-signing.pub"
    if with_own_key:
        assert f"signature of models/factory/package does not verify with {key}" in line
    else:
        assert f"public key {key} does not exist" in line
    assert line.endswith("signed with the release key: add --public models/release-signing.pub")
    ok = runner.invoke(
        app,
        ["models", "verify", "models/factory/package", "--public", "models/release-signing.pub"],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK models/factory/package: model vibewatch-ae version 1")


def test_a_training_run_directory_names_its_package(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(MODELS / "factory", run)
    assert (run / "MODEL_CARD.md").is_file() and (run / "package").is_dir()
    recording = tmp_path / "ok.npy"
    np.save(recording, np.random.default_rng(0).standard_normal(48_000))
    public = str(MODELS / "release-signing.pub")
    env = {"VIBEWATCH_DATA_HOME": str(tmp_path)}
    args = ["--model", str(run), "--public", public, "--healthy", str(recording)]
    result = runner.invoke(app, ["evaluate", *args, "--sample-rate", "48000", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(run / "package")
    verified = runner.invoke(app, ["models", "verify", str(run), "--public", public], env=env)
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith(f"OK {run / 'package'}: ")
