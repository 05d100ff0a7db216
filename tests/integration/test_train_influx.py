"""Training data from InfluxDB: published through MQTT, ingested by the real service, loaded.

Three devices publish feature vectors of real healthy vibration (the CWRU healthy
recording through the devices' C DSP) and anomaly events; one of them also publishes
vectors of another feature spec. :func:`publish_scenario` does the publishing and
returns what a loader must find. ``vibewatch train --start --end`` then runs in its own
process on that data, as a user runs it: package, registry, quality gate and refusals.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
import scipy.io

from vibewatch.config import Config, InfluxConfig, Secret, load_config
from vibewatch.edge import FeatureSpec, Model, features_batch
from vibewatch.errors import DataError
from vibewatch.influx.query import InfluxQL, QueryError
from vibewatch.models.keys import load_public_key
from vibewatch.models.package import MIN_GOLDEN, verify_package
from vibewatch.protocol import EventKind
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, free_port
from vibewatch.train import sources
from vibewatch.train.influx_source import load_training_features

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
SPEC = FeatureSpec.default(48_000)
OTHER_SPEC = "fs-8000-256-4-other"
STEP_MS = 1000
IN_RANGE = 120  # vectors per device inside the range


@functools.cache
def healthy_features(count: int) -> npt.NDArray[np.float32]:
    """Features of ``count`` windows of the CWRU healthy drive-end signal, each an eighth of
    a window after the one before."""
    signal = scipy.io.loadmat(DATA / "cwru" / "normal_0_97.mat")["X097_DE_time"].ravel()
    hop = SPEC.window // 8
    starts = np.arange(count) * hop
    assert starts[-1] + SPEC.window <= signal.size, "not enough signal for that many windows"
    windows = np.stack([signal[s : s + SPEC.window] for s in starts])
    return features_batch(windows, SPEC)


@dataclass
class Scenario:
    """What was published and what a loader of ``[start, end)`` must return.

    Attributes:
        config: Configuration pointing at the test InfluxDB.
        start: Start of the range (included).
        end: End of the range (excluded).
        healthy: Per device, ``(times_ms, vectors)`` of the healthy vectors in the range.
        excluded: Per device, vectors in the range that lie inside anomalies.
    """

    config: Config
    start: datetime
    end: datetime
    healthy: dict[str, tuple[list[int], npt.NDArray[np.float32]]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)

    def expected(
        self, devices: Sequence[str] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], tuple[str, ...]]:
        """Healthy rows of ``devices`` (all when None) ordered by time, then device."""
        rows = sorted(
            (t, device, i)
            for device, (times, _) in self.healthy.items()
            if devices is None or device in devices
            for i, t in enumerate(times)
        )
        vectors = np.stack([self.healthy[device][1][i] for _, device, i in rows])
        times = np.array([t for t, _, _ in rows], dtype=np.int64)
        return vectors, times, tuple(device for _, device, _ in rows)


def publish_scenario(
    publisher: Publisher, influxdb: LocalInfluxDB, database: str, data_home: Path
) -> Scenario:
    """Publish three devices' vectors and anomaly events; wait until all are in InfluxDB.

    In the range ``[t0, t0 + IN_RANGE s)``, one vector a second per device:

    * ``pump-1``: also two vectors before the range and one at its end (both left
      out by the range); an anomaly from 20 s to 30 s; plus ten vectors of another
      feature spec, eight values long;
    * ``pump-2``: an anomaly that began before the range and ends at 10 s, another
      from 70 s to 75 s;
    * ``fan-1``: an anomaly that closed before the range, and one from 100 s that
      is still open at the end.

    The ingest service must be running.
    """
    t0 = (int(time.time()) - 7200) * 1000
    scenario = Scenario(
        config=Config(
            data_home=data_home, influx=InfluxConfig(url=influxdb.url, database=database)
        ),
        start=datetime.fromtimestamp(t0 / 1000, UTC),
        end=datetime.fromtimestamp(t0 / 1000, UTC) + timedelta(seconds=IN_RANGE),
    )
    # device: (seconds of its vectors, its events (kind, second), seconds inside anomalies)
    plans: dict[str, tuple[range, list[tuple[EventKind, int]], set[int]]] = {
        "pump-1": (
            range(-2, IN_RANGE + 1),
            [(EventKind.START, 20), (EventKind.END, 30)],
            set(range(20, 31)),
        ),
        "pump-2": (
            range(IN_RANGE),
            [
                (EventKind.START, -5),
                (EventKind.END, 10),
                (EventKind.START, 70),
                (EventKind.END, 75),
            ],
            {*range(0, 11), *range(70, 76)},
        ),
        "fan-1": (
            range(IN_RANGE),
            [(EventKind.START, -20), (EventKind.END, -10), (EventKind.START, 100)],
            set(range(100, IN_RANGE)),
        ),
    }
    # Windows from all over the recording in a fixed shuffled order, so that every stretch
    # of the range looks alike, as a steady healthy machine's does: the newest vectors, which
    # a training run holds out, are then not one particular stretch of the recording.
    count = sum(len(steps) for steps, _, _ in plans.values())
    vectors = healthy_features(count)[np.random.default_rng(0).permutation(count)]
    used = 0
    events = 0
    for device, (steps, marks, inside) in plans.items():
        mine = vectors[used : used + len(steps)]
        used += len(steps)
        times = [t0 + k * STEP_MS for k in steps]
        publisher.publish_features(device, SPEC.spec_id, mine, times, seq0=1000)
        for n, (kind, k) in enumerate(marks):
            publisher.publish_event(device, kind, t0 + k * STEP_MS, seq=1000 + k + n)
            events += 1
        healthy = [i for i, k in enumerate(steps) if 0 <= k < IN_RANGE and k not in inside]
        scenario.healthy[device] = ([times[i] for i in healthy], mine[healthy])
        scenario.excluded[device] = len(inside)
    other = (np.arange(80).reshape(10, 8) / 3).astype(np.float32)
    publisher.publish_features("pump-1", OTHER_SPEC, other, [t0 + k * STEP_MS for k in range(10)])

    total = used + len(other)
    wait_for(
        lambda: (
            influxdb.count(database, "features", "seq") == total
            and influxdb.count(database, "anomaly", "seq") == events
        ),
        30,
        f"{total} feature vectors and {events} anomaly events in InfluxDB",
    )
    return scenario


@pytest.fixture
def scenario(
    start_ingest: Callable[..., ServiceProcess],
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
    tmp_path: Path,
) -> Scenario:
    """The scenario of :func:`publish_scenario`, ingested by a real ingest service."""
    start_ingest()
    return publish_scenario(publisher, influxdb, influx_db, tmp_path / "home")


def test_healthy_vectors_of_the_spec_load_bit_for_bit(scenario: Scenario) -> None:
    progress: list[tuple[int, int]] = []
    loaded = load_training_features(
        scenario.config,
        spec_id=SPEC.spec_id,
        start=scenario.start,
        end=scenario.end,
        progress=lambda done, total: progress.append((done, total)),
    )
    vectors, times, devices = scenario.expected()
    assert loaded.features.dtype == np.float32
    assert loaded.features.shape == (len(times), SPEC.n_features)
    assert np.array_equal(loaded.features.view(np.uint32), vectors.view(np.uint32))
    assert np.array_equal(loaded.times_ms, times)
    assert loaded.devices == devices
    assert loaded.excluded_count == sum(scenario.excluded.values()) == 11 + 17 + 20
    assert {d: (c.healthy, c.excluded) for d, c in loaded.per_device.items()} == {
        d: (len(scenario.healthy[d][0]), scenario.excluded[d]) for d in scenario.healthy
    }
    assert loaded.spec_id == SPEC.spec_id
    assert (loaded.start, loaded.end) == (scenario.start, scenario.end)
    found = 3 * IN_RANGE
    assert progress[-1] == (found, found)


def test_devices_are_selected_by_id_and_glob(scenario: Scenario) -> None:
    def load(devices: list[str]) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
        loaded = load_training_features(
            scenario.config,
            spec_id=SPEC.spec_id,
            start=scenario.start,
            end=scenario.end,
            devices=devices,
            min_windows=1,
        )
        return loaded.times_ms, loaded.devices

    for devices, want in (
        (["pump-*"], ["pump-1", "pump-2"]),
        (["fan-1"], ["fan-1"]),
        (["pump-?", "fan-1"], ["pump-1", "pump-2", "fan-1"]),
        (["fan-1", "pump-2"], ["fan-1", "pump-2"]),
    ):
        _, times, names = scenario.expected(want)
        got_times, got_names = load(devices)
        assert np.array_equal(got_times, times), devices
        assert got_names == names, devices


def test_the_vectors_inside_anomalies_are_the_faulty_sets_of_their_devices(
    scenario: Scenario,
) -> None:
    loaded = load_training_features(
        scenario.config, spec_id=SPEC.spec_id, start=scenario.start, end=scenario.end
    )
    assert {name: len(rows) for name, rows in loaded.anomalous.items()} == scenario.excluded
    data = sources.from_influx(
        scenario.config,
        SPEC,
        start=scenario.start,
        end=scenario.end,
        devices=["fan-1"],
        faulty_devices=["pump-*"],
        min_windows=1,
    )
    assert len(data.healthy) == len(scenario.healthy["fan-1"][0])  # the healthy device's
    assert {name: len(rows) for name, rows in data.faulty.items()} == {
        "pump-1 anomalies": scenario.excluded["pump-1"],
        "pump-2 anomalies": scenario.excluded["pump-2"],
    }
    assert np.array_equal(data.faulty["pump-1 anomalies"], loaded.anomalous["pump-1"])
    assert data.source["faulty_devices"] == ["pump-1", "pump-2"]
    # A device whose anomalies lie outside the range has nothing to give.
    before = scenario.start - timedelta(seconds=30)
    with pytest.raises(DataError) as refused:
        sources.from_influx(
            scenario.config,
            SPEC,
            start=before,
            end=scenario.start + timedelta(seconds=10),
            faulty_devices=["pump-1"],
            min_windows=1,
        )
    assert str(refused.value).startswith(
        f"no feature vectors of spec {SPEC.spec_id} inside an anomaly of pump-1 from "
    )


def refusal(scenario: Scenario, **arguments: Any) -> str:
    """The message of the DataError that loading the scenario's range with ``arguments`` raises."""
    with pytest.raises(DataError) as refused:
        load_training_features(
            scenario.config,
            spec_id=SPEC.spec_id,
            start=scenario.start,
            end=scenario.end,
            **arguments,
        )
    return str(refused.value)


