"""Configuration loading: defaults, file, environment, validation, secrets, docs."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.config import (
    Config,
    HttpUrl,
    InfluxConfig,
    IngestConfig,
    MqttConfig,
    Secret,
    config_reference_markdown,
    load_config,
)
from vibewatch.errors import ConfigError
from vibewatch.redact import mask_url, mask_urls_in

ROOT = Path(__file__).resolve().parents[2]
MASK = "*" * 8


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``~`` at a scratch directory so defaults never touch the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vibewatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    """The problem lines of a collected ConfigError (after the heading line)."""
    heading, *lines = str(exc.value).split("\n")
    assert heading.startswith("invalid configuration")
    return [line.strip() for line in lines]


def load_error(path: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ=env or {})
    return problems(exc)


# --- defaults -----------------------------------------------------------------


def test_defaults_without_file_or_environment(_home: Path) -> None:
    config = load_config(environ={})

    assert config.data_home == _home / ".local/share/vibewatch"
    assert config.mqtt == MqttConfig()
    assert config.mqtt.host == "127.0.0.1"
    assert config.mqtt.port == 1883
    assert config.mqtt.client_id == "vibewatch-ingest"
    assert config.mqtt.topic_prefix == "vw/v1/"
    assert config.mqtt.session_expiry == 86400
    assert config.mqtt.receive_maximum == 2000
    assert config.mqtt.tls_ca_file is None
    assert not config.mqtt.password
    assert config.influx.api == "v1"
    assert config.influx.url == "http://127.0.0.1:8086"
    assert config.influx.database == "vibewatch"
    assert config.influx.timeout == 10.0
    assert config.influx.gzip is True
    assert config.ingest.batch_max_points == 5000
    assert config.ingest.buffer_max_points == 50000
    assert config.ingest.spool_max_bytes == 1 << 30
    assert config.ingest.deadletter_max_bytes == 64 << 20
    assert config.log.level == "info"
    assert config.log.format == "text"
    assert config == Config()


def test_no_file_is_read_implicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "this is not toml")
    monkeypatch.chdir(tmp_path)

    assert load_config(environ={}) == Config()


def test_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 1884\n")

    assert load_config(environ={"VIBEWATCH_CONFIG": str(path)}).mqtt.port == 1884
    assert load_config(environ={"VIBEWATCH_CONFIG": ""}) == Config()


def test_explicit_path_beats_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 1884\n")
    env = {"VIBEWATCH_CONFIG": str(tmp_path / "elsewhere.toml")}

    assert load_config(path, environ=env).mqtt.port == 1884


def test_reads_os_environ_when_no_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEWATCH_MQTT_PORT", "1999")

    assert load_config().mqtt.port == 1999


def test_config_is_frozen() -> None:
    config = Config()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mqtt.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        MqttConfig("127.0.0.1")  # type: ignore[misc]  # keyword-only


# --- file and environment -----------------------------------------------------


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        data_home = "/srv/vw"
        [mqtt]
        host = "broker.local"
        port = 8883
        password = "pw-file"
        group = "ingest-a"
        [influx]
        timeout = 3
        gzip = false
        [ingest]
        batch_max_age = 0.5
        site = "Hall 3, Süd"
        [log]
        format = "json"
        """,
    )

    config = load_config(path, environ={})

    assert config.data_home == Path("/srv/vw")
    assert config.mqtt.host == "broker.local"
    assert config.mqtt.port == 8883
    assert config.mqtt.password.reveal() == "pw-file"
    assert config.mqtt.group == "ingest-a"
    assert config.influx.timeout == 3.0
    assert isinstance(config.influx.timeout, float)
    assert config.influx.gzip is False
    assert config.ingest.batch_max_age == 0.5
    assert config.ingest.site == "Hall 3, Süd"
    assert config.log.format == "json"
    assert config.mqtt.keepalive == 30  # untouched keys keep their defaults


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nport = 8883\nhost = "file-host"\n[log]\nlevel = "debug"\n')
    env = {"VIBEWATCH_MQTT_PORT": "1999", "VIBEWATCH_LOG_LEVEL": "error"}

    config = load_config(path, environ=env)

    assert config.mqtt.port == 1999
    assert config.mqtt.host == "file-host"
    assert config.log.level == "error"


def test_environment_wins_over_an_invalid_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 0\n")

    assert load_config(path, environ={"VIBEWATCH_MQTT_PORT": "1884"}).mqtt.port == 1884


