"""Shared fixtures: real Mosquitto and InfluxDB processes on free loopback ports.

Each fixture starts its own server in its own ``tmp_path`` subdirectory for one
test and stops it afterwards, also when the test fails (a failed test's
teardown prints the server's log tail into the report). Starting is cheap
(measured median: mosquitto 25 ms, influxd 55 ms; stopping 3 ms each), so every
test gets fresh servers and no state leaks between tests.

Tests under ``tests/integration/``, and any test that uses these fixtures, get
the ``integration`` marker: ``pytest -m "not integration"`` runs the pure tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, LocalServer

INTEGRATION_DIR = Path(__file__).parent / "integration"
SERVER_FIXTURES = frozenset({"mosquitto", "influxdb", "influx_db"})
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that talk to real server processes as ``integration``."""
    for item in items:
        in_dir = INTEGRATION_DIR in item.path.parents
        uses_servers = not SERVER_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
        if in_dir or uses_servers:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item so fixtures can see whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@contextmanager
def _served(server: LocalServer, request: pytest.FixtureRequest) -> Iterator[None]:
    """Run ``server`` for the block; on a failed test, print its log tail first."""
    server.start()
    try:
        yield
    finally:
        reports = request.node.stash.get(_REPORTS, {})
        if any(r.failed for r in reports.values()):
            print(f"--- {server!r}: last lines of {server.log_path} ---")
            print(server.log_tail(40))
        server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalMosquitto]:
    """A Mosquitto broker with the no-loss settings, started for this test."""
    broker = LocalMosquitto(workdir=tmp_path / "mosquitto")
    with _served(broker, request):
        yield broker


@pytest.fixture
def influxdb(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalInfluxDB]:
    """An InfluxDB 1.x server, started for this test."""
    server = LocalInfluxDB(workdir=tmp_path / "influxdb")
    with _served(server, request):
        yield server


@pytest.fixture
def influx_db(influxdb: LocalInfluxDB) -> str:
    """The name of a database just created on :func:`influxdb`."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.create_database(name)
    return name