def test_too_few_healthy_windows_are_refused_with_the_counts(scenario: Scenario) -> None:
    healthy = sum(len(times) for times, _ in scenario.healthy.values())
    excluded = sum(scenario.excluded.values())
    message = refusal(scenario, min_windows=healthy + 1)
    assert f"{healthy} healthy of {healthy + excluded} found ({excluded} excluded" in message
    assert f"{healthy + 1} required" in message
    assert SPEC.spec_id in message and scenario.start.isoformat() in message

    fan = len(scenario.healthy["fan-1"][0])
    message = refusal(scenario, devices=["fan-1", "nobody-*"], min_windows=fan + 1)
    assert f"{fan} healthy of {fan + scenario.excluded['fan-1']} found" in message
    assert "devices: fan-1, nobody-*" in message
    assert "no vectors at all from: nobody-*" in message

    # The default minimum comes from the configuration.
    assert scenario.config.train.min_healthy_windows <= healthy
    assert (
        len(
            load_training_features(
                scenario.config, spec_id=SPEC.spec_id, start=scenario.start, end=scenario.end
            ).times_ms
        )
        == healthy
    )
    message = refusal(scenario, devices=["fan-1"])
    assert f"{scenario.config.train.min_healthy_windows} required" in message


def test_a_vector_with_a_missing_field_is_refused(
    influxdb: LocalInfluxDB, influx_db: str, tmp_path: Path
) -> None:
    t0 = (int(time.time()) - 3600) * 1000
    influxdb.write_lines(
        influx_db,
        f"features,device=d1,spec=s1 seq=1i,f0=1.5,f1=2.5 {t0 * 1_000_000}\n"
        f"features,device=d2,spec=s1 seq=1i,f0=1.5 {(t0 + 1000) * 1_000_000}\n",
    )
    config = Config(data_home=tmp_path, influx=InfluxConfig(url=influxdb.url, database=influx_db))
    start = datetime.fromtimestamp(t0 / 1000, UTC)
    with pytest.raises(
        DataError, match=r"device 'd2' at .* \(\d+ ms\), spec s1, has 1 values .*missing f1"
    ):
        load_training_features(
            config, spec_id="s1", start=start, end=start + timedelta(hours=1), min_windows=1
        )