@pytest.mark.parametrize(
    ("name", "text", "section", "key", "expected"),
    [
        ("VIBEWATCH_MQTT_PORT", " 8883 ", "mqtt", "port", 8883),
        ("VIBEWATCH_INGEST_BATCH_MAX_AGE", "0.25", "ingest", "batch_max_age", 0.25),
        ("VIBEWATCH_INGEST_RETRY_BUDGET", "0", "ingest", "retry_budget", 0.0),
        ("VIBEWATCH_INFLUX_GZIP", "false", "influx", "gzip", False),
        ("VIBEWATCH_INFLUX_GZIP", "FALSE", "influx", "gzip", False),
        ("VIBEWATCH_INFLUX_GZIP", "0", "influx", "gzip", False),
        ("VIBEWATCH_INFLUX_GZIP", "no", "influx", "gzip", False),
        ("VIBEWATCH_INFLUX_GZIP", "true", "influx", "gzip", True),
        ("VIBEWATCH_INFLUX_GZIP", "1", "influx", "gzip", True),
        ("VIBEWATCH_INFLUX_GZIP", "Yes", "influx", "gzip", True),
        ("VIBEWATCH_MQTT_HOST", "broker.example", "mqtt", "host", "broker.example"),
        ("VIBEWATCH_MQTT_USERNAME", "", "mqtt", "username", ""),
        ("VIBEWATCH_INFLUX_API", "v2", "influx", "api", "v2"),
        (
            "VIBEWATCH_INGEST_SPOOL_DIR",
            "/var/spool/vw",
            "ingest",
            "spool_dir",
            Path("/var/spool/vw"),
        ),
        ("VIBEWATCH_MQTT_PASSWORD", "s3cret", "mqtt", "password", Secret("s3cret")),
    ],
)
def test_environment_values_are_parsed_per_type(
    name: str, text: str, section: str, key: str, expected: object
) -> None:
    env = {name: text}
    if section == "influx" and key == "api":
        env |= {
            "VIBEWATCH_INFLUX_ORG": "o",
            "VIBEWATCH_INFLUX_BUCKET": "b",
            "VIBEWATCH_INFLUX_TOKEN": "t",
        }

    value = getattr(getattr(load_config(environ=env), section), key)

    assert value == expected
    assert type(value) is type(expected)


def test_top_level_key_from_environment(tmp_path: Path) -> None:
    config = load_config(environ={"VIBEWATCH_DATA_HOME": str(tmp_path / "state")})

    assert config.data_home == tmp_path / "state"


def test_tilde_is_expanded_in_paths(_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, 'data_home = "~/vw"\n[ingest]\ndeadletter_path = "~/dl.jsonl"\n')

    config = load_config(path, environ={"VIBEWATCH_INGEST_SPOOL_DIR": "~/sp"})

    assert config.data_home == _home / "vw"
    assert config.ingest.deadletter_path == _home / "dl.jsonl"
    assert config.ingest.spool_dir == _home / "sp"


# --- derived paths ------------------------------------------------------------


def test_spool_and_deadletter_derive_from_data_home(tmp_path: Path) -> None:
    config = load_config(environ={"VIBEWATCH_DATA_HOME": str(tmp_path)})

    assert config.ingest.spool_dir == tmp_path / "spool"
    assert config.ingest.deadletter_path == tmp_path / "deadletter.jsonl"
    assert config.redacted()["ingest"]["spool_dir"] == str(tmp_path / "spool")


def test_explicit_spool_dir_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, f'data_home = "{tmp_path}"\n[ingest]\nspool_dir = "/fast/spool"\n')

    config = load_config(path, environ={})

    assert config.ingest.spool_dir == Path("/fast/spool")
    assert config.ingest.deadletter_path == tmp_path / "deadletter.jsonl"


def test_empty_path_in_environment_restores_the_derived_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[ingest]\nspool_dir = "/fast/spool"\n')

    config = load_config(path, environ={"VIBEWATCH_INGEST_SPOOL_DIR": ""})

    assert config.ingest.spool_dir == config.data_home / "spool"


def test_paths_under_data_home_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, '[ingest]\nspool_dir = "<data_home>/fast/spool"\n')

    config = load_config(path, environ={"VIBEWATCH_DATA_HOME": str(tmp_path)})

    assert config.ingest.spool_dir == tmp_path / "fast/spool"


def test_direct_construction_derives_paths_too(tmp_path: Path) -> None:
    config = Config(data_home=tmp_path, ingest=IngestConfig(deadletter_path=Path("/x/dl")))

    assert config.ingest.spool_dir == tmp_path / "spool"
    assert config.ingest.deadletter_path == Path("/x/dl")


# --- type errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "VIBEWATCH_MQTT_PORT",
            "abc",
            'mqtt.port = "abc" (from VIBEWATCH_MQTT_PORT): expected an integer',
        ),
        ("VIBEWATCH_MQTT_PORT", "18.5", "expected an integer"),
        ("VIBEWATCH_MQTT_PORT", "", "expected an integer"),
        ("VIBEWATCH_INFLUX_TIMEOUT", "soon", "expected a number"),
        ("VIBEWATCH_INFLUX_TIMEOUT", "nan", "expected a finite number"),
        ("VIBEWATCH_INGEST_RETRY_MAX", "inf", "expected a finite number"),
        ("VIBEWATCH_INFLUX_GZIP", "maybe", "expected a boolean: true/false, 1/0 or yes/no"),
        ("VIBEWATCH_INFLUX_API", "v3", 'must be one of "v1", "v2"'),
        ("VIBEWATCH_LOG_LEVEL", "INFO", 'must be one of "debug", "info", "warning", "error"'),
        ("VIBEWATCH_DATA_HOME", "", 'data_home = "" (from VIBEWATCH_DATA_HOME): must not be empty'),
        ("VIBEWATCH_MQTT_HOST", "bad\udcffbyte", "is not valid UTF-8"),
    ],
)
def test_environment_parse_errors(name: str, text: str, message: str) -> None:
    [problem] = load_error(env={name: text})

    assert message in problem
    assert f"(from {name})" in problem


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[mqtt]\nport = "1883"',
            'mqtt.port = "1883" (from {path}): expected an integer, got a string',
        ),
        (
            "[mqtt]\nport = true",
            "mqtt.port = true (from {path}): expected an integer, got a boolean",
        ),
        (
            "[mqtt]\nport = 1883.0",
            "mqtt.port = 1883.0 (from {path}): expected an integer, got a float",
        ),
        (
            "[influx]\ntimeout = false",
            "influx.timeout = false (from {path}): expected a number, got a boolean",
        ),
        ("[influx]\ntimeout = nan", "expected a finite number"),
        ("[influx]\ngzip = 1", "influx.gzip = 1 (from {path}): expected a boolean, got an integer"),
        ("[mqtt]\nhost = 127", "mqtt.host = 127 (from {path}): expected a string, got an integer"),
        ("[mqtt]\nhost = [1]", "mqtt.host = [...] (from {path}): expected a string, got an array"),
        ("[mqtt.host]\nx = 1", "mqtt.host = {...} (from {path}): expected a string, got a table"),
        ("[log]\nlevel = 1", "log.level = 1 (from {path}): expected a string, got an integer"),
        ('[log]\nlevel = "verbose"', 'log.level = "verbose" (from {path}): must be one of'),
        ("data_home = 5", "data_home = 5 (from {path}): expected a path string, got an integer"),
        ('data_home = ""', 'data_home = "" (from {path}): must not be empty'),
        ("[ingest]\nspool_dir = 2024-01-01", "expected a path string, got a date/time"),
    ],
)
def test_wrong_toml_types(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml + "\n")

    [problem] = load_error(path)

    assert message.replace("{path}", str(path)) in problem


