"""Fixtures for tests that run the ingestion service against real servers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vibewatch.testing.ingest import Publisher, ServiceProcess, ingest_env
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto

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
def publisher(mosquitto: LocalMosquitto) -> Iterator[Publisher]:
    """A retrying QoS 1 publisher connected to the test broker."""
    pub = Publisher(mosquitto.port)
    yield pub
    pub.close()