# --- a training run on the ingested data ------------------------------------------

MODEL_ID = "vibewatch-ae"


def write_config(scenario: Scenario, path: Path) -> Path:
    """A TOML configuration: the scenario's InfluxDB and data home, training limits for it."""
    influx = scenario.config.influx
    path.write_text(
        f"data_home = {json.dumps(str(scenario.config.data_home))}\n"
        "[influx]\n"
        f"url = {json.dumps(influx.url)}\n"
        f"database = {json.dumps(influx.database)}\n"
        "[train]\n"
        # Below the scenario's 312 healthy vectors, above what one device has on its own.
        "min_healthy_windows = 200\n"
        # A run on 312 vectors calibrates its threshold on 50 of them: a rate they can
        # resolve (not the default 0.5 %, which would need hundreds).
        "false_alarm_rate = 0.1\n",
        encoding="utf-8",
    )
    return path


def vibewatch(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``vibewatch ARGS --config CONFIG`` in its own process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vibewatch", *args, "--config", str(config)],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")},
            **(env or {}),
        },
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def train_args(scenario: Scenario, out: Path, *extra: str) -> list[str]:
    """``vibewatch train`` on the scenario's range, every device, a small fast network."""
    return [
        "train",
        "--start",
        scenario.start.isoformat(),
        "--end",
        scenario.end.isoformat(),
        "--sample-rate",
        str(SPEC.sample_rate_hz),
        "--device",
        "pump-*",
        "--device",
        "fan-1",
        "--out",
        str(out),
        "--epochs",
        "20",
        "--hidden",
        "16,4",
        *extra,
    ]