# --- bounds and checks --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "VIBEWATCH_INGEST_BATCH_MAX_POINTS",
            "-5",
            "ingest.batch_max_points = -5 (from VIBEWATCH_INGEST_BATCH_MAX_POINTS): must be >= 1",
        ),
        ("VIBEWATCH_INGEST_BATCH_MAX_POINTS", "100001", "must be <= 100000"),
        ("VIBEWATCH_MQTT_PORT", "0", "mqtt.port = 0 (from VIBEWATCH_MQTT_PORT): must be >= 1"),
        ("VIBEWATCH_MQTT_PORT", "65536", "must be <= 65535"),
        ("VIBEWATCH_MQTT_KEEPALIVE", "4", "must be >= 5"),
        ("VIBEWATCH_MQTT_SESSION_EXPIRY", "4294967296", "must be <= 4294967295"),
        ("VIBEWATCH_MQTT_RECEIVE_MAXIMUM", "0", "must be >= 1"),
        (
            "VIBEWATCH_INFLUX_TIMEOUT",
            "0",
            "influx.timeout = 0.0 (from VIBEWATCH_INFLUX_TIMEOUT): must be > 0",
        ),
        ("VIBEWATCH_INFLUX_TIMEOUT", "300.5", "must be <= 300"),
        ("VIBEWATCH_INFLUX_GZIP_LEVEL", "10", "must be <= 9"),
        ("VIBEWATCH_INGEST_BATCH_MAX_AGE", "0.001", "must be >= 0.01"),
        ("VIBEWATCH_INGEST_MAX_PAYLOAD_BYTES", "63", "must be >= 64"),
        ("VIBEWATCH_INGEST_MAX_FUTURE_SECONDS", "-1", "must be >= 0"),
        ("VIBEWATCH_INGEST_SPOOL_MAX_BYTES", "1048575", "must be >= 1048576"),
        ("VIBEWATCH_INGEST_DEADLETTER_MAX_BYTES", "65535", "must be >= 65536"),
        ("VIBEWATCH_INGEST_RETRY_INITIAL", "0", "must be > 0"),
        ("VIBEWATCH_INGEST_RETRY_BUDGET", "-0.5", "must be >= 0"),
        ("VIBEWATCH_INGEST_WRITE_CONCURRENCY", "17", "must be <= 16"),
        ("VIBEWATCH_INGEST_STATS_INTERVAL", "0.5", "must be >= 1"),
        ("VIBEWATCH_MQTT_HOST", "", "must not be empty"),
        ("VIBEWATCH_MQTT_CLIENT_ID", "has space", "must be 1 to 64 characters"),
        ("VIBEWATCH_MQTT_CLIENT_ID", "x" * 65, "must be 1 to 64 characters"),
        ("VIBEWATCH_MQTT_CLIENT_ID", "", "must be 1 to 64 characters"),
        ("VIBEWATCH_MQTT_GROUP", "a/b", "must be 1 to 64 characters"),
        ("VIBEWATCH_MQTT_TOPIC_PREFIX", "vw/v1", 'must end with "/"'),
        ("VIBEWATCH_MQTT_TOPIC_PREFIX", "$SYS/", 'must not start with "$"'),
        ("VIBEWATCH_MQTT_TOPIC_PREFIX", "vw/+/", "wildcards"),
        ("VIBEWATCH_MQTT_TOPIC_PREFIX", "vw/#/", "wildcards"),
        ("VIBEWATCH_MQTT_TOPIC_PREFIX", "vw\0/", "NUL"),
        ("VIBEWATCH_MQTT_TLS_CA_FILE", "/nonexistent/ca.pem", "must be an existing file"),
        ("VIBEWATCH_INFLUX_URL", "ftp://h", "must be an http:// or https:// URL"),
        ("VIBEWATCH_INFLUX_URL", "http://", "must be an http:// or https:// URL"),
        ("VIBEWATCH_INFLUX_URL", "http://h:port", "must be an http:// or https:// URL"),
        ("VIBEWATCH_INFLUX_URL", "http://h:8086/?db=x", "must not have a query"),
        ("VIBEWATCH_INFLUX_URL", "http://h:99999", "port 99999 is out of range (1 to 65535)"),
        ("VIBEWATCH_INFLUX_URL", "http://h:65536/", "port 65536 is out of range (1 to 65535)"),
        ("VIBEWATCH_INFLUX_URL", "http://h:0", "port 0 is out of range (1 to 65535)"),
        ("VIBEWATCH_INFLUX_URL", "http://h:+80", "the port is not a number"),
        ("VIBEWATCH_INFLUX_URL", " http://h:8086", "must not start or end with white space"),
        ("VIBEWATCH_INFLUX_URL", "http://h:8086 ", "must not start or end with white space"),
        ("VIBEWATCH_INFLUX_URL", "http://h:8086\n", "must not start or end with white space"),
        ("VIBEWATCH_INFLUX_URL", "http://h :8086", "must not contain white space or control"),
        ("VIBEWATCH_INFLUX_URL", "http://h/a\x7fb", "must not contain white space or control"),
        ("VIBEWATCH_INFLUX_URL", "http://[::1", "must be an http:// or https:// URL"),
        ("VIBEWATCH_INFLUX_URL", "http://h/?p=x", "must not hold credentials"),
        ("VIBEWATCH_INFLUX_URL", "http://tok@h", "must not hold credentials"),
        ("VIBEWATCH_INFLUX_USERNAME", "a:b", 'must not contain ":"'),
        ("VIBEWATCH_INFLUX_DATABASE", "", 'required when influx.api = "v1"'),
        ("VIBEWATCH_INGEST_SITE", "x" * 257, "must be at most 256 characters"),
        ("VIBEWATCH_INGEST_SITE", "hall\n3", "must not contain line breaks"),
        ("VIBEWATCH_INGEST_SITE", "hall\\3", "no backslashes"),
    ],
)
def test_invalid_values_name_key_value_and_source(name: str, text: str, message: str) -> None:
    [problem] = load_error(env={name: text})

    assert message in problem
    assert f"(from {name}): " in problem
    key = name.removeprefix("VIBEWATCH_").lower()
    section, _, rest = key.partition("_")
    assert problem.startswith(f"{section}.{rest} = ")


