"""`vibewatch ota deploy` checks a rollout before it creates one: targets by id, group or
label; what the targets can run, from their status; versions and signed rollbacks. And
`vibewatch devices label`, `ota rollback`. No controller: the state database only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.models.package import sign_rollback
from vibewatch.models.registry import Registry
from vibewatch.ota.store import KnownDevice, RolloutStore
from vibewatch.ota.targets import TargetError, fit_problems, select_targets, version_problems
from vibewatch.protocol import DeviceLimits, DeviceState, Status
from vibewatch.state import open_state_db
from vibewatch.testing.models import factory_version

runner = CliRunner()
FITS = DeviceLimits(sample_rate_hz=48000, max_window=4096, flash_bytes=65536, ram_bytes=8192)


def known(
    device: str, version: int = 1, labels: dict[str, str] | None = None, **limits: int
) -> KnownDevice:
    caps = ["ota", *dataclasses.replace(FITS, **limits).capabilities()]
    return KnownDevice(
        device, True, "fw", "vibewatch-ae", version, {"capabilities": caps}, "now", labels or {}
    )


FLEET = [known(f"pump-{i:02d}") for i in range(4)] + [known("fan-01", labels={"site": "north"})]


def test_targets_by_id_glob_group_and_label_each_once_in_order() -> None:
    groups = {"pumps": ["pump-0*"], "mixed": ["fan-01", "pump-03"]}
    chosen = select_targets(
        FLEET, devices=["pump-02"], groups=["mixed", "pumps"], config_groups=groups
    )
    assert chosen == ("pump-02", "fan-01", "pump-03", "pump-00", "pump-01")
    assert select_targets(FLEET, groups=["site=north"]) == ("fan-01",)
    assert select_targets(FLEET, all_devices=True)[0] == "fan-01"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"devices": ["pump-09"]}, "unknown devices (no status received from them): pump-09"),
        ({"groups": ["line-b"]}, "unknown group 'line-b' (groups of [ota] groups: pumps; "),
        ({"groups": ["site=south"]}, "no device is labelled site=south"),
        ({"groups": ["pumps"], "config_groups": {"pumps": ["valve-*"]}}, "group pumps matches no"),
        ({"groups": ["pumps"], "config_groups": {"pumps": ["pump-7"]}}, "unknown device 'pump-7'"),
    ],
)
def test_targets_that_cannot_be_chosen_are_named(kw: dict[str, Any], message: str) -> None:
    kw.setdefault("config_groups", {"pumps": ["pump-*"]})
    with pytest.raises(TargetError) as caught:
        select_targets(FLEET, **kw)
    assert message in str(caught.value)


def test_what_a_device_cannot_run_is_named_from_its_status() -> None:
    manifest = {
        "feature_spec": {"sample_rate_hz": 48000, "window": 1024},
        "device": {"flash_bytes": 5500, "ram_bytes": 200},
    }
    assert fit_problems(manifest, FLEET) == []
    unfit = [
        known("slow", sample_rate_hz=16000),
        known("small", max_window=512, flash_bytes=4096),
        known("tiny", ram_bytes=100),
        KnownDevice("quiet", True, None, None, None, {}, "now"),  # names no limit: not checked
    ]
    assert fit_problems(manifest, unfit) == [
        "slow: samples at 16000 Hz, the model's feature spec at 48000 Hz",
        "small: computes windows of at most 512 samples, the model needs 1024",
        "small: holds models of at most 4096 bytes, the model has 5500",
        "tiny: has 100 bytes of engine memory, the model needs 200",
    ]


def test_a_version_must_go_up_unless_it_is_a_rollback() -> None:
    fleet = [known("a", 2), known("b", 3)]
    assert version_problems("vibewatch-ae", 4, fleet, rollback=False) == []
    [problem] = version_problems("vibewatch-ae", 3, fleet, rollback=False)
    assert problem.startswith("version 3 is not above what the targets run (b runs version 3)")
    assert version_problems("vibewatch-ae", 2, fleet, rollback=True) == []
    assert version_problems("vibewatch-ae", 3, fleet, rollback=True) == [
        "no target runs a version above 3: nothing to roll back"
    ]
    assert version_problems("other-model", 1, fleet, rollback=False) == []


# ---- the command, on a state database and a registry -------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home: versions 1 and 2 of the factory model registered, version 1's rollback
    signed; devices pump-00..03 run version 1, pump-04 version 2, small-01 has 4 KiB slots."""
    data = tmp_path / "home"
    generate_keypair(data / "keys" / "model-signing.key", data / "keys" / "model-signing.pub")
    key = load_private_key(data / "keys" / "model-signing.key")
    with Registry(data / "models", data / "state.db", key.public_key()) as registry:
        for version in (1, 2):
            registry.register(factory_version(tmp_path / f"v{version}", key, version).path)
    db = open_state_db(data / "state.db")
    store = RolloutStore(db)
    for device, version, limits in [
        *((f"pump-{i:02d}", 1, FITS) for i in range(4)),
        ("pump-04", 2, FITS),
        ("small-01", 1, DeviceLimits(sample_rate_hz=48000, flash_bytes=4096)),
    ]:
        store.record_status(
            Status(
                device=device,
                state=DeviceState.ONLINE,
                t=1,
                firmware="fw",
                model_id="vibewatch-ae",
                model_version=version,
                model_sha256="0" * 64,
                capabilities=("ota", *limits.capabilities()),
            )
        )
    db.close()
    return data