def registered(config: Path) -> dict[int, dict[str, Any]]:
    """``vibewatch models list --json``, keyed by version."""
    listed = vibewatch(config, "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert {e["model_id"] for e in entries} <= {MODEL_ID}
    return {e["version"]: e for e in entries}


@pytest.fixture
def trained_config(scenario: Scenario, tmp_path: Path) -> Path:
    """A configuration for the scenario whose signing key pair was just generated."""
    config = write_config(scenario, tmp_path / "vibewatch.toml")
    generated = vibewatch(config, "keys", "generate")
    assert generated.returncode == 0, generated.stderr
    return config


def test_a_training_run_learns_from_the_ingested_vectors(
    scenario: Scenario, trained_config: Path, tmp_path: Path
) -> None:
    config = trained_config
    keys = load_config(config).train
    public_key = load_public_key(keys.verify_key)
    loaded = load_training_features(
        scenario.config,
        spec_id=SPEC.spec_id,
        start=scenario.start,
        end=scenario.end,
        devices=["pump-*", "fan-1"],
    )

    out = tmp_path / "run-1"
    first = vibewatch(config, *train_args(scenario, out, "--json"))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["model_id"], summary["version"], summary["spec"]) == (MODEL_ID, 2, SPEC.spec_id)
    assert summary["auc"] == {} and summary["detected"] == {}
    gate = summary["gate"]
    assert gate[0].startswith("fits the devices: "), gate
    assert gate[1].startswith(("false alarms within target: ", "false alarms above target: "))
    assert gate[2].startswith(
        ("estimated false-alarm rate within", "estimated false-alarm rate above")
    )
    assert all(reason.startswith("note: ") for reason in gate[3:-1]), gate
    assert gate[-1] == "AUC not compared: no faulty data in the held-out set"
    # A fresh registry has no champion to beat: the devices and the false alarms decide.
    promoted = gate[1].startswith("false alarms within")
    assert summary["status"] == ("champion" if promoted else "rejected")

    package = verify_package(out / "package", public_key)
    assert Path(summary["package"]) == out / "package"
    assert Path(summary["card"]).is_file() and Path(summary["card"]).parent == out
    manifest = package.manifest
    assert (package.model_id, package.version) == (MODEL_ID, 2)
    assert manifest["feature_spec"]["id"] == SPEC.spec_id
    assert manifest["training_data"] == {
        "source": "influxdb",
        "start": scenario.start.isoformat(),
        "end": scenario.end.isoformat(),
        "devices": ["fan-1", "pump-1", "pump-2"],
        "windows": len(loaded.times_ms),
        "excluded_in_anomalies": loaded.excluded_count,
    }
    assert loaded.excluded_count == sum(scenario.excluded.values())
    # Every loaded vector went into the run: held out, fitted on or calibrated on.
    metrics = manifest["metrics"]
    used = metrics["held_out_healthy_windows"] + sum(
        metrics["training"][part] for part in ("fit_windows", "calibration_windows")
    )
    assert used == len(loaded.times_ms)

    # The golden vectors are what the C engine computes, bit for bit.
    golden = manifest["golden"]
    assert len(golden) >= MIN_GOLDEN
    outputs, scores = Model(package.vwm).run(np.array([g["input"] for g in golden], dtype=np.int8))
    assert outputs.tolist() == [g["output"] for g in golden]
    assert scores.tolist() == [g["score"] for g in golden]

    entries = registered(config)
    assert list(entries) == [2]
    assert entries[2]["status"] == summary["status"]
    assert entries[2]["reason"] == "; ".join(gate)
    assert entries[2]["metrics"] == metrics
    verified = vibewatch(config, "models", "verify", MODEL_ID, "2")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")

    # Again on the same data: version 3, and the gate says why it was or was not promoted.
    second = vibewatch(config, *train_args(scenario, tmp_path / "run-2"))
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == f"{MODEL_ID} v3: {tmp_path / 'run-2' / 'package'}"
    verdict = next(i for i, line in enumerate(lines) if "promoted (" in line)
    reasons = [line.removeprefix("  - ") for line in lines[verdict + 1 :]]
    assert "AUC not compared: no faulty data in the held-out set" in reasons
    assert any(
        line.startswith("false alarms ") and "held-out healthy windows" in line for line in reasons
    ), reasons
    after = registered(config)
    assert list(after) == [2, 3]
    assert after[3]["reason"] == "; ".join(reasons)
    if lines[verdict] == "promoted (champion):":
        assert after[3]["status"] == "champion"
        # A champion it replaced retires; a rejected version stays rejected.
        assert after[2]["status"] == {"champion": "retired"}.get(summary["status"], "rejected")
    else:
        assert lines[verdict] == "not promoted (rejected):"
        assert (after[2]["status"], after[3]["status"]) == (summary["status"], "rejected")