def test_bound_error_from_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ingest]\nwrite_concurrency = 0\n")

    [problem] = load_error(path)

    assert problem == f"ingest.write_concurrency = 0 (from {path}): must be >= 1"


@pytest.mark.parametrize(
    "value",
    [
        "http://influx:8086",
        "https://influx.example.net",
        "http://[::1]:8086/prefix/",
        "http://influx:1",
        "http://influx:65535",
    ],
)
def test_valid_urls(value: str) -> None:
    assert load_config(environ={"VIBEWATCH_INFLUX_URL": value}).influx.url == value


def test_valid_boundaries_and_names(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    env = {
        "VIBEWATCH_MQTT_PORT": "65535",
        "VIBEWATCH_MQTT_SESSION_EXPIRY": "0",
        "VIBEWATCH_MQTT_CLIENT_ID": "A_z-9" + "x" * 59,
        "VIBEWATCH_MQTT_GROUP": "ingest",
        "VIBEWATCH_MQTT_TOPIC_PREFIX": "/",
        "VIBEWATCH_MQTT_TLS_CA_FILE": str(ca),
        "VIBEWATCH_INFLUX_TIMEOUT": "300",
        "VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.01",
        "VIBEWATCH_INGEST_BUFFER_MAX_POINTS": "5000",
        "VIBEWATCH_INGEST_RETRY_MAX": "0.2",
        "VIBEWATCH_INGEST_SITE": "é" * 256,
    }

    config = load_config(environ=env)

    assert config.mqtt.tls_ca_file == ca
    assert config.ingest.buffer_max_points == config.ingest.batch_max_points


def test_buffer_must_hold_a_batch() -> None:
    env = {
        "VIBEWATCH_INGEST_BATCH_MAX_POINTS": "2000",
        "VIBEWATCH_INGEST_BUFFER_MAX_POINTS": "1000",
    }

    [problem] = load_error(env=env)

    assert problem == (
        "ingest.buffer_max_points = 1000 (from VIBEWATCH_INGEST_BUFFER_MAX_POINTS): "
        "must be >= ingest.batch_max_points = 2000 (from VIBEWATCH_INGEST_BATCH_MAX_POINTS)"
    )


def test_retry_max_must_not_be_below_retry_initial() -> None:
    [problem] = load_error(env={"VIBEWATCH_INGEST_RETRY_MAX": "0.1"})

    assert problem.startswith("ingest.retry_max = 0.1 (from VIBEWATCH_INGEST_RETRY_MAX): ")
    assert "must be >= ingest.retry_initial = 0.2 (default)" in problem


def test_relation_is_not_checked_against_an_invalid_key() -> None:
    env = {"VIBEWATCH_INGEST_BATCH_MAX_POINTS": "0", "VIBEWATCH_INGEST_BUFFER_MAX_POINTS": "10"}

    [problem] = load_error(env=env)

    assert problem.startswith("ingest.batch_max_points = 0")


# --- InfluxDB v2 --------------------------------------------------------------


def test_v2_requires_org_bucket_and_token(tmp_path: Path) -> None:
    path = write(tmp_path, '[influx]\napi = "v2"\n')

    found = load_error(path)

    assert found == [
        f'influx.org = "" (default): required when influx.api = "v2" (from {path})',
        f'influx.bucket = "" (default): required when influx.api = "v2" (from {path})',
        f'influx.token (default): required when influx.api = "v2" (from {path})',
    ]


def test_v2_with_org_bucket_and_token() -> None:
    env = {
        "VIBEWATCH_INFLUX_API": "v2",
        "VIBEWATCH_INFLUX_ORG": "plant",
        "VIBEWATCH_INFLUX_BUCKET": "vibration",
        "VIBEWATCH_INFLUX_TOKEN": "tok-123",
        "VIBEWATCH_INFLUX_DATABASE": "",  # a v1 key: not needed with v2
    }

    influx = load_config(environ=env).influx

    assert influx == InfluxConfig(
        api="v2", org="plant", bucket="vibration", token=Secret("tok-123"), database=""
    )


# --- unknown names ------------------------------------------------------------


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ingest]\nbatch_max_point = 10\n")

    [problem] = load_error(path)

    assert problem == (
        f"unknown key ingest.batch_max_point in {path} (did you mean ingest.batch_max_points?)"
    )


