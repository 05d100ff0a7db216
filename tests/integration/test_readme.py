"""Every command in README.md, run as a reader runs it.

Each line of each ```sh block of the README is a command (without its ``# comment``), and
the ```python block is a program. :data:`COMMANDS` names the test that runs each command;
:func:`test_the_readme_commands_are_the_ones_these_tests_run` fails when the README gains
a command that no test runs or loses one that a test expects, and each test fails unless
it ran exactly the commands :data:`COMMANDS` gives it. A command runs as written:
``shlex.split`` of its line, ``vibewatch`` as ``python -m vibewatch`` and ``python3`` as
this interpreter, in its own process; it must exit 0 and leave what it promises.

**The site** (:func:`test_a_site_runs_as_the_readme_says`) runs in a temporary working
directory, where the relative paths of the commands (``site/broker``, ``grafana``,
``grafana.token``, ``runs/dec``) land, with ``VIBEWATCH_CONFIG`` naming a configuration
file the test writes: the test's Mosquitto and InfluxDB, a data home in the temporary
directory, the webhook receiver ``oncall`` (a :class:`~vibewatch.testing.webhooks.
LocalReceiver` that verifies signatures), and short batching, statistics and grouping
intervals so that the data shows within seconds. The one substitution in a command is a
host the test cannot reach: ``https://grafana.example`` is the URL of a
:class:`~vibewatch.testing.grafana.FakeGrafana` on loopback, which accepts the token the
test writes to ``grafana.token``. The broker takes the test's clients without passwords:
the credential commands' files are checked, not loaded into it.

``vibewatch serve`` runs as written in the background from its place in the README (the
test waits for its readiness on ``$NOTIFY_SOCKET``, as systemd would), serves every
command after it, and must exit 0 on SIGTERM at the end. The devices the commands name
are simulated: ``pump-01`` (a healthy machine) and ``pump-02`` (an outer-race fault from
the start, so it raises anomaly events and alerts), each the firmware's C device layer on
its own MQTT connection, on the real clock, trusting the key ``vibewatch keys generate``
makes. The commands run in the README's order but where the data demands another:

- ``vibewatch keys generate`` runs before ``vibewatch serve`` and the devices, which
  trust its key, so that the rollout of version 2 installs;
- the training data is published between ``devices calibrate`` and ``vibewatch train``:
  feature vectors of the factory spec on 2026-12-01 between 06:00 and 08:00 UTC, of
  pump-01's healthy machine and, inside an anomaly event, of pump-02's faulty one, through
  the broker and ingested by serve;
- ``vibewatch dashboards check --since 1h`` runs last, once every panel has data of the
  last hour: ingest statistics, the devices' readings, events and statuses, a rollout and
  alerts. The rollout converges, so the two queries of its failures find none, which the
  check reports without failing.

**The demo** runs as a newcomer runs it, on its embedded defaults (no configuration), in
a temporary working directory; it must leave nothing listening. **CI** runs
``scripts/setup`` and ``scripts/test`` itself (``.ci/run``), which is what is checked of
them. **The firmware** commands, and **the python block** as a program of its own
(``python3 -``), run from the repository root, where its relative path leads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.dashboards.boards import DASHBOARDS, EVENT_QUERIES
from vibewatch.edge import FeatureSpec, features_batch
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.m4 import FACTORY_MODEL, recorded_windows
from vibewatch.models.keys import load_public_key
from vibewatch.protocol import EventKind
from vibewatch.signals import Fault, Machine
from vibewatch.sim import DeviceLink, FaultPlan, SimClock, SimDevice
from vibewatch.testing.grafana import FakeGrafana
from vibewatch.testing.ingest import Publisher, ServiceProcess, wait_for
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, listening
from vibewatch.testing.watch import Watcher
from vibewatch.testing.webhooks import LocalReceiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

#: Every command of the README, in its order, and the test that runs it.
COMMANDS = {
    "scripts/setup": "test_ci_runs_the_setup_and_the_test_script",
    "scripts/test": "test_ci_runs_the_setup_and_the_test_script",
    "vibewatch demo": "test_the_demo_runs_and_leaves_nothing_listening",
    "vibewatch devices broker-cert mosquitto broker.example --dir site/broker": "site",
    "vibewatch devices provision svc.serve pump-01 pump-02 --dir site/broker": "site",
    "vibewatch devices revoke pump-02 --dir site/broker": "site",
    "vibewatch config show": "site",
    "vibewatch serve": "site",
    "vibewatch dashboards export grafana": "site",
    "vibewatch dashboards check --since 1h": "site",
    "vibewatch dashboards push --url https://grafana.example --token-file grafana.token": "site",
    "vibewatch devices list": "site",
    "vibewatch devices calibrate pump-01": "site",
    "vibewatch keys generate": "site",
    "vibewatch train --start 2026-12-01T06:00 --end 2026-12-01T08:00 --sample-rate 48000 "
    "--faulty-device pump-02 --out runs/dec": "site",
    "vibewatch models list": "site",
    "vibewatch ota deploy vibewatch-ae 2 --all --canary 1 --waves 50%,100%": "site",
    "vibewatch ota status": "site",
    "vibewatch alerts test oncall": "site",
    "vibewatch alerts list": "site",
    "make -C edge_firmware test": "test_the_firmware_commands_run",
    "python3 -m vibewatch.edge.m4": "test_the_firmware_commands_run",
    "python3 benchmarks/edge.py": "test_the_firmware_commands_run",
}
SITE = "test_a_site_runs_as_the_readme_says"
#: What the tests may put in place of a command's word, and why: hosts they cannot reach.
SUBSTITUTED = ("https://grafana.example",)


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the README in ``language``, in order."""
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def readme_commands() -> list[str]:
    """Every line of every ``sh`` block, without its comment; blank lines skipped."""
    lines = (line for block in blocks("sh") for line in block.splitlines())
    stripped = (re.sub(r"(^|\s)#.*", "", line).strip() for line in lines)
    return [line for line in stripped if line]


def owner(command: str) -> str:
    """The test that runs a command."""
    return SITE if COMMANDS[command] == "site" else COMMANDS[command]


def argv(command: str, **substitutes: str) -> list[str]:
    """A command's words as a process runs them: ``vibewatch`` through this interpreter's
    package, ``python3`` this interpreter; ``substitutes`` replace words of
    :data:`SUBSTITUTED` only."""
    assert set(substitutes) <= set(SUBSTITUTED), substitutes
    words = [substitutes.get(word, word) for word in shlex.split(command)]
    if words[0] == "vibewatch":
        return [sys.executable, "-m", "vibewatch", *words[1:]]
    if words[0] == "python3":
        return [sys.executable, *words[1:]]
    return words


class Runner:
    """Runs README commands (each must be one of :data:`COMMANDS` that belongs to
    ``test``) and keeps which ran."""

    def __init__(self, test: str, cwd: Path, env: dict[str, str]) -> None:
        self.test, self.cwd, self.env = test, cwd, env
        self.ran: set[str] = set()

    def take(self, command: str) -> str:
        """Note that the test runs ``command`` (of its own); returns it."""
        assert owner(command) == self.test, f"{command!r} is not one of {self.test}'s"
        self.ran.add(command)
        return command

    def __call__(
        self, command: str, *, timeout: float = 300, **substitutes: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; it must exit 0."""
        done = subprocess.run(
            argv(self.take(command), **substitutes),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stderr[-4000:]}"
        return done

    def all_ran(self) -> None:
        """Every command of the test ran."""
        assert self.ran == {c for c in COMMANDS if owner(c) == self.test}


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without ``VIBEWATCH_*`` variables, plus ``variables``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    return base | variables


def test_the_readme_commands_are_the_ones_these_tests_run() -> None:
    assert readme_commands() == list(COMMANDS)
    assert {owner(c) for c in COMMANDS} <= set(globals()), "a command's test is missing"
    text = README.read_text(encoding="utf-8")
    assert all(text.count(word) == 1 for word in SUBSTITUTED)
    assert len(blocks("python")) == 1


def test_ci_runs_the_setup_and_the_test_script() -> None:
    run = Runner("test_ci_runs_the_setup_and_the_test_script", ROOT, environment())
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert script[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in script
    assert f"{run.take('scripts/setup')} && {run.take('scripts/test')}" in script
    assert all(os.access(ROOT / path, os.X_OK) for path in (".ci/run", *run.ran))
    tests = (ROOT / "scripts" / "test").read_text()
    assert "scripts/check" in tests and "-m pytest" in tests
    run.all_ran()


def test_the_demo_runs_and_leaves_nothing_listening(tmp_path: Path) -> None:
    run = Runner("test_the_demo_runs_and_leaves_nothing_listening", tmp_path, environment())
    done = run("vibewatch demo")
    ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)}
    assert len(ports) >= 3, done.stderr  # the broker, InfluxDB, the webhook receiver
    assert not [port for port in ports if listening(port)]
    summary = dict(
        re.findall(r"^(faults detected|rollout converged|model promoted) +(.+)$", done.stdout, re.M)
    )
    assert summary["faults detected"] == "3" and summary["rollout converged"] == "yes", done.stdout
    assert (tmp_path / "vibewatch-demo-report" / "index.html").is_file()
    run.all_ran()


def test_the_firmware_commands_run() -> None:
    run = Runner("test_the_firmware_commands_run", ROOT, environment())
    built = run("make -C edge_firmware test")
    assert re.search(r"^test_\w+: \d+ passed, 0 failed$", built.stdout, re.MULTILINE)
    m4 = run("python3 -m vibewatch.edge.m4")
    assert "firmware core text:" in m4.stdout + m4.stderr
    bench = run("python3 benchmarks/edge.py")
    assert "all bars met" in bench.stdout
    run.all_ran()


def test_the_python_block_scores_a_healthy_window_below_the_threshold() -> None:
    (program,) = blocks("python")
    done = subprocess.run(
        [sys.executable, "-"],
        input=program,
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # the score of one window and the threshold
    printed = re.fullmatch(r"(\S+) (\S+)\n", done.stdout)
    assert printed is not None, done.stdout
    score, threshold = (float(number) for number in printed.groups())
    assert 0 < score < threshold


# --- the site ----------------------------------------------------------------------

TOKEN = "glsa_readme-token"
SPEC = FeatureSpec.default(48_000)
#: The training range of the README's `vibewatch train`.
TRAIN_START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
TRAIN_END = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
HEALTHY_WINDOWS = 600  # pump-01's vectors: above train.min_healthy_windows (256)
FAULTY_WINDOWS = 120  # pump-02's, inside its anomaly
FAULT = FaultPlan("outer_race", severity=0.8)
#: The simulated devices: calibration in 20 windows, a new model confirmed after 2 s.
SETTINGS = DeviceSettings(calibrate_windows=20, trial_ms=2000)
WINDOW_PERIOD_S = 0.25


def site_config(
    path: Path, mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, database: str, **receiver: str
) -> Path:
    """The configuration file of the site's commands."""
    path.write_text(
        f"data_home = {json.dumps(str(path.parent / 'home'))}\n"
        "[mqtt]\n"
        'host = "127.0.0.1"\n'
        f"port = {mosquitto.port}\n"
        "[influx]\n"
        f"url = {json.dumps(influxdb.url)}\n"
        f"database = {json.dumps(database)}\n"
        "[ingest]\n"
        "batch_max_age = 0.1\n"
        "stats_interval = 1\n"
        "[alerts]\n"
        "group_wait = 1\n"
        "group_interval = 1\n"
        "[alerts.receivers.oncall]\n"
        f"url = {json.dumps(receiver['url'])}\n"
        f"secrets = [{json.dumps(receiver['secret'])}]\n"
        "timeout = 5\n",
        encoding="utf-8",
    )
    return path


class Pumps:
    """pump-01 and pump-02 (with :data:`FAULT`): the firmware's device layer on machines of
    the vibration generator, each with its own MQTT connection, a window every
    :data:`WINDOW_PERIOD_S` seconds of the real clock, run by a thread of their own."""

    def __init__(self, port: int, public_key: Ed25519PublicKey) -> None:
        clock = SimClock(start_wall_ms=int(time.time() * 1000))
        self.devices: dict[str, tuple[DeviceLink, SimDevice]] = {}
        for seed, (name, faults) in enumerate({"pump-01": (), "pump-02": (FAULT,)}.items()):
            link = DeviceLink(name, port=port, reconnect_s=0.1)
            device = SimDevice(
                name,
                FACTORY_MODEL.read_bytes(),
                public_key,
                publish=link.publish,
                clock=clock,
                machine=Machine(),
                faults=faults,
                seed=seed,
                settings=SETTINGS,
                window_period_s=WINDOW_PERIOD_S,
            )
            link.connect(device.device)
            link.announce()
            self.devices[name] = (link, device)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pumps", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.02):
                for link, device in self.devices.values():
                    link.deliver()
                    device.run_due()
        except BaseException as exc:
            self._failure = exc
            raise

    def model_version(self, name: str) -> int:
        """The version of the model a device runs."""
        return self.devices[name][1].slots.state.model_version

    def close(self) -> None:
        """Stop the devices; raises what stopped their thread, if anything did."""
        self._stop.set()
        self._thread.join(10)
        for link, _ in self.devices.values():
            link.close()
        if self._failure is not None:
            raise self._failure


def publish_training_data(publisher: Publisher, influxdb: LocalInfluxDB, database: str) -> None:
    """pump-01's healthy vectors every 10 s from 06:00, pump-02's faulty ones every 10 s
    from 07:00 inside an anomaly from 06:59:50 to the last one's time plus 10 s; waits
    until serve stored them."""
    t0 = int(TRAIN_START.timestamp() * 1000)
    step = 10_000
    factory = FACTORY_MODEL.read_bytes()
    healthy = features_batch(recorded_windows(factory, HEALTHY_WINDOWS, seed=11), SPEC)
    publisher.publish_features(
        "pump-01", SPEC.spec_id, healthy, [t0 + i * step for i in range(HEALTHY_WINDOWS)]
    )
    t1 = t0 + 3_600_000
    fault = Fault(FAULT.kind, FAULT.severity)
    faulty = features_batch(recorded_windows(factory, FAULTY_WINDOWS, fault, seed=12), SPEC)
    publisher.publish_event("pump-02", EventKind.START, t1 - step, seq=1)
    publisher.publish_features(
        "pump-02", SPEC.spec_id, faulty, [t1 + i * step for i in range(FAULTY_WINDOWS)]
    )
    publisher.publish_event("pump-02", EventKind.END, t1 + FAULTY_WINDOWS * step, seq=2)
    in_range = f"time >= {t0}ms AND time < {int(TRAIN_END.timestamp() * 1000)}ms"
    wait_for(
        lambda: (
            influxdb.count(database, "features", "seq", in_range)
            == HEALTHY_WINDOWS + FAULTY_WINDOWS
            and influxdb.count(database, "anomaly", "seq", in_range) == 2
        ),
        60,
        "the training data in InfluxDB",
    )


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(TOKEN) as server:
        yield server


def test_a_site_runs_as_the_readme_says(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    influx_db: str,
    publisher: Publisher,
    receiver: LocalReceiver,
    secret: str,
    grafana: FakeGrafana,
) -> None:
    workdir = tmp_path / "site"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # serve's too
    config = site_config(
        tmp_path / "vibewatch.toml", mosquitto, influxdb, influx_db, url=receiver.url, secret=secret
    )
    home = tmp_path / "home"
    env = environment(VIBEWATCH_CONFIG=str(config))
    run = Runner(SITE, workdir, env)

    # Broker credentials
    broker = workdir / "site" / "broker"

    def users() -> set[str]:
        return {line.split(":")[0] for line in (broker / "passwd").read_text().splitlines()}

    run("vibewatch devices broker-cert mosquitto broker.example --dir site/broker")
    assert all((broker / f).is_file() for f in ("ca/ca.crt", "broker/mosquitto.crt"))
    run("vibewatch devices provision svc.serve pump-01 pump-02 --dir site/broker")
    assert users() == {"svc.serve", "pump-01", "pump-02"}
    revoked = run("vibewatch devices revoke pump-02 --dir site/broker")
    assert revoked.stdout.startswith("revoked pump-02 in site/broker/passwd")
    assert users() == {"svc.serve", "pump-01"}
    assert not (broker / "devices" / "pump-02.password").exists()

    # The back end
    shown = run("vibewatch config show").stdout
    assert f"port = {mosquitto.port}\n" in shown and f'url = "{influxdb.url}"\n' in shown
    assert f'data_home = "{home}"' in shown
    assert '"oncall": {"url": "http://127.0.0.1:' in shown and secret not in shown
    assert '"secrets": ["********"]' in shown
    made = run("vibewatch keys generate").stdout
    assert "fingerprint: sha256:" in made
    command = shlex.split(run.take("vibewatch serve"))
    assert command[0] == "vibewatch"
    serve = ServiceProcess(env, tmp_path, command[2:], command=command[1])
    with contextlib.ExitStack() as stack:
        stack.callback(serve.close)  # kills it if the test failed before it stopped
        serve.start()
        watcher = Watcher(mosquitto.port)
        stack.callback(watcher.close)
        pumps = Pumps(mosquitto.port, load_public_key(home / "keys" / "model-signing.pub"))
        stack.callback(pumps.close)

        # Dashboards: exported, pushed (checked at the end)
        run("vibewatch dashboards export grafana")
        exported = {p.stem for p in (workdir / "grafana").glob("*.json")}
        assert exported == set(DASHBOARDS)
        assert (workdir / "grafana" / "provisioning" / "datasources").is_dir()
        (workdir / "grafana.token").write_text(TOKEN + "\n")
        pushed = run(
            "vibewatch dashboards push --url https://grafana.example --token-file grafana.token",
            **{"https://grafana.example": grafana.url},
        )
        assert sorted(grafana.dashboards) == sorted(DASHBOARDS), pushed.stdout
        assert all(d["version"] == 1 for d in grafana.dashboards.values())

        # Devices
        def listed() -> dict[str, str]:
            out = run("vibewatch devices list").stdout
            return {line.split()[0]: line.split()[1] for line in out.splitlines()}

        wait_for(lambda: listed() == {"pump-01": "online", "pump-02": "online"}, 30, "devices")
        sent = run("vibewatch devices calibrate pump-01").stdout
        assert sent.startswith("pump-01: sent (calibrate-"), sent
        command_id = sent.split("(")[1].rstrip(")\n")

        def replies() -> list[dict[str, object]]:
            return watcher.payloads("cmd/reply").get("pump-01", [])

        wait_for(lambda: bool(replies()), 30, "pump-01's reply to calibrate")
        (reply,) = replies()
        assert reply["id"] == command_id and reply["outcome"] == "done", reply

        # Training
        publish_training_data(publisher, influxdb, influx_db)
        trained = run(
            "vibewatch train --start 2026-12-01T06:00 --end 2026-12-01T08:00 --sample-rate 48000 "
            "--faulty-device pump-02 --out runs/dec"
        ).stdout
        package = workdir / "runs" / "dec" / "package"
        assert trained.splitlines()[0] == f"vibewatch-ae v2: {package.relative_to(workdir)}"
        manifest = json.loads((package / "manifest.json").read_text())
        assert (manifest["model_id"], manifest["version"]) == ("vibewatch-ae", 2)
        assert manifest["training_data"]["devices"] == ["pump-01"]
        assert manifest["training_data"]["windows"] == HEALTHY_WINDOWS
        assert "  pump-02 anomalies: AUC " in trained, trained
        models = run("vibewatch models list").stdout
        assert re.search(r"^vibewatch-ae +2 ", models, re.MULTILINE), models

        # Rolling out
        deployed = run("vibewatch ota deploy vibewatch-ae 2 --all --canary 1 --waves 50%,100%")
        assert deployed.stdout.startswith(
            "rollout-1: rollout of vibewatch-ae version 2 to 2 devices in waves of 1 + 1;"
        ), deployed.stdout
        status = run("vibewatch ota status").stdout
        assert status.startswith("rollout-1  vibewatch-ae v2  "), status
        wait_for(
            lambda: all(pumps.model_version(p) == 2 for p in ("pump-01", "pump-02")),
            60,
            "version 2 on both devices",
        )
        completed = "rollout-1  vibewatch-ae v2  completed  wave 2/2  2 confirmed\n"
        wait_for(lambda: run("vibewatch ota status").stdout.startswith(completed), 60, "the end")

        # Alerts
        answered = run("vibewatch alerts test oncall").stdout
        assert answered.startswith("oncall answered 200 in "), answered
        requests = list(receiver.requests)
        tests = [r for r in requests if r.headers["webhook-id"].startswith("msg_test_")]
        assert [(r.verified, r.status) for r in tests] == [(True, 200)]

        def firing() -> list[str]:
            out = run("vibewatch alerts list").stdout
            return [line for line in out.splitlines() if line.startswith("firing ")]

        wait_for(lambda: bool(firing()), 30, "pump-02's alerts")
        assert all("device=pump-02" in line for line in firing()), firing()
        wait_for(
            lambda: any(
                b'"device":"pump-02"' in body
                for msg_id, body in list(receiver.accepted.items())
                if not msg_id.startswith("msg_test_")
            ),
            30,
            "pump-02's alerts at oncall",
        )

        # Every dashboard's queries return rows of the last hour, but the failures of a
        # rollout, which this one had none of
        checked = run("vibewatch dashboards check --since 1h").stdout.splitlines()
        quiet = re.compile(r"ok   ([\w-]+): (.+): 0 series, 0 rows \(events: none in the range\)")
        found_none = {m.groups() for m in map(quiet.fullmatch, checked) if m}
        failures = EVENT_QUERIES["vibewatch-rollouts"]
        assert found_none == {("vibewatch-rollouts", where) for where in failures}, checked
        assert all(line.startswith("ok   ") for line in checked[:-1]), checked
        queries = len(checked) - 1
        assert checked[-1] == (
            f"{queries - 2} of {queries} queries returned rows; "
            "2 queries of events found none in the range"
        )

        assert serve.stop() == 0, serve.log_tail()
    run.all_ran()