def test_a_run_with_too_few_healthy_windows_is_refused_and_registers_nothing(
    scenario: Scenario, trained_config: Path, tmp_path: Path
) -> None:
    healthy = sum(len(times) for times, _ in scenario.healthy.values())
    excluded = sum(scenario.excluded.values())
    fan = len(scenario.healthy["fan-1"][0])

    # One device alone has fewer than the configured 200; times without an offset are UTC.
    out = tmp_path / "fan"
    utc = {scenario.start.isoformat(): scenario.start, scenario.end.isoformat(): scenario.end}
    args = [
        utc[a].replace(tzinfo=None).isoformat() if a in utc else a
        for a in train_args(scenario, out)
    ]
    at = args.index("pump-*")
    del args[at - 1 : at + 1]  # --device pump-*
    refused = vibewatch(trained_config, *args)
    assert refused.returncode == 2, refused.stderr
    assert f"{fan} healthy of {fan + scenario.excluded['fan-1']} found" in refused.stderr
    assert "200 required" in refused.stderr and "devices: fan-1" in refused.stderr
    assert f"from {scenario.start.isoformat()} to {scenario.end.isoformat()}" in refused.stderr

    # Every device, with the minimum raised from the environment.
    env = {"VIBEWATCH_TRAIN_MIN_HEALTHY_WINDOWS": str(healthy + 1)}
    refused = vibewatch(trained_config, *train_args(scenario, out, "--json"), env=env)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: too few healthy feature vectors to train: ")
    assert f"{healthy} healthy of {healthy + excluded} found ({excluded} excluded" in (
        refused.stderr
    )
    assert f"{healthy + 1} required" in refused.stderr
    assert refused.stdout == ""

    assert not out.exists()
    assert registered(trained_config) == {}


# --- the query client against the real server ---------------------------------


def test_chunked_answers_join_into_whole_series_and_params_bind(
    influxdb: LocalInfluxDB, influx_db: str
) -> None:
    lines = [
        f"m,device=d{i % 2} x={i / 3},n={i}i {(1_600_000_000_000 + i) * 10**6}" for i in range(25)
    ]
    influxdb.write_lines(influx_db, "\n".join(lines))
    client = InfluxQL(url=influxdb.url, database=influx_db, chunk_size=4)
    q = 'SELECT "x", "n" FROM "m" WHERE time >= $from GROUP BY "device"'
    pieces = list(client.stream(q, params={"from": 1_600_000_000_003 * 1_000_000}))
    assert len(pieces) > 2 and pieces[0].partial and not pieces[-1].partial
    series = client.query(q, params={"from": 1_600_000_000_003 * 1_000_000})
    assert [s.tags for s in series] == [{"device": "d0"}, {"device": "d1"}]
    assert series[0].columns == ("time", "x", "n")
    for s in series:
        parity = int(s.tags["device"][1])
        want = [[1_600_000_000_000 + i, i / 3, i] for i in range(3, 25) if i % 2 == parity]
        assert s.values == want