def test_unknown_top_level_key_and_section(tmp_path: Path) -> None:
    path = write(tmp_path, "datahome = '/x'\n[mqttt]\nport = 1\n[extra]\n")

    found = load_error(path)

    assert found == [
        f"unknown key datahome in {path} (did you mean data_home?)",
        f"unknown section [mqttt] in {path} (did you mean mqtt?)",
        f"unknown section [extra] in {path}",
    ]


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt = 1\n")

    [problem] = load_error(path)

    assert problem == f"mqtt in {path} must be a table [mqtt], not an integer"


def test_unknown_environment_variable() -> None:
    env = {"VIBEWATCH_INGEST_BATCH_MAX_POINT": "10", "VIBEWATCH_CONFIG": "", "VIBEWATCHER": "1"}

    [problem] = load_error(env=env)

    assert problem == (
        "unknown environment variable VIBEWATCH_INGEST_BATCH_MAX_POINT "
        "(did you mean VIBEWATCH_INGEST_BATCH_MAX_POINTS?)"
    )


def test_every_documented_variable_is_accepted() -> None:
    defaults = Config().redacted()
    names = re.findall(r"`(VIBEWATCH_[A-Z0-9_]+)`", config_reference_markdown())
    env = {}
    for name in names:
        section, key = _key_of(name, defaults)
        value = defaults[section][key]
        if isinstance(value, dict):  # a table: JSON in the environment
            env[name] = json.dumps(value)
        else:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)

    assert len(names) == sum(len(keys) for keys in defaults.values())
    assert load_config(environ=env).redacted() == defaults


def _key_of(name: str, defaults: dict[str, dict[str, object]]) -> tuple[str, str]:
    for section, keys in defaults.items():
        for key in keys:
            parts = [section, key] if section else [key]
            if name == "VIBEWATCH_" + "_".join(parts).upper():
                return section, key
    raise AssertionError(f"{name} names no key")


# --- all problems at once -----------------------------------------------------


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[mqtt]\nport = "x"\nkeepalive = 1\ntypo = 1\n[influx]\ngzip_level = 0\n'
    )
    env = {"VIBEWATCH_INGEST_BATCH_MAX_POINTS": "-5", "VIBEWATCH_NOPE": "1"}

    with pytest.raises(ConfigError) as exc:
        load_config(path, environ=env)

    found = problems(exc)
    assert str(exc.value).startswith("invalid configuration (6 problems):\n")
    assert len(found) == 6
    assert any(p.startswith("mqtt.port = ") for p in found)
    assert any(p.startswith("mqtt.keepalive = 1 ") for p in found)
    assert any(p.startswith("unknown key mqtt.typo") for p in found)
    assert any(p.startswith("influx.gzip_level = 0 ") for p in found)
    assert any(p.startswith("ingest.batch_max_points = -5 ") for p in found)
    assert any(p.startswith("unknown environment variable VIBEWATCH_NOPE") for p in found)


# --- file errors --------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=re.escape(f"configuration file {path} does not exist")):
        load_config(path, environ={})


def test_missing_file_from_config_env_says_so(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=re.escape(f"{path} (from VIBEWATCH_CONFIG) does not")):
        load_config(environ={"VIBEWATCH_CONFIG": str(path)})


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path, environ={})


def test_toml_syntax_error_names_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "a"\nport = = 1\n')

    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})

    assert str(exc.value).startswith(f"{path}: invalid TOML: ")
    assert "line 3" in str(exc.value)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "vibewatch.toml"
    path.write_bytes(b'[mqtt]\nhost = "\xff"\n')

    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid UTF-8 (at line 2)")):
        load_config(path, environ={})


# --- secrets ------------------------------------------------------------------


