"""A site as docs/deploy.md sets it up, on real servers: the setup's shell steps run as
written (``vibewatch devices broker-cert``, ``provision``, ``dashboards export`` as the
command line), Mosquitto runs ``deploy/mosquitto.conf`` with only its paths and port
moved here, and ``vibewatch serve`` runs with the environment and configuration file
``deploy/compose.yaml`` gives it: through TLS as its own broker user ``svc.serve``, its
password from ``VIBEWATCH_MQTT_PASSWORD_FILE``. A simulated device with its own
credentials sends telemetry (ingest), is calibrated by ``vibewatch devices calibrate``
(OTA commands) and goes offline (alerts, a signed webhook); the password never shows
in serve's log."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import standardwebhooks
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.sim import ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, free_port
from vibewatch.testing.webhooks import LocalReceiver

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEVICE = "sim-0001"


def run_setup(site: Path) -> None:
    """Run the setup block of docs/deploy.md in ``site`` (a copy of deploy/'s files),
    with the broker's name the loopback address and ``vibewatch`` this checkout's."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = text.split("<!-- setup:begin -->")[1].split("<!-- setup:end -->")[0]
    script = block.strip().removeprefix("```sh").removesuffix("```")
    assert "SITE_HOST=broker.example.net\n" in script
    script = script.replace("SITE_HOST=broker.example.net\n", "SITE_HOST=127.0.0.1\n")
    for name in ("compose.toml", "compose.yaml", "mosquitto.conf"):
        shutil.copy(DEPLOY / name, site / name)
    tools = site / "bin"
    tools.mkdir()
    command = tools / "vibewatch"
    command.write_text(f'#!/bin/sh\nexec {sys.executable} -m vibewatch "$@"\n')
    command.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    env["PATH"] = f"{tools}:{env['PATH']}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def broker_config(site: Path, port: int) -> str:
    """deploy/mosquitto.conf with its paths moved into ``site`` and its listener to
    ``port`` on loopback, run as this user."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    (site / "persistence").mkdir()
    moves = {
        "persistence_location /var/lib/mosquitto/": f"persistence_location {site}/persistence/",
        "/etc/mosquitto/vibewatch/": f"{site}/site/broker/",
        "listener 8883\n": f"listener {port} 127.0.0.1\n",
    }
    for old, new in moves.items():
        assert old in text, old
        text = text.replace(old, new)
    return text + f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"


def compose_env(site: Path) -> dict[str, str]:
    """The environment compose gives the vibewatch service, its secrets and its mounted
    configuration file at their places in ``site``."""
    document: dict[str, Any] = yaml.safe_load((site / "compose.yaml").read_text())
    service = document["services"]["vibewatch"]
    places = {
        f"/run/secrets/{name}": document["secrets"][name]["file"] for name in service["secrets"]
    }
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        places[target] = source
    return {key: str(site / places[value]) for key, value in service["environment"].items()}


def test_a_site_as_the_deploy_docs_set_it_up(
    tmp_path: Path,
    influxdb: LocalInfluxDB,
    influx_db: str,
    receiver: LocalReceiver,
    secret: str,
) -> None:
    site = tmp_path / "deploy"
    site.mkdir()
    run_setup(site)
    document = yaml.safe_load((site / "compose.yaml").read_text())
    mounted = [v.split(":")[0] for s in document["services"].values() for v in s.get("volumes", [])]
    made = [m for m in mounted if m.startswith("./site/")]
    made += [s["file"] for s in document["secrets"].values()]
    assert all((site / path).exists() for path in made), made
    added = subprocess.run(
        [sys.executable, "-m", "vibewatch", "devices", "provision", DEVICE,
         "--dir", str(site / "site/broker")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    broker_dir = site / "site" / "broker"
    service_password = (broker_dir / "services" / "svc.serve.password").read_text().strip()
    device_password = (broker_dir / "devices" / f"{DEVICE}.password").read_text().strip()

    port = free_port()
    config = broker_config(site, port)
    broker = LocalMosquitto(workdir=tmp_path / "mosquitto", port=port, config=config)
    broker.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    env = base | compose_env(site) | {
        "VIBEWATCH_MQTT_HOST": "127.0.0.1",
        "VIBEWATCH_MQTT_PORT": str(port),
        "VIBEWATCH_INFLUX_API": "v1",
        "VIBEWATCH_INFLUX_URL": influxdb.url,
        "VIBEWATCH_INFLUX_DATABASE": influx_db,
        "VIBEWATCH_DATA_HOME": str(tmp_path / "home"),
        "VIBEWATCH_LOG_LEVEL": "debug",
        "VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.1",
        "VIBEWATCH_ALERTS_RECEIVERS": json.dumps(
            {"oncall": {"url": receiver.url, "secrets": [secret], "timeout": 5}}
        ),
        "VIBEWATCH_ALERTS_GROUP_WAIT": "1",
    }  # fmt: skip
    serve = ServiceProcess(env, tmp_path, command="serve")
    clock = ManualClock(time.time_ns() // 1_000_000)
    simulation = Simulation(
        Scenario(devices=1, seed=5),
        FACTORY_MODEL.read_bytes(),
        Ed25519PrivateKey.generate().public_key(),
        host="127.0.0.1",
        port=port,
        username=DEVICE,
        password=device_password,
        tls_ca_file=str(broker_dir / "ca" / "ca.crt"),
        settings=DeviceSettings(batch_windows=5, features_every=0, calibrate_windows=5),
        clock=clock,
        reconnect_s=0.05,
    )

    def step(seconds: int) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            simulation.step()
            time.sleep(0.02)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vibewatch", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    try:
        serve.start()  # ready: ingest's subscriptions granted through TLS, as svc.serve
        simulation.start()
        step(6)
        # ingest: the device's telemetry, through TLS with its own password
        wait_for(lambda: influxdb.count(influx_db, "reading", "score") >= 5, 20, "readings")
        # OTA: the controller saw the device's status; a command reaches it and it answers
        wait_for(lambda: "online" in cli("devices", "list").stdout, 20, "the device's status")
        answered: list[subprocess.CompletedProcess[str]] = []
        waiting = threading.Thread(
            target=lambda: answered.append(
                cli("devices", "calibrate", DEVICE, "--wait", "30", "--json")
            )
        )
        waiting.start()
        while waiting.is_alive():
            step(1)
        (reply,) = json.loads(answered[0].stdout)
        assert reply["outcome"] == "done" and reply["threshold"] > 0, answered[0].stderr
        # alerts: the device goes away, its will makes DeviceOffline, a signed webhook
        simulation.kill(DEVICE)
        receiver.wait_accepted(1, timeout=30)
        (request,) = receiver.requests[:1]
        body = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        assert body["groupKey"] == '{}:{alertname="DeviceOffline"}'
        assert serve.stop() == 0
    finally:
        simulation.close()
        serve.close()
        broker.stop()
    log = serve.log()
    assert "svc.serve" in log  # the configuration is logged, its user name too ...
    assert service_password not in log and device_password not in log  # ... no password
