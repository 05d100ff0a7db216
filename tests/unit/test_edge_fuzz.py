"""Smoke run of the firmware fuzzers (``scripts/fuzz``), and checks that their seeds do their job.

The full run (1,000,000 executions per target) is ``scripts/fuzz`` on its own; here each
target runs 20,000 executions, with ASan and UBSan, from its seed corpus.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vibewatch.edge.engine import Model
from vibewatch.errors import EdgeError

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "edge_firmware" / "build" / "fuzz"
RUNS = 20_000
OP_LINE = re.compile(r"^[a-z-]+(: |$)")
ROW = re.compile(r"^fuzz_(\w+)\s+(\d+)\s+[\d.]+\s+\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)$", re.M)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One smoke run of every target (builds them and their seeds first)."""
    work = tmp_path_factory.mktemp("fuzz")
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz"), "--runs", str(RUNS), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


def test_smoke_run_has_no_crash_and_runs_every_execution(
    smoke: subprocess.CompletedProcess[str],
) -> None:
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    rows = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in ROW.findall(smoke.stdout)}
    assert set(rows) == {"model", "ota", "json", "device"}, smoke.stdout
    for target, (executions, coverage, crashes) in rows.items():
        assert executions == RUNS, target
        assert coverage > 0, target
        assert crashes == 0, target


def trace(smoke: subprocess.CompletedProcess[str], seed: str, target: str = "ota") -> str:
    """The operation trace of ``fuzz_<target>`` on one of its seeds."""
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    done = subprocess.run(
        [str(BUILD / f"fuzz_{target}"), str(BUILD / "seeds" / target / seed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "VW_FUZZ_TRACE": "1"},
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_ota_seed_installs_an_update_that_survives_a_reboot(
    smoke: subprocess.CompletedProcess[str],
) -> None:
    lines = trace(smoke, "install").splitlines()
    ops = [line for line in lines if OP_LINE.match(line)]
    assert ops[:6] == [
        "provision: ok",
        "begin: ok",
        "chunk-all: ok",
        "finish: ok",
        "confirm: ok",
        "reboot",
    ]
    assert "  boot: ok, state 1, active slot 1, v2" in lines


def test_ota_seeds_reach_every_refusal_and_power_cut(
    smoke: subprocess.CompletedProcess[str],
) -> None:
    refusals = trace(smoke, "refusals")
    for line in ["finish: golden", "finish: spec", "begin: too_large", "finish: crc"]:
        assert line in refusals
    assert "begin: downgrade" in trace(smoke, "downgrade")
    assert "begin: signature" in trace(smoke, "bad-signature")
    # An unconfirmed trial falls back to the factory model (v1) at the reboot.
    assert "  boot: ok, state 1, active slot 0, v1" in trace(smoke, "trial-rolls-back")
    for seed, op in [("cut-finish", "finish"), ("cut-confirm", "confirm"), ("resume", "chunk-all")]:
        assert f"{op}: storage (power cut)" in trace(smoke, seed)


def test_device_seeds_install_a_model_and_answer_commands(
    smoke: subprocess.CompletedProcess[str],
) -> None:
    install = trace(smoke, "ota-install", "device")
    states = re.findall(r'"kind":"state","state":"(\w+)"', install)
    assert states[:4] == ["downloading", "verifying", "activated", "installed"]
    assert '"model_id":"fuzz.odd","model_version":2' in install
    assert '"id":"rb-1","t":1764547206200,"cmd":"rollback","outcome":"done"' in install
    commands = trace(smoke, "set-threshold", "device")
    assert '"cmd":"set_threshold","outcome":"done","threshold":2.5}' in commands
    assert '"outcome":"refused","detail":"threshold: missing or not in (0, 1e12]"' in commands
    calibrate = trace(smoke, "calibrate", "device")
    assert '"id":"cal-1","t":1764547200000,"cmd":"calibrate","outcome":"done"' in calibrate
    refusals = trace(smoke, "refusals", "device")
    for line in ["command: json", "command: message", "unknown command reboot"]:
        assert line in refusals
    upload = trace(smoke, "upload", "device").splitlines()
    assert "  raw [1056 bytes]" in upload and "  raw (refused) [1056 bytes]" in upload
    assert "window: input" in trace(smoke, "windows", "device")
    reboots = trace(smoke, "reboots", "device")
    assert "boot: storage, boot 0" in reboots and "window: storage" in reboots


def test_seed_models_are_valid_blobs(smoke: subprocess.CompletedProcess[str]) -> None:
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    models = sorted((BUILD / "seeds" / "models").glob("*.vwm"))
    assert len(models) >= 5
    for path in models:
        model = Model(path.read_bytes())
        if path.stem == "bad-golden":
            with pytest.raises(EdgeError, match="golden"):
                model.check_golden()
        else:
            model.check_golden()