def test_secret_type() -> None:
    hidden = Secret("hunter2")

    assert hidden.reveal() == "hunter2"
    assert str(hidden) == "********"
    assert repr(hidden) == "'********'"
    assert f"{hidden}" == "********"
    assert hidden
    assert hidden == Secret("hunter2")
    assert hidden != Secret("hunter3")
    assert hidden != "hunter2"
    assert hash(hidden) == hash(Secret("hunter2"))
    assert not Secret()
    assert str(Secret()) == ""
    assert repr(Secret()) == "''"
    with pytest.raises(AttributeError):
        hidden._value = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_secret_survives_copies() -> None:
    config = Config(mqtt=MqttConfig(password=Secret("hunter2")))

    copied = dataclasses.asdict(config)

    assert copied["mqtt"]["password"] == Secret("hunter2")


SECRETS = {
    "VIBEWATCH_MQTT_PASSWORD": "mqtt-pw-4711",
    "VIBEWATCH_INFLUX_PASSWORD": "influx-pw-4712",
    "VIBEWATCH_INFLUX_TOKEN": "influx-token-4713",
}


def test_secrets_never_shown_by_config() -> None:
    config = load_config(environ=SECRETS)

    shown = [repr(config), str(config), json.dumps(config.redacted()), f"{config.mqtt}"]

    assert config.mqtt.password.reveal() == "mqtt-pw-4711"
    assert config.influx.token.reveal() == "influx-token-4713"
    for text in shown:
        for value in SECRETS.values():
            assert value not in text
    redacted = config.redacted()
    assert redacted["mqtt"]["password"] == MASK
    assert redacted["influx"]["password"] == MASK
    assert redacted["influx"]["token"] == MASK
    assert Config().redacted()["influx"]["token"] == ""


def test_redacted_is_plain_data() -> None:
    redacted = Config().redacted()

    assert list(redacted) == [
        "",
        "mqtt",
        "influx",
        "ingest",
        "train",
        "ota",
        "alerts",
        "grafana",
        "log",
    ]
    assert redacted["mqtt"]["port"] == 1883
    assert redacted["mqtt"]["tls_ca_file"] == ""
    assert redacted["influx"]["gzip"] is True
    assert json.loads(json.dumps(redacted)) == redacted


def test_invalid_secret_is_reported_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[influx]\ntoken = 98765432123\n")
    env = {"VIBEWATCH_MQTT_PASSWORD": "bad\udcffsecret-value"}

    with pytest.raises(ConfigError) as exc:
        load_config(path, environ=env)

    message = str(exc.value)
    assert "98765432123" not in message
    assert "secret-value" not in message
    assert f"influx.token (from {path}): expected a string, got an integer" in message
    assert "mqtt.password (from VIBEWATCH_MQTT_PASSWORD): is not valid UTF-8" in message


def test_unknown_key_error_does_not_show_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\npasswd = "mqtt-pw-4711"\n')

    found = load_error(path, env={"VIBEWATCH_MQTT_PASWORD": "also-secret"})

    assert found == [
        "unknown environment variable VIBEWATCH_MQTT_PASWORD "
        "(did you mean VIBEWATCH_MQTT_PASSWORD?)",
        f"unknown key mqtt.passwd in {path} (did you mean mqtt.password?)",
    ]


@pytest.mark.parametrize(
    ("url", "shown", "message"),
    [
        (
            "https://user:pw-4711@influx:8086/x",
            "https://user:********@influx:8086/x",
            "must not hold credentials",
        ),
        # A "/" in the password makes the rest look like a path: still masked.
        ("https://u:" + "pw/4711" * 20 + "@influx", "https://u:********@influx", "must be an http"),
    ],
)
def test_url_credentials_are_masked_in_errors(url: str, shown: str, message: str) -> None:
    [problem] = load_error(env={"VIBEWATCH_INFLUX_URL": url})

    assert "4711" not in problem
    assert f'influx.url = "{shown}" (from VIBEWATCH_INFLUX_URL): {message}' in problem


# --- URLs: every URL-valued key is masked wherever it is shown -----------------

SECRET_URL = "http://admin:hunter2@db:8086/?u=admin&p=hunter2&token=tok-4711"
MASKED_URL = "http://admin:********@db:8086/?u=admin&p=********&token=********"


def url_keys() -> list[tuple[str, str]]:
    """``(section, key)`` of every URL-valued key, from the schema: the fields typed HttpUrl."""
    found: list[tuple[str, str]] = []
    for f in dataclasses.fields(Config):
        annotation = typing.get_type_hints(Config)[f.name]
        if annotation is HttpUrl:
            found.append(("", f.name))
        elif dataclasses.is_dataclass(annotation):
            hints = typing.get_type_hints(annotation)
            found += [
                (f.name, g.name) for g in dataclasses.fields(annotation) if hints[g.name] is HttpUrl
            ]
    return found


URL_KEYS = url_keys()


def with_value(section: str, key: str, value: str) -> Config:
    if not section:
        return Config(**{key: value})
    return Config(**{section: dataclasses.replace(getattr(Config(), section), **{key: value})})


def test_url_keys_are_found_in_the_schema() -> None:
    assert ("influx", "url") in URL_KEYS
    # A URL key typed as a plain string would escape the masking: none is.
    for section, keys in Config().redacted().items():
        for key, value in keys.items():
            if isinstance(value, str) and "://" in value:
                assert (section, key) in URL_KEYS


