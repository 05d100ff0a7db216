"""The deployment files agree with the code and with docs/deploy.md.

Docker is not run here: ``deploy/compose.yaml`` is read as data. Its mounts exist in
the repository or are made by the setup of docs/deploy.md, its ``VIBEWATCH_*``
variables (with the configuration file it mounts) load as a valid configuration, its
secret files are ones the setup writes, its broker port is the one of
``deploy/mosquitto.conf``, and no password or token is written in it. The systemd units
run real ``vibewatch`` commands with real configuration keys. The integration test
``test_deploy_site`` runs the setup itself and the back end through the broker it
configures.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.config import load_config
from vibewatch.dashboards.export import datasource_yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET", re.I)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def setup_script() -> str:
    """The shell block of docs/deploy.md between ``setup:begin`` and ``setup:end``."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = text.split("<!-- setup:begin -->")[1].split("<!-- setup:end -->")[0]
    return block.strip().removeprefix("```sh").removesuffix("```")


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: source relative to deploy/ -> path in the container."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[source] = target
    return mounts


def site_paths() -> list[str]:
    """Every file or directory under site/ the compose file mounts or hands as a secret."""
    paths = [s for svc in compose()["services"].values() for s in bind_mounts(svc)]
    paths += [secret["file"] for secret in compose()["secrets"].values()]
    return sorted(p.removeprefix("./") for p in paths if p.startswith("./site/"))


def test_every_mount_is_in_the_repository_or_made_by_the_setup() -> None:
    script = setup_script()
    for service in compose()["services"].values():
        for source in bind_mounts(service):
            if not source.startswith("./site/"):
                assert (DEPLOY / source).exists(), source
    for path in site_paths():
        parts = Path(path).parts
        # the path, or a folder of it below site/, is named by a step of the setup
        named = [str(Path(*parts[:n])) for n in range(2, len(parts) + 1)]
        assert any(re.search(rf"\b{re.escape(n)}\b", script) for n in named), path
    # the Grafana file provider loads the JSON files from where the dashboards are mounted
    grafana = bind_mounts(compose()["services"]["grafana"])
    provider_file = ROOT / "dashboards" / "provisioning" / "dashboards" / "vibewatch.yaml"
    provider = yaml.safe_load(provider_file.read_text())
    assert grafana["../dashboards"] == provider["providers"][0]["options"]["path"]