def test_query_errors_name_the_query(influxdb: LocalInfluxDB, influx_db: str) -> None:
    client = InfluxQL(url=influxdb.url, database=influx_db)
    with pytest.raises(QueryError, match=r"'SELEC x FROM m'.*InfluxDB answered 400") as bad:
        client.query("SELEC x FROM m")
    assert bad.value.status == 400
    with pytest.raises(QueryError, match=r"missing parameter: nothing"):
        client.query('SELECT x FROM "m" WHERE x = $nothing')
    elsewhere = InfluxQL(url=influxdb.url, database="no_such_db")
    with pytest.raises(QueryError, match=r"'SELECT x FROM m'.*database not found"):
        elsewhere.query("SELECT x FROM m")
    closed = InfluxQL(url=f"http://127.0.0.1:{free_port()}", database=influx_db, timeout=2)
    with pytest.raises(QueryError, match=r"'SELECT x FROM m'.*InfluxDB at 127.0.0.1:\d+.*refused"):
        closed.query("SELECT x FROM m")


class Answering(http.server.BaseHTTPRequestHandler):
    """Records each query's path and Authorization header; answers one series in two chunks."""

    seen: ClassVar[list[tuple[str, str | None]]] = []
    CHUNKS = (
        b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","x"],'
        b'"values":[[1,0.5]],"partial":true}],"partial":true}]}\n'
        b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","x"],'
        b'"values":[[2,1.5]]}]}]}\n'
    )

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.CHUNKS)))
        self.end_headers()
        self.wfile.write(self.CHUNKS)

    def log_message(self, *args: object) -> None:
        pass


def test_v1_and_v2_configurations_authenticate_and_name_their_database() -> None:
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/base/"
        v1 = InfluxConfig(
            url=url, database="vib", retention_policy="raw", username="ann", password=Secret("pw:1")
        )
        v2 = InfluxConfig(api="v2", url=url, org="acme", bucket="vib/b", token=Secret("tok"))
        for config in (v1, v2):
            (series,) = InfluxQL.from_config(config).query("SELECT x FROM m", params={"a": "b"})
            assert series.values == [[1, 0.5], [2, 1.5]] and not series.partial
        httpd.shutdown()
    paths, authorizations = zip(*Answering.seen, strict=True)
    assert authorizations == ("Basic YW5uOnB3OjE=", "Token tok")
    queries = [urllib.parse.urlsplit(p) for p in paths]
    assert {q.path for q in queries} == {"/base/query"}
    args = [dict(urllib.parse.parse_qsl(q.query)) for q in queries]
    common = {"epoch": "ms", "chunked": "true", "chunk_size": "10000", "q": "SELECT x FROM m"}
    assert args[0] == {**common, "db": "vib", "rp": "raw", "params": '{"a": "b"}'}
    assert args[1] == {**common, "db": "vib/b", "params": '{"a": "b"}'}


# --- the feature spec of the vectors: --spec, by default the champion's -------------

#: A spec the fleet might run that is not the default one: 512-sample windows, 16 bands.
SPEC_B = FeatureSpec.log_bands(48_000, 512, 16, 100.0, 20_000.0)
STEP_B_MS = 250  # spec B windows are shorter: four vectors a second