@pytest.mark.parametrize(("section", "key"), URL_KEYS)
def test_urls_are_masked_by_redacted_and_repr(section: str, key: str) -> None:
    # Constructing a Config directly trusts the values: the masking still holds.
    config = with_value(section, key, SECRET_URL)

    assert config.redacted()[section][key] == MASKED_URL
    holder = getattr(config, section) if section else config
    shown = [json.dumps(config.redacted()), repr(config), str(config), repr(holder), f"{holder}"]
    for text in shown:
        assert "hunter2" not in text
        assert "tok-4711" not in text
    assert MASKED_URL in repr(config)
    assert getattr(holder, key) == SECRET_URL  # the value itself is kept


@pytest.mark.parametrize(("section", "key"), URL_KEYS)
@pytest.mark.parametrize("via", ["env", "file"])
def test_url_errors_mask_the_value(tmp_path: Path, section: str, key: str, via: str) -> None:
    dotted = f"{section}.{key}" if section else key
    env = "VIBEWATCH_" + dotted.replace(".", "_").upper()
    if via == "env":
        found, source = load_error(env={env: SECRET_URL}), f"from {env}"
    else:
        table = f"[{section}]\n" if section else ""
        path = write(tmp_path, f'{table}{key} = "{SECRET_URL}"\n')
        found, source = load_error(path), f"from {path}"

    assert found == [
        f'{dotted} = "{MASKED_URL}" ({source}): must not hold credentials: give them in their '
        "own keys (influx.username and influx.password, or influx.token; grafana.token)"
    ]