def vibewatch(home: Path, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"VIBEWATCH_DATA_HOME": str(home), **env})


def test_deploy_checks_targets_fit_and_versions(home: Path) -> None:
    small = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2", "--devices", "pump-00,small-01")
    assert small.exit_code == 2
    assert "targets cannot run vibewatch-ae version 2: small-01: holds models of at most 4096" in (
        small.output
    )
    group = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2", "--group", "line-a")
    assert group.exit_code == 2 and "unknown group 'line-a'" in group.output
    up = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2", "--group", "pumps", "--json",
                   VIBEWATCH_OTA_GROUPS="pumps=pump-0*")  # fmt: skip
    assert up.exit_code == 2 and "version 2 is not above what the targets run (pump-04" in up.output
    done = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2", "--group", "pumps", "--json",
                     VIBEWATCH_OTA_GROUPS="pumps=pump-00,pump-01,pump-02")  # fmt: skip
    assert done.exit_code == 0, done.output
    created = json.loads(done.output)
    assert list(created["devices"]) == ["pump-00", "pump-01", "pump-02"]
    assert created["wave_counts"] == [{"queued": 1}, {"queued": 1}, {"queued": 1}]
    shown = vibewatch(home, "ota", "status")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[1:4] == [
        "  canary       1 devices: 1 queued",
        "  wave 2       1 devices: 1 queued",
        "  wave 3       1 devices: 1 queued",
    ]
    none = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2")
    assert none.exit_code == 2 and "give the targets" in none.output


def test_a_rollback_needs_the_flag_and_its_signed_statement(home: Path) -> None:
    down = vibewatch(home, "ota", "deploy", "vibewatch-ae", "1", "--devices", "pump-04")
    assert down.exit_code == 2 and "to go back, --rollback with the version's signed" in down.output
    unsigned = vibewatch(home, "ota", "deploy", "vibewatch-ae", "1", "--devices", "pump-04",
                         "--rollback")  # fmt: skip
    assert unsigned.exit_code == 2
    assert "no signed rollback statement of vibewatch-ae version 1" in unsigned.output
    key = load_private_key(home / "keys" / "model-signing.key")
    with Registry(home / "models", home / "state.db", key.public_key()) as registry:
        package = registry.load("vibewatch-ae", 1)
        registry.add_rollback("vibewatch-ae", 1, sign_rollback(package, key))
    signed = vibewatch(home, "ota", "deploy", "vibewatch-ae", "1", "--devices", "pump-04",
                       "--rollback")  # fmt: skip
    assert signed.exit_code == 0, signed.output
    assert "rollout-1: rollback to vibewatch-ae version 1 to 1 devices" in signed.output
    db = open_state_db(home / "state.db")
    assert RolloutStore(db).load("rollout-1").plan.rollback
    db.close()


def test_labels_name_a_group_and_rollback_is_queued_for_an_ended_rollout(home: Path) -> None:
    labelled = vibewatch(home, "devices", "label", "pump-0[12]", "pump-03", "site=north")
    assert labelled.exit_code == 2 and "pump-0[12]" in labelled.output  # not a glob we take
    assert vibewatch(home, "devices", "label", "pump-0?", "site=north").exit_code == 0
    assert vibewatch(home, "devices", "label", "pump-04", "--remove", "site").exit_code == 0
    shown = json.loads(vibewatch(home, "devices", "list", "--json").output)
    assert [d["device"] for d in shown if d["labels"] == {"site": "north"}] == [
        "pump-00", "pump-01", "pump-02", "pump-03",
    ]  # fmt: skip
    bad = vibewatch(home, "devices", "label", "pump-00", "site=no rth")
    assert bad.exit_code == 2 and "'no rth'" in bad.output
    done = vibewatch(home, "ota", "deploy", "vibewatch-ae", "2", "--group", "site=north")
    assert done.exit_code == 0, done.output
    assert "to 4 devices" in done.output
    listed = {
        d["device"]: d for d in json.loads(vibewatch(home, "devices", "list", "--json").output)
    }
    assert listed["pump-00"]["rollout"] == {
        "rollout": "rollout-1", "phase": "running", "state": "queued", "wave": 1, "detail": "",
    }  # fmt: skip
    assert listed["pump-04"]["rollout"] is None
    text = vibewatch(home, "devices", "list").output
    assert "rollout-1 queued" in text and "site=north" in text
    db = open_state_db(home / "state.db")
    store = RolloutStore(db)
    rollout = store.load("rollout-1")
    rollout.phase = rollout.phase.COMPLETED
    store.save(rollout)
    db.close()
    assert vibewatch(home, "ota", "abort", "rollout-1").exit_code == 2  # it ended
    queued = vibewatch(home, "ota", "rollback", "rollout-1", "--reason", "misses faults")
    assert queued.exit_code == 0, queued.output
    db = open_state_db(home / "state.db")
    assert RolloutStore(db).take_commands() == [("rollout-1", "rollback", "misses faults")]
    db.close()
