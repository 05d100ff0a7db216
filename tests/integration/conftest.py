"""Fixtures for tests that run the ingestion service against real servers."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vibewatch.alerts.signing import new_secret
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.models.registry import Registry
from vibewatch.protocol import DEFAULT_PREFIX
from vibewatch.sim import ManualClock, Scenario
from vibewatch.sim.run import Simulation
from vibewatch.testing.ingest import Publisher, ServiceProcess, ingest_env
from vibewatch.testing.models import factory_version
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto
from vibewatch.testing.webhooks import LocalReceiver

_ids = itertools.count()


@pytest.fixture
def start_ingest(
    mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, influx_db: str, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``vibewatch ingest`` processes; they are stopped after the test.

    The factory takes the command's arguments, ``client_id``, ``wait`` (``False``: do
    not wait for the subscription) and ``VIBEWATCH_*`` variables as keywords.
    """
    started: list[ServiceProcess] = []

    def factory(
        *args: str, client_id: str = "ingest-test", wait: bool = True, **env: str
    ) -> ServiceProcess:
        workdir = tmp_path / f"ingest-{next(_ids)}"
        workdir.mkdir()
        environment = ingest_env(
            mqtt_port=mosquitto.port,
            influx_url=influxdb.url,
            database=influx_db,
            data_home=workdir / "home",
            client_id=client_id,
        )
        environment.update(env)
        process = ServiceProcess(environment, workdir, args)
        process.start(wait=wait)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.close()


@pytest.fixture
def serve(
    mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, influx_db: str, tmp_path: Path
) -> Iterator[ServiceProcess]:
    """``vibewatch serve`` as a process of its own on the test servers (its data home in the
    test's directory, its environment in ``.env``); closed after the test."""
    env = ingest_env(
        mqtt_port=mosquitto.port,
        influx_url=influxdb.url,
        database=influx_db,
        data_home=tmp_path / "home",
        client_id="serve-test",
    )
    process = ServiceProcess(env, tmp_path, command="serve")
    process.start()
    yield process
    process.close()


@pytest.fixture
def model_key(tmp_path: Path) -> Ed25519PrivateKey:
    """The signing key of the data home ``tmp_path/home`` (:func:`serve`'s), where version 2
    of the factory model is registered, signed with it: a model to roll out to devices that
    trust the key."""
    home = tmp_path / "home"
    generate_keypair(home / "keys" / "model-signing.key", home / "keys" / "model-signing.pub")
    key = load_private_key(home / "keys" / "model-signing.key")
    factory_version(tmp_path / "v2", key, 2)
    with Registry(home / "models", home / "state.db", key.public_key()) as registry:
        registry.register(tmp_path / "v2")
    return key


@pytest.fixture
def serve_with_model(model_key: Ed25519PrivateKey, serve: ServiceProcess) -> ServiceProcess:
    """:func:`serve`, started on a data home that holds :func:`model_key`'s model (its
    controller reads the registry's key when it starts)."""
    return serve


@pytest.fixture
def publisher(mosquitto: LocalMosquitto) -> Iterator[Publisher]:
    """A retrying QoS 1 publisher connected to the test broker."""
    pub = Publisher(mosquitto.port)
    yield pub
    pub.close()


@pytest.fixture
def manual_simulation(mosquitto: LocalMosquitto) -> Callable[..., tuple[Simulation, ManualClock]]:
    """Builds a :class:`Simulation` on the test broker with a clock the test advances.

    The factory takes the scenario, then ``settings`` (the device layer's; 5-window
    telemetry batches and no feature vectors unless given), ``blob`` (the factory model
    unless given), ``public_key`` (a fresh one unless given), ``prefix`` and
    ``start_wall_ms`` (the clock's wall time at 0; a fixed day in the past unless
    given). Links reconnect after 0.05 s, within a step of a simulated second.
    """

    def factory(
        scenario: Scenario,
        *,
        settings: DeviceSettings | None = None,
        blob: bytes | None = None,
        public_key: Ed25519PublicKey | None = None,
        prefix: str = DEFAULT_PREFIX,
        start_wall_ms: int | None = None,
    ) -> tuple[Simulation, ManualClock]:
        clock = ManualClock() if start_wall_ms is None else ManualClock(start_wall_ms)
        simulation = Simulation(
            scenario,
            blob if blob is not None else FACTORY_MODEL.read_bytes(),
            public_key or Ed25519PrivateKey.generate().public_key(),
            host="127.0.0.1",
            port=mosquitto.port,
            prefix=prefix,
            settings=settings or DeviceSettings(batch_windows=5, features_every=0),
            clock=clock,
            reconnect_s=0.05,
        )
        return simulation, clock

    return factory


@pytest.fixture
def secret() -> str:
    """A new Standard Webhooks secret."""
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[LocalReceiver]:
    """A webhook receiver on loopback that verifies signatures with ``secret``."""
    with LocalReceiver([secret]) as local:
        yield local


@pytest.fixture
def start_alerts(
    tmp_path: Path, mosquitto: LocalMosquitto, receiver: LocalReceiver, secret: str
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``vibewatch alerts serve`` (data home ``tmp_path/home``) with the receiver
    ``oncall`` at :func:`receiver`; the factory takes ``VIBEWATCH_*`` variables over the
    defaults (grouped by alertname, waits of 8 s and 1 s, the sustained-score rule off)."""
    started: list[ServiceProcess] = []

    def factory(**env: str) -> ServiceProcess:
        table = {"oncall": {"url": receiver.url, "secrets": [secret], "timeout": 5}}
        environment = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
        environment |= {
            "VIBEWATCH_DATA_HOME": str(tmp_path / "home"),
            "VIBEWATCH_MQTT_PORT": str(mosquitto.port),
            "VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table),
            "VIBEWATCH_ALERTS_GROUP_WAIT": "8",
            "VIBEWATCH_ALERTS_GROUP_INTERVAL": "1",
            "VIBEWATCH_ALERTS_EXTERNAL_URL": "http://vibewatch.example/",
            "VIBEWATCH_ALERTS_RULES": json.dumps({"AnomalyScoreSustained": {"enabled": False}}),
            **env,
        }
        process = ServiceProcess(environment, tmp_path, ("serve",), command="alerts", name="alerts")
        process.start()
        started.append(process)
        return process

    yield factory
    for process in started:
        process.close()