@pytest.mark.parametrize(("section", "key"), URL_KEYS)
def test_config_show_masks_urls(section: str, key: str) -> None:
    env = "VIBEWATCH_" + "_".join(filter(None, [section, key])).upper()

    result = CliRunner().invoke(app, ["config", "show"], env={env: SECRET_URL})

    assert result.exit_code != 0
    assert MASKED_URL in result.output
    assert "hunter2" not in result.output
    assert "tok-4711" not in result.output


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://db:8086", "http://db:8086"),
        ("http://user:pass@host", "http://user:********@host"),
        ("https://user:pass@host:8086/x?db=y#z", "https://user:********@host:8086/x?db=y#z"),
        # A user without a password is usually a token.
        ("https://ghp_token@host/x", "https://********@host/x"),
        ("http://db:8086/?u=admin&p=hunter2", "http://db:8086/?u=admin&p=********"),
        ("http://db/?u=admin;p=hunter2", "http://db/?u=admin;p=********"),
        (
            "http://db/?db=x&P=1&Password=2&PWD=3&pass=4&passwd=5",
            "http://db/?db=x&P=********"
            "&Password=********&PWD=********&pass=********&passwd=********",
        ),
        (
            "http://db/?token=1&access_token=2&secret=3&api_key=4&apikey=5&key=6&auth=7",
            "http://db/?token=********&access_token=********&secret=********&api_key=********"
            "&apikey=********&key=********&auth=********",
        ),
        (
            "http://db/?Authorization=Basic+eA&API-Key=1&p%61ssword=2&monkey=3",
            "http://db/?Authorization=********&API-Key=********&p%61ssword=********&monkey=3",
        ),
        ("http://db/#access_token=abc&state=1", "http://db/#access_token=********&state=1"),
        ("http://db/?p=", "http://db/?p="),
        # A raw "/", "@", "?" or "#" in a password: everything before the host is hidden.
        ("http://u:pa/ss@host/x", "http://u:********@host/x"),
        ("http://u:p@ss@host/x", "http://u:********@host/x"),
        ("http://u:pa?ss@host:1/", "http://u:********@host:1/"),
        ("http://u:12#34@host", "http://u:********@host"),
        # ...but an e-mail address in a query value is not user info.
        ("http://db:8086/?u=me@example.com&p=x", "http://db:8086/?u=me@example.com&p=********"),
        ("http://[::1]:8086/?u=me@example.com", "http://[::1]:8086/?u=me@example.com"),
        # Not a URL at all: only the parameters.
        ("/write?db=x&p=hunter2", "/write?db=x&p=********"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_url(masked) == masked


def test_mask_urls_in_a_message() -> None:
    message = (
        "LocationParseError('Failed to parse: http://u:hunter2@db:99999/api/v2/write?org=o') "
        'and "GET /query?db=x&p=hunter2 HTTP/1.1"'
    )

    assert mask_urls_in(message) == (
        "LocationParseError('Failed to parse: http://u:********@db:99999/api/v2/write?org=o') "
        'and "GET /query?db=x&p=******** HTTP/1.1"'
    )


# --- docs and example ---------------------------------------------------------


def test_docs_table_matches_the_code() -> None:
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- keys:begin -->\n(.*)<!-- keys:end -->", text, re.DOTALL)

    assert match is not None, "docs/configuration.md lacks the keys:begin/keys:end block"
    assert match.group(1).strip() == config_reference_markdown().strip(), (
        "docs/configuration.md is out of date: paste config_reference_markdown() "
        "between the markers"
    )


def test_reference_lists_every_key_with_its_env_var() -> None:
    reference = config_reference_markdown()

    for section, keys in Config().redacted().items():
        for key in keys:
            dotted = f"{section}.{key}" if section else key
            env = "VIBEWATCH_" + dotted.replace(".", "_").upper()
            assert f"| `{dotted}` | `{env}` |" in reference


def test_example_file_sets_every_key_to_its_default() -> None:
    path = ROOT / "deploy/vibewatch.toml"
    document = tomllib.loads(path.read_text(encoding="utf-8"))

    expected = {s: set(keys) for s, keys in Config().redacted().items()}
    found = {
        "": {k for k, v in document.items() if not isinstance(v, dict)},
        **{k: set(v) for k, v in document.items() if isinstance(v, dict)},
    }
    assert found == expected
    assert load_config(path, environ={}) == load_config(environ={})


def test_webhook_receivers_from_the_file_and_the_environment(tmp_path: Path) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = tmp_path / "vibewatch.toml"
    config.write_text(
        "[alerts.receivers.oncall]\n"
        'url = "https://hooks.example.com/T0/B0/abc?token=x"\n'
        f'secrets = ["{secret}"]\n'
        "timeout = 5\n"
    )
    loaded = load_config(config, environ={})
    (receiver,) = loaded.alerts.receivers
    assert (receiver.name, receiver.timeout, receiver.concurrency) == ("oncall", 5.0, 2)
    assert receiver.secrets[0].reveal() == secret
    shown = json.dumps(loaded.redacted())
    assert secret not in shown and "abc" not in shown and "https://hooks.example.com/" in shown
    table = {"pager": {"url": "http://127.0.0.1:9/", "secrets": [secret, secret]}}
    env = load_config(environ={"VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table)})
    assert [r.name for r in env.alerts.receivers] == ["pager"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": "ftp://x/", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}, "url must be"),
        (
            {"url": "https://u:p@x/", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
            "credentials",
        ),
        ({"url": "https://x/", "secrets": []}, "secrets must be a non-empty array"),
        (
            {"url": "https://x/", "secrets": ["hunter2-hunter2"]},
            "secrets[0]: a webhook secret starts",
        ),
        (
            {
                "url": "https://x/",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "timeout": 0,
            },
            "timeout",
        ),
        (
            {
                "url": "https://x/",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "retries": 1,
            },
            "unknown key retries",
        ),
        (
            {
                "url": "https://x/",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "matchers": ["severity~critical"],
            },
            "matchers: 'severity~critical' is not a matcher",
        ),
        (
            {
                "url": "https://x/",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "matchers": ["device=~(("],
            },
            "matchers: device=~'((':",
        ),
        (
            {
                "url": "https://x/",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "send_resolved": "yes",
            },
            "send_resolved must be true or false",
        ),
    ],
)
def test_a_bad_receiver_is_named_without_its_secrets(
    table: dict[str, object], message: str
) -> None:
    env = {"VIBEWATCH_ALERTS_RECEIVERS": json.dumps({"oncall": table})}
    with pytest.raises(ConfigError) as caught:
        load_config(environ=env)
    assert message in str(caught.value) and "receiver oncall" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_receivers_take_what_their_matchers_match_on_routes_of_their_own() -> None:
    from vibewatch.alerts.model import Alert
    from vibewatch.alerts.service import receiver_routes

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    table = {
        "all": {"url": "http://127.0.0.1:9/", "secrets": [secret]},
        "pager": {"url": "http://127.0.0.1:9/", "secrets": [secret], "send_resolved": False,
                  "matchers": ['severity="critical"', "device=~pump-.*"]},
    }  # fmt: skip
    config = load_config(environ={"VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table)})
    every, pager = receiver_routes(config)
    assert (every.route.receiver, every.route.key, every.route.send_resolved) == ("all", "{}", True)
    assert pager.route.key == '{}/{device=~"pump-.*",severity="critical"}'
    assert not pager.route.send_resolved
    critical = Alert({"alertname": "DeviceOffline", "device": "pump-1", "severity": "critical"})
    warning = Alert({"alertname": "DeviceAnomaly", "device": "pump-1", "severity": "warning"})
    assert every.takes(critical) and every.takes(warning)
    assert pager.takes(critical) and not pager.takes(warning)


def test_a_secret_comes_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    token.chmod(0o600)
    config = load_config(
        environ={
            "VIBEWATCH_INFLUX_API": "v2",
            "VIBEWATCH_INFLUX_ORG": "o",
            "VIBEWATCH_INFLUX_BUCKET": "b",
            "VIBEWATCH_INFLUX_TOKEN_FILE": str(token),
            "VIBEWATCH_MQTT_PASSWORD_FILE": str(token),
        }
    )
    assert config.influx.token.reveal() == "tok-from-file"
    assert config.mqtt.password.reveal() == "tok-from-file"


@pytest.mark.parametrize(
    ("content", "also_plain", "message"),
    [
        (None, False, "cannot read .*nope: No such file"),
        ("\n", False, "is empty"),
        ("pw", True, "set VIBEWATCH_MQTT_PASSWORD or VIBEWATCH_MQTT_PASSWORD_FILE, not both"),
    ],
)
def test_a_secret_file_that_cannot_serve_is_refused_without_its_text(
    tmp_path: Path, content: str | None, also_plain: bool, message: str
) -> None:
    path = tmp_path / "nope"
    if content is not None:
        path.write_text(content)
    env = {"VIBEWATCH_MQTT_PASSWORD_FILE": str(path)}
    if also_plain:
        env["VIBEWATCH_MQTT_PASSWORD"] = "other-secret"
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(environ=env)
    assert "other-secret" not in str(caught.value)


def test_only_secrets_have_file_variables() -> None:
    with pytest.raises(ConfigError, match="unknown environment variable VIBEWATCH_MQTT_HOST_FILE"):
        load_config(environ={"VIBEWATCH_MQTT_HOST_FILE": "/tmp/x"})
