"""Scenario files and --faults: what a simulation runs, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibewatch.errors import ConfigError
from vibewatch.sim.scenario import (
    FaultPlan,
    LinkPlan,
    PowerPlan,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_fault,
)

GOOD = """\
# a fleet with two faults
[fleet]
devices = 20
id_prefix = "pump-"
seed = 3
speedup = 10.0
duration_s = 600

[[fault]]
kind = "outer_race"
count = 3
onset_s = 60
growth_s = 300
severity = 0.8

[[fault]]
kind = "imbalance"
devices = ["pump-0002"]

[link]
loss = 0.01
disconnect_mean_s = 120

[power]
loss_mean_s = 900
during_install = 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_gives_its_scenario(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, GOOD))
    assert (s.devices, s.id_prefix, s.seed, s.speedup, s.duration_s) == (20, "pump-", 3, 10, 600)
    assert s.device_ids()[:2] == ["pump-0001", "pump-0002"] and len(s.device_ids()) == 20
    assert s.faults[0] == FaultPlan("outer_race", 3, (), 60.0, 300.0, 0.8)
    assert s.faults[1].devices == ("pump-0002",) and s.faults[1].severity == 0.5
    assert s.link == LinkPlan(loss=0.01, disconnect_mean_s=120)
    assert s.power == PowerPlan(loss_mean_s=900, during_install=0.5)
    chosen = s.faulty_devices()
    assert sum(any(f.kind == "outer_race" for f in fs) for fs in chosen.values()) == 3
    assert any(f.kind == "imbalance" for f in chosen["pump-0002"])
    assert s.faulty_devices() == chosen  # the seed decides


def test_an_empty_file_is_a_healthy_fleet_of_fifty(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, ""))
    assert s == Scenario() and s.devices == 50 and s.faulty_devices() == {}


def test_severity_grows_from_the_onset() -> None:
    plan = FaultPlan("ball", count=1, onset_s=10, growth_s=100, severity=0.6)
    assert [plan.severity_at(t) for t in (0, 10, 60, 110, 1000)] == [0, 0, 0.3, 0.6, 0.6]
    assert FaultPlan("ball", count=1, onset_s=5, severity=0.4).severity_at(5) == 0.4


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("severity = 0.8", "severity = 1.5"), 14, "fault[1].severity: 1.5 is not in (0, 1]"),
        (("count = 3", 'count = "3"'), 11, "fault[1].count: must be an integer, not a string"),
        (('kind = "imbalance"', 'kind = "rust"'), 17, "fault[2].kind: 'rust' is not one of"),
        (('["pump-0002"]', '["pump-0099"]'), 18, "fault[2].devices: 'pump-0099' not in the"),
        (("loss = 0.01", "loss = 1.0"), 21, "link.loss: 1.0 is not in [0, 1)"),
        (("speedup = 10.0", "speedup = 0"), 6, "fleet.speedup: 0 is not a number > 0"),
        (("seed = 3", "sed = 3"), 5, "fleet.sed: unknown field (expected one of devices,"),
        (("[power]", "[powr]"), 24, "[powr]: unknown table (expected fleet, fault, link, power)"),
        (("devices = 20", "devices = 0"), 3, "fleet.devices: 0 is not in [1, 100000]"),
        (('id_prefix = "pump-"', 'id_prefix = "a b"'), 4, "fleet.id_prefix: 'a b' does not"),
        (("count = 3", "count = 30"), 11, "fault[1].count: 30 is not in [1, 20] (the fleet)"),
        (("count = 3", 'count = 3\ndevices = ["pump-0001"]'), 11, "fault[1].count: give count"),
        (("during_install = 0.5", "during_install = 1.5"), 26, "power.during_install: 1.5 is"),
        (("during_install = 0.5", "during_install = -0.1"), 26, "power.during_install: -0.1 "),
        (("during_install = 0.5", "during_install = nan"), 26, "power.during_install: nan is"),
        (
            ("during_install = 0.5", "during_install = true"),
            26,
            "power.during_install: must be a number, not a boolean",
        ),
        (("during_install", "during_instal"), 26, "power.during_instal: unknown field (expected"),
    ],
)
def test_a_bad_file_names_the_line_and_the_field(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: {message}"), text


def test_unreadable_and_invalid_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_scenario(write(tmp_path, "[fleet\n"))
    with pytest.raises(ConfigError, match=r"\[fault\]: must be an array of tables"):
        load_scenario(write(tmp_path, "[fault]\nkind = 'ball'\n"))


def test_a_scenario_made_in_code_is_checked() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(devices=5, faults=(FaultPlan("ball", count=6),))
    assert caught.value.problems == [("fault[1].count", "6 is not in [1, 5] (the fleet)")]
    with pytest.raises(ScenarioError) as caught:
        Scenario(power=PowerPlan(during_install=2))
    assert caught.value.problems == [("power.during_install", "2 is not in [0, 1]")]


@pytest.mark.parametrize("share", [0, 0.25, 1])
def test_every_install_or_none_may_lose_power(tmp_path: Path, share: float) -> None:
    s = load_scenario(write(tmp_path, f"[power]\nduring_install = {share}\n"))
    assert s.power == PowerPlan(during_install=share)


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("outer_race:3", FaultPlan("outer_race", count=3)),
        ("ball", FaultPlan("ball", count=1)),
        (
            "inner_race@sim-0001+sim-0004,onset=60,growth=600,severity=0.9",
            FaultPlan("inner_race", 0, ("sim-0001", "sim-0004"), 60, 600, 0.9),
        ),
    ],
)
def test_faults_from_the_command_line(text: str, plan: FaultPlan) -> None:
    assert parse_fault(text) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outer race", "expected KIND:COUNT or KIND@ID"),
        ("rust:2", "kind: 'rust' is not one of"),
        ("ball:2,speed=3", "unknown option 'speed'"),
        ("ball:2,onset=soon", "onset 'soon' is not a number"),
        ("ball:2,severity=0", "severity: 0.0 is not in (0, 1]"),
        ("ball@a+a", "devices: a device is named twice"),
    ],
)
def test_bad_faults_from_the_command_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_fault(text)


def test_a_share_of_the_devices_has_the_lossy_links(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, "[fleet]\ndevices = 200\n[link]\nloss = 0.1\nshare = 0.1\n"))
    lossy = s.lossy_devices()
    assert len(lossy) == 20 and lossy <= set(s.device_ids())
    assert s.lossy_devices() == lossy  # the seed's choice
    assert Scenario(devices=3).lossy_devices() == set(Scenario(devices=3).device_ids())
    assert len(Scenario(devices=3, link=LinkPlan(share=0.01)).lossy_devices()) == 1
    with pytest.raises(ScenarioError) as caught:
        Scenario(link=LinkPlan(share=1.5))
    assert caught.value.problems == [("link.share", "1.5 is not in [0, 1]")]