@functools.cache
def spec_b_features(count: int) -> npt.NDArray[np.float32]:
    """Features of ``count`` half-overlapping spec B windows of the CWRU healthy signal."""
    signal = scipy.io.loadmat(DATA / "cwru" / "normal_0_97.mat")["X097_DE_time"].ravel()
    starts = np.arange(count) * (SPEC_B.window // 2)
    windows = np.stack([signal[s : s + SPEC_B.window] for s in starts])
    return features_batch(windows, SPEC_B)


def register_champion_of_spec_b(config: Path, tmp_path: Path) -> None:
    """File and promote a small spec B model, as if the fleet ran it."""
    from vibewatch.models.keys import load_private_key
    from vibewatch.models.registry import Registry
    from vibewatch.train.job import TrainingData, TrainSettings, train

    cfg = load_config(config)
    key = load_private_key(cfg.train.signing_key)
    data = TrainingData(spec_b_features(400), SPEC_B, {"source": "test"})
    settings = TrainSettings(
        model_id=MODEL_ID, hidden=(8, 4), epochs=5, false_alarm_rate=0.1, min_healthy_windows=100
    )
    trained = train(data, settings, version=2, private_key=key, out_dir=tmp_path / "champion")
    with Registry(cfg.train.registry_dir, cfg.state_db, key.public_key()) as registry:
        registry.register(trained.package.path)
        registry.promote(MODEL_ID, 2, "the fleet runs spec B")


def test_the_champion_spec_is_trained_on_and_spec_chooses_another(
    scenario: Scenario,
    trained_config: Path,
    publisher: Publisher,
    influxdb: LocalInfluxDB,
    influx_db: str,
    tmp_path: Path,
) -> None:
    # pump-1 also publishes spec B vectors over the whole range, four a second.
    before = influxdb.count(influx_db, "features", "seq")
    t0 = int(scenario.start.timestamp() * 1000)
    count = IN_RANGE * 1000 // STEP_B_MS
    times = [t0 + k * STEP_B_MS for k in range(count)]
    publisher.publish_features("pump-1", SPEC_B.spec_id, spec_b_features(count), times)
    wait_for(
        lambda: influxdb.count(influx_db, "features", "seq") == before + count,
        30,
        f"{count} spec B vectors in InfluxDB",
    )
    loaded = load_training_features(
        scenario.config, spec_id=SPEC_B.spec_id, start=scenario.start, end=scenario.end
    )
    assert loaded.devices == ("pump-1",) * len(loaded.devices)
    assert loaded.excluded_count > 0  # pump-1's anomaly covers vectors of every spec
    assert np.array_equal(
        loaded.features.view(np.uint32),
        spec_b_features(count)[[(t - t0) // STEP_B_MS for t in loaded.times_ms]].view(np.uint32),
    )

    # Unknown, or known but without vectors in the range: refused, naming what exists.
    unknown = "fs-48000-512-16-00000000"
    refused = vibewatch(trained_config, *train_args(scenario, tmp_path / "x", "--spec", unknown))
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert f"feature spec {unknown} is unknown" in line
    # Every vector of each spec in the range counts, those inside anomalies too.
    assert line.endswith(
        f"specs with vectors from {scenario.start.isoformat()} to {scenario.end.isoformat()}: "
        f"{SPEC.spec_id} ({3 * IN_RANGE} vectors), {SPEC_B.spec_id} ({count} vectors), "
        f"{OTHER_SPEC} (10 vectors)"
    )
    empty = FeatureSpec.default(8000).spec_id
    args = train_args(scenario, tmp_path / "x", "--spec", empty)
    args[args.index("--sample-rate") + 1] = "8000"
    refused = vibewatch(trained_config, *args)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert f"no feature vectors of spec {empty} from {scenario.start.isoformat()}" in line
    assert f"{SPEC_B.spec_id} ({count} vectors)" in line
    assert not (tmp_path / "x").exists()

    # With a champion of spec B and no --spec, the run trains on the spec B vectors.
    register_champion_of_spec_b(trained_config, tmp_path)
    args = train_args(scenario, tmp_path / "run-b", "--json")
    del args[args.index("--sample-rate") : args.index("--sample-rate") + 2]
    run_b = vibewatch(trained_config, *args)
    assert run_b.returncode == 0, run_b.stderr
    summary = json.loads(run_b.stdout)
    assert (summary["spec"], summary["version"]) == (SPEC_B.spec_id, 3)
    manifest = json.loads((tmp_path / "run-b" / "package" / "manifest.json").read_text())
    assert manifest["feature_spec"]["band_bins"] == list(SPEC_B.band_bins)
    assert manifest["training_data"]["windows"] == len(loaded.times_ms)
    assert manifest["training_data"]["devices"] == ["pump-1"]

    # --spec picks the default spec's vectors instead, the champion notwithstanding.
    run_a = vibewatch(
        trained_config, *train_args(scenario, tmp_path / "run-a", "--spec", SPEC.spec_id, "--json")
    )
    assert run_a.returncode == 0, run_a.stderr
    summary = json.loads(run_a.stdout)
    assert (summary["spec"], summary["version"]) == (SPEC.spec_id, 4)
    # The gate cannot compare AUC with a champion of another spec.
    assert "AUC not compared: no faulty data in the held-out set" in summary["gate"]