def test_the_image_copies_what_exists() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def secret_files(service: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """/run/secrets/NAME of a service -> a stand-in file with a value."""
    out = {}
    for name in service.get("secrets", []):
        assert name in compose()["secrets"], name
        stand_in = tmp_path / name
        stand_in.write_text("s3cret-value\n")
        out[f"/run/secrets/{name}"] = str(stand_in)
    return out


def test_the_back_ends_environment_and_file_are_a_valid_configuration(tmp_path: Path) -> None:
    service = compose()["services"]["vibewatch"]
    mounts = {target: source for source, target in bind_mounts(service).items()}
    secrets = secret_files(service, tmp_path)
    environ = {}
    for key, value in service["environment"].items():
        assert key.startswith("VIBEWATCH_"), key
        if key == "VIBEWATCH_CONFIG":
            # the site's copy of compose.toml, which the setup makes
            assert mounts[value] == "./site/vibewatch.toml"
            assert "install -m 600 compose.toml site/vibewatch.toml" in setup_script()
            value = str(DEPLOY / "compose.toml")
        else:
            assert value in secrets, f"{key}: only secret files are given here, not {value}"
            value = secrets[value]
        environ[key] = value
    config = load_config(environ=environ)
    assert config.mqtt.password.reveal() == "s3cret-value"
    assert config.influx.token.reveal() == "s3cret-value"
    assert config.mqtt.tls_ca_file is not None
    # Grafana gets every variable the site's data source names
    grafana = compose()["services"]["grafana"]
    named = set(re.findall(r"\$(VIBEWATCH_[A-Z_]+)", datasource_yaml(config.influx)))
    assert named == {"VIBEWATCH_INFLUX_TOKEN"}
    exported = set(re.findall(r"export (VIBEWATCH_[A-Z_]+)=", " ".join(grafana["entrypoint"])))
    assert named <= exported | set(grafana.get("environment", {}))
    load_config(environ=dict.fromkeys(exported, "x"))  # the names are configuration keys


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert "whsec_" not in text
    for name, service in compose()["services"].items():
        for key, value in service.get("environment", {}).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret inline"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"
                assert str(value).removeprefix("/run/secrets/") in service["secrets"]
    toml = (DEPLOY / "compose.toml").read_text()
    assert not re.search(r"^\s*(password|token|secrets)\s*=", toml, re.M)


def test_the_broker_port_and_certificate_agree() -> None:
    conf = (DEPLOY / "mosquitto.conf").read_text()
    listeners = re.findall(r"^listener (\d+)", conf, re.M)
    assert listeners == ["8883"]
    mosquitto = compose()["services"]["mosquitto"]
    assert [p.split(":")[-1] for p in mosquitto["ports"]] == listeners
    site = load_config(path=DEPLOY / "compose.toml", environ={"VIBEWATCH_INFLUX_TOKEN": "x"})
    assert str(site.mqtt.port) == listeners[0]
    assert site.mqtt.host in compose()["services"]  # the broker's service name
    # the certificate broker-cert issues for its first host, the name the back end dials
    assert f"certfile /etc/mosquitto/vibewatch/broker/{site.mqtt.host}.crt" in conf
    assert f"broker-cert {site.mqtt.host} " in setup_script()
    assert bind_mounts(mosquitto)["./site/broker"].startswith("/etc/mosquitto/vibewatch")
    assert bind_mounts(mosquitto)["./mosquitto.conf"] in mosquitto["command"]
    assert re.search(r"^allow_anonymous false$", conf, re.M)


def unit_lines(path: Path) -> list[tuple[str, str]]:
    """``(key, value)`` of every setting of a unit file, in order (keys repeat)."""
    out = []
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


def test_the_units_are_there() -> None:
    assert [u.name for u in UNITS] == ["vibewatch-ingest@.service", "vibewatch.service"]
    assert ("Type", "notify") in unit_lines(DEPLOY / "systemd" / "vibewatch.service")


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_a_unit_runs_a_vibewatch_command_with_configuration_keys(
    unit: Path, tmp_path: Path
) -> None:
    settings = unit_lines(unit)
    (command,) = [value for key, value in settings if key == "ExecStart"]
    argv = shlex.split(command)
    assert argv[0] == "/usr/local/bin/vibewatch"
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    credentials = {}
    for key, value in settings:
        if key == "LoadCredential":
            name, _, source = value.partition(":")
            assert source.startswith("/etc/mosquitto/vibewatch/"), value
            credentials[name] = tmp_path / name
            credentials[name].write_text("s3cret-value\n")
    environ = {}
    for key, value in settings:
        if key == "Environment":
            name, _, value = value.partition("=")
            if name == "VIBEWATCH_CONFIG":
                continue  # the host's file
            if value.startswith("%d/"):  # a credential's copy
                value = str(credentials[value.removeprefix("%d/")])
            environ[name] = value.replace("%i", "1")
    config = load_config(environ=environ)
    assert config.mqtt.username.startswith("svc.")
    assert config.mqtt.password.reveal() == "s3cret-value"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    for unit in UNITS:
        # an instance of the template; a command that exists here in the place of the
        # installed one (systemd-analyze checks that it is executable)
        name = unit.name.replace("@.", "@1.")
        text = unit.read_text().replace("/usr/local/bin/vibewatch", sys.executable)
        (tmp_path / name).write_text(text)
    files = sorted(str(p) for p in tmp_path.iterdir())
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True
    )
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr
