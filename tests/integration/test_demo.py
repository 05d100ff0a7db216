"""``vibewatch demo`` end to end: servers of its own (or the configured ones), ``serve``
as a process, a fleet with bearing faults, a model rollout, the faults' alerts as signed
webhooks at the demo's receiver, the report; nothing left running."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vibewatch.alerts.signing import new_secret, sign
from vibewatch.demo.report import PAGE, PLOTS
from vibewatch.demo.story import DemoReport, DetectedFault, _AlertsChapter
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.vwm import decode_header
from vibewatch.testing.browser import open_page
from vibewatch.testing.servers import LocalInfluxDB, LocalMosquitto, free_port, listening


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("VIBEWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "vibewatch", "demo", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=300,
    )


#: The keys ``vibewatch demo --json`` promises scripts.
PROMISED = (
    "devices", "faults_injected", "faults_detected", "false_alarm_devices", "webhooks_received",
    "webhooks_verified", "model_promoted", "rollout_converged", "report",
)  # fmt: skip


def _wait_for_the_kept_stack(running: subprocess.Popen[str]) -> tuple[str, list[str], str]:
    """What a demo with --keep said until it told how to look at the stack: the text, the
    exported settings, the ``--since`` of its dashboards check."""
    assert running.stderr is not None
    said = []
    for line in running.stderr:  # until the demo says how to look at the stack
        said.append(line)
        if line.strip().startswith("vibewatch dashboards check"):
            break
    told = "".join(said)
    assert "the stack stays up (--keep) until Ctrl-C" in told, told
    (exports,) = [line.split()[1:] for line in said if line.strip().startswith("export ")]
    since = re.search(r"--since (\d+h)", said[-1])
    assert since is not None, said[-1]
    return told, exports, since.group(1)


def test_the_quick_demo_tells_the_whole_story_and_leaves_nothing_running(tmp_path: Path) -> None:
    # --keep: the stack stays up at the end, and the dashboards' queries run against it
    base = {name: value for name, value in os.environ.items() if not name.startswith("VIBEWATCH_")}
    running = subprocess.Popen(
        [sys.executable, "-m", "vibewatch", "demo", "--quick", "--json", "--keep", "--report",
         str(tmp_path / "report")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base,
    )  # fmt: skip
    try:
        told, exports, since = _wait_for_the_kept_stack(running)
        check = subprocess.run(
            [sys.executable, "-m", "vibewatch", "dashboards", "check", "--since", since],
            capture_output=True, text=True, timeout=120,
            env={**base, **dict(export.split("=", 1) for export in exports)},
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        running.send_signal(signal.SIGINT)  # Ctrl-C ends the stack, whatever happened
        stdout, rest = running.communicate(timeout=120)
    done = subprocess.CompletedProcess(running.args, running.returncode, stdout, told + rest)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(PROMISED) <= set(report)
    assert report["devices"] == 12 and report["servers"] == "local"
    assert report["simulated_s"] >= 200
    # chapter one: every device calibrated, within the factory model's ceiling
    ceiling = decode_header(FACTORY_MODEL.read_bytes()).threshold_ceiling
    assert len(report["thresholds"]) == 12
    assert all(0 < t <= ceiling * (1 + 1e-6) for t in report["thresholds"].values())
    assert set(report["capped"]) <= set(report["thresholds"])
    # chapter two: every injected fault detected while it grew, none falsely
    faults = report["faults"]
    assert report["faults_injected"] == len(faults) == 3
    assert sorted(fault["kind"] for fault in faults) == ["ball", "inner_race", "outer_race"]
    assert report["faults_detected"] == 3
    for fault in faults:
        assert fault["onset_s"] <= fault["detected_s"] <= fault["onset_s"] + 60
    assert report["false_alarm_devices"] == [] and report["false_alarms"] == {}
    assert report["readings_published"] >= 12 * 190 and report["lost"] == 0
    assert report["readings_stored"] == report["readings_published"]
    # chapter three: the faults' alerts arrived as signed webhooks, and only theirs
    assert all(fault["alerted"] for fault in faults) and report["faults_alerted"] == 3
    assert report["alerted_devices"] == sorted(fault["device"] for fault in faults)
    assert report["webhooks_verified"] == report["webhooks_received"] >= 1
    # chapter four: trained on the healthy devices' vectors, judged on the faulty ones'
    training = report["training"]
    assert (training["healthy_devices"], training["faulty_devices"]) == (9, 3)
    assert training["version"] == 2 and training["status"] == "champion"
    assert sorted(training["auc"]) == sorted(f"{fault['device']} anomalies" for fault in faults)
    assert any(reason.startswith("AUC on ") and "vs champion v1" in reason
               for reason in training["gate"])  # fmt: skip
    assert report["model_promoted"] is True
    # chapter five: the new version on every device
    assert report["rollout_converged"] is True
    assert report["rollout"]["phase"] == "completed" and report["rollout"]["version"] == 2
    assert report["rollout"]["counts"] == {"confirmed": 12}
    assert report["ok"] is True
    # the report is a page with its plots
    page = Path(report["report"])
    assert page == (tmp_path / "report" / "index.html").resolve()
    assert sorted(p.name for p in page.parent.iterdir()) == sorted([PAGE, *PLOTS])
    text = page.read_text()
    assert all(f'src="{name}"' in text for name in PLOTS)
    # the progress and the steps went to standard error; the servers are gone
    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)]
    assert len(ports) >= 3 and "vibewatch serve ready" in done.stderr
    assert "webhook receiver on http://127.0.0.1:" in done.stderr
    assert "chapter one: every device learns its baseline over 40 windows" in done.stderr
    assert "chapter four: vibewatch train on the feature vectors of 9 healthy" in done.stderr
    assert "chapter five: rollout-1, version 2 in waves of 2 + 4 + 6" in done.stderr
    assert f"report written: {page}" in done.stderr
    assert not any(listening(port) for port in ports)
    # and it opens in a browser: every image loads, no console error
    view = open_page(page)
    assert view.title == "vibewatch demo report"
    assert [Path(image.src).name for image in view.images] == list(PLOTS)
    assert all(image.loaded and image.width > 0 for image in view.images), view.images
    assert view.errors == [], view.messages


def test_the_browser_check_sees_a_broken_image_and_a_script_error(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[2] / "models" / "factory" / "roc.png", tmp_path / "a.png")
    (tmp_path / "page.html").write_text(
        '<!DOCTYPE html><title>t</title><img src="a.png"><img src="missing.png">'
        "<script>console.error('bad thing'); undefinedFunction();</script>"
    )
    view = open_page(tmp_path / "page.html")
    assert [(Path(i.src).name, i.loaded) for i in view.images] == [
        ("a.png", True),
        ("missing.png", False),
    ]
    assert "bad thing" in view.errors
    assert any("undefinedFunction is not defined" in error for error in view.errors)
    assert any("missing.png" in error for error in view.errors)


def test_the_demo_runs_on_configured_servers(
    mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, influx_db: str, tmp_path: Path
) -> None:
    env = {
        "VIBEWATCH_MQTT_PORT": str(mosquitto.port),
        "VIBEWATCH_INFLUX_URL": influxdb.url,
        "VIBEWATCH_INFLUX_DATABASE": influx_db,
    }
    done = demo(
        "--devices", "8", "--faulty", "1", "--duration", "120", "--onset", "45", "--growth",
        "30", "--speedup", "20", "--json", "--report", str(tmp_path), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["servers"] == "configured" and report["faults_detected"] == 1
    assert report["rollout_converged"] is True
    assert report["faults_alerted"] == 1 and report["webhooks_verified"] >= 1
    stored = influxdb.count(influx_db, "reading", "score", "device =~ /^demo-/")
    assert stored == report["readings_stored"] > 0
    assert mosquitto.running and influxdb.running  # the configured servers are left alone


def test_the_demo_names_configured_servers_that_do_not_answer() -> None:
    port = free_port()
    done = demo("--json", env={"VIBEWATCH_MQTT_PORT": str(port)})
    assert done.returncode == 1
    assert f"the MQTT broker at 127.0.0.1:{port} (Connection refused)" in done.stderr
    assert "--local" in done.stderr and done.stdout == ""


def test_a_bad_plan_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = demo("--duration", "0", "--faulty", "60")
    assert done.returncode == 2
    assert "faulty must be between 0 and devices (50), not 60" in done.stderr
    assert "duration must be > 0 simulated seconds, not 0" in done.stderr


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_alerts_chapter_counts_what_verified_and_a_missing_alert_is_a_problem() -> None:
    chapter = _AlertsChapter()
    try:
        table = json.loads(chapter.settings["VIBEWATCH_ALERTS_RECEIVERS"])
        (secret,) = table["demo"]["secrets"]
        assert chapter.settings["VIBEWATCH_ALERTS_ALERTMANAGER_URL"] == ""

        def body(*alerts: tuple[str, str]) -> bytes:
            listed = [
                {"labels": {"alertname": n, "device": d}, "status": "firing"} for n, d in alerts
            ]
            return json.dumps({"version": "4", "alerts": listed}).encode()

        signed = body(("DeviceAnomaly", "demo-0001"), ("DeviceOffline", "demo-0002"))
        forged = body(("DeviceAnomaly", "demo-0003"))
        now = int(time.time())
        assert post(chapter.receiver.url, signed, sign([secret], "msg_1", now, signed)) == 200
        assert post(chapter.receiver.url, forged, sign([new_secret()], "msg_2", now, forged)) == 401
        assert chapter.alerted() == {"demo-0001"}  # verified, and an anomaly alert
        assert [request.verified for request in chapter.requests()] == [True, False]
    finally:
        chapter.close()
    report = DemoReport(
        devices=2, simulated_s=60, seconds=6, servers="local", faults_injected=2,
        faults=[
            DetectedFault("demo-0001", "ball", 10, 30, alerted=True),
            DetectedFault("demo-0003", "ball", 10, 35, alerted=False),
        ],
        faults_detected=2, false_alarm_devices=[], events=2, windows=120,
        readings_published=60, readings_stored=60, lost=0,
        training={"error": "vibewatch train exited 2: too few healthy feature vectors"},
        model_promoted=False,
        rollout={"id": "", "version": 0, "phase": "not started", "reason": "", "counts": {},
                 "seconds": 0},
        rollout_converged=False, webhooks_received=2, webhooks_verified=1,
        alerted_devices=["demo-0001"], faults_alerted=1, model_threshold=2.0,
        thresholds={"demo-0001": 1.5}, capped=[], false_alarms={},
    )  # fmt: skip
    assert report.problems() == [
        "the retrained model was not promoted",
        "1 of 2 faults' alerts did not arrive",
        "1 of 2 webhooks did not verify",
        "1 of 2 devices did not calibrate",
    ]
    lines = report.lines()
    assert (
        "  demo-0003  ball        onset 10 s, detected at 35 s, 25 s after its onset; NO alert"
        in lines
    )
    assert "retraining failed: vibewatch train exited 2: too few healthy feature vectors" in lines
    assert not any(" of version " in line for line in lines)  # no rollout line
    assert "model promoted       no" in lines and "faults alerted       1" in lines
    assert lines[-1] == (
        "NOT ok: the retrained model was not promoted; 1 of 2 faults' alerts did not arrive; "
        "1 of 2 webhooks did not verify; 1 of 2 devices did not calibrate"
    )
