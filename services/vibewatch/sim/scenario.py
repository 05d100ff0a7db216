"""What a simulation runs: the fleet, the faults that develop, and the link and power knobs.

A scenario comes from the command line (``vibewatch sim --devices N --faults ...``) or from
a TOML file; every field has a default, so an empty file is a healthy fleet of 50::

    [fleet]
    devices = 50          # how many
    id_prefix = "sim-"    # device ids sim-0001, sim-0002, ...
    seed = 7              # machines, profiles, faulty devices and link faults derive from it
    speedup = 1.0         # simulated seconds per real second
    duration_s = 600      # simulated span; 0 runs until stopped

    [[fault]]             # one table per fault; any number
    kind = "outer_race"   # one of vibewatch.signals.FAULT_KINDS
    count = 3             # on this many devices chosen by the seed ...
    # devices = ["sim-0003", "sim-0017"]   # ... or on these
    onset_s = 60          # appears this long after the start (simulated seconds)
    growth_s = 600        # grows linearly from 0 to its severity over this span
    severity = 0.8        # in (0, 1]

    [link]                # what each device's radio link does
    loss = 0.01           # share of messages lost, each way
    duplicate = 0.0       # share of downlink messages delivered twice
    reorder = 0.0         # share of downlink messages held back behind the next one
    disconnect_mean_s = 0 # mean time between dropped connections; 0: never
    share = 1.0           # share of the devices whose link does this (chosen by the seed)

    [power]
    loss_mean_s = 0       # mean time between power losses of a device; 0: never
    during_install = 0.0  # chance that a model install loses power once, in [0, 1]

A bad file is refused with :class:`~vibewatch.errors.ConfigError` naming the file, the
line and the field (``scenario.toml:14: fault[2].severity: 1.5 is not in (0, 1]``).
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vibewatch.config import toml_type
from vibewatch.errors import ConfigError
from vibewatch.protocol import ID_PATTERN
from vibewatch.signals import FAULT_KINDS, FaultKind

__all__ = [
    "FaultPlan",
    "LinkPlan",
    "PowerPlan",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_fault",
]

#: Most devices one simulator runs.
MAX_DEVICES = 100_000


class ScenarioError(ConfigError):
    """A scenario that cannot run.

    Attributes:
        problems: ``(field, problem)`` pairs, fields named as in the file
            (``fault[2].severity``).
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class FaultPlan:
    """A fault that develops on some devices.

    Attributes:
        kind: One of :data:`vibewatch.signals.FAULT_KINDS`.
        count: How many devices, chosen by the scenario's seed (when ``devices`` is empty).
        devices: The devices, by id.
        onset_s: Simulated seconds after the start when the fault appears.
        growth_s: Seconds over which it grows linearly from 0 to ``severity`` (0: at once).
        severity: Final severity, in (0, 1].
    """

    kind: FaultKind
    count: int = 0
    devices: tuple[str, ...] = ()
    onset_s: float = 0.0
    growth_s: float = 0.0
    severity: float = 0.5

    def severity_at(self, t_s: float) -> float:
        """Severity ``t_s`` simulated seconds after the start (0 before the onset)."""
        if t_s < self.onset_s:
            return 0.0
        if self.growth_s <= 0:
            return self.severity
        return self.severity * min(1.0, (t_s - self.onset_s) / self.growth_s)


@dataclass(frozen=True)
class LinkPlan:
    """What each device's radio link does to its messages (probabilities in [0, 1)).

    Attributes:
        loss: Share of messages lost, each way.
        duplicate: Share of downlink messages delivered twice.
        reorder: Share of downlink messages held back behind the next one.
        disconnect_mean_s: Mean simulated time between dropped connections; 0: never.
        share: Share of the devices, in [0, 1], whose link does all this (chosen by the
            seed: :meth:`Scenario.lossy_devices`); the others' links are faultless.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    disconnect_mean_s: float = 0.0
    share: float = 1.0


@dataclass(frozen=True)
class PowerPlan:
    """Power losses: the device reboots with what its storage holds.

    Attributes:
        loss_mean_s: Mean simulated time between power losses of a device; 0: never.
        during_install: Probability, in [0, 1], that a model install (from the device's
            acceptance of a signed ``ota/job`` to its confirmation or its fallback) loses
            power once, at a random point: while a chunk is written, while the complete
            blob is verified, or during the trial (see :mod:`vibewatch.sim.run`).
    """

    loss_mean_s: float = 0.0
    during_install: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """A simulation: the fleet and what happens to it.

    Attributes:
        devices: Number of devices.
        id_prefix: Device ids are the prefix and a four-digit (or wider) number from 1.
        seed: Seed of everything random in the run.
        speedup: Simulated seconds per real second (> 0).
        duration_s: Simulated span in seconds; 0 runs until stopped.
        faults: Faults that develop.
        link: The link knobs.
        power: The power knobs.
    """

    devices: int = 50
    id_prefix: str = "sim-"
    seed: int = 0
    speedup: float = 1.0
    duration_s: float = 0.0
    faults: tuple[FaultPlan, ...] = ()
    link: LinkPlan = field(default_factory=LinkPlan)
    power: PowerPlan = field(default_factory=PowerPlan)

    def __post_init__(self) -> None:
        problems = _check_scenario(self)
        if problems:
            raise ScenarioError(problems)

    def device_ids(self) -> list[str]:
        """The fleet's device ids, in order."""
        width = max(4, len(str(self.devices)))
        return [f"{self.id_prefix}{i:0{width}d}" for i in range(1, self.devices + 1)]

    def lossy_devices(self) -> frozenset[str]:
        """The devices whose link does what ``[link]`` says: ``link.share`` of them (at
        least one when the share is above 0), drawn by the seed."""
        ids = self.device_ids()
        if self.link.share >= 1:
            return frozenset(ids)
        count = math.ceil(self.link.share * len(ids))
        return frozenset(random.Random(self.seed * 7 + 1).sample(ids, count))

    def faulty_devices(self) -> dict[str, list[FaultPlan]]:
        """Which devices get which faults: named ones, then ``count`` drawn by the seed
        among the devices without a fault of that kind yet."""
        ids = self.device_ids()
        chosen: dict[str, list[FaultPlan]] = {}
        rng = random.Random(self.seed)
        for plan in self.faults:
            if plan.devices:
                targets = list(plan.devices)
            else:
                free = [i for i in ids if all(f.kind != plan.kind for f in chosen.get(i, []))]
                targets = rng.sample(free, min(plan.count, len(free)))
            for device in targets:
                chosen.setdefault(device, []).append(plan)
        return chosen


# ------------------------------------------------------------------------ checks


def _probability(value: float) -> str | None:
    return None if 0 <= value < 1 else f"{value} is not in [0, 1)"


def _share(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"{value} is not in [0, 1]"


def _non_negative(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else f"{value} is not a number >= 0"


def _check_fault(plan: FaultPlan, ids: set[str] | None, devices: int) -> list[tuple[str, str]]:
    """The problems of a fault in a fleet of ``devices`` whose ids are ``ids`` (None: not
    known yet, as on the command line)."""
    problems: list[tuple[str, str]] = []
    if plan.kind not in FAULT_KINDS:
        problems.append(("kind", f"{plan.kind!r} is not one of {', '.join(FAULT_KINDS)}"))
    if plan.devices and plan.count:
        problems.append(("count", "give count or devices, not both"))
    elif not plan.devices and not 1 <= plan.count <= devices:
        problems.append(("count", f"{plan.count} is not in [1, {devices}] (the fleet)"))
    unknown = [d for d in plan.devices if ids is not None and d not in ids]
    if unknown:
        problems.append(("devices", f"{', '.join(map(repr, unknown))} not in the fleet"))
    if len(set(plan.devices)) != len(plan.devices):
        problems.append(("devices", "a device is named twice"))
    for name in ("onset_s", "growth_s"):
        problem = _non_negative(getattr(plan, name))
        if problem:
            problems.append((name, problem))
    if not 0 < plan.severity <= 1:
        problems.append(("severity", f"{plan.severity} is not in (0, 1]"))
    return problems


def _check_scenario(s: Scenario) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not 1 <= s.devices <= MAX_DEVICES:
        problems.append(("fleet.devices", f"{s.devices} is not in [1, {MAX_DEVICES}]"))
        return problems
    width = max(4, len(str(s.devices)))
    if not re.fullmatch(ID_PATTERN, f"{s.id_prefix}{'1' * width}"):
        problems.append(
            ("fleet.id_prefix", f"{s.id_prefix!r} does not make device ids ({ID_PATTERN})")
        )
    if s.seed < 0:
        problems.append(("fleet.seed", f"{s.seed} is not >= 0"))
    if not (math.isfinite(s.speedup) and s.speedup > 0):
        problems.append(("fleet.speedup", f"{s.speedup} is not a number > 0"))
    if duration_problem := _non_negative(s.duration_s):
        problems.append(("fleet.duration_s", duration_problem))
    ids = set(s.device_ids()) if not problems else set()
    for i, plan in enumerate(s.faults, 1):
        problems += [(f"fault[{i}].{name}", p) for name, p in _check_fault(plan, ids, s.devices)]
    for name in ("loss", "duplicate", "reorder"):
        problem = _probability(getattr(s.link, name))
        if problem:
            problems.append((f"link.{name}", problem))
    checks = (
        ("link.disconnect_mean_s", _non_negative(s.link.disconnect_mean_s)),
        ("link.share", _share(s.link.share)),
        ("power.loss_mean_s", _non_negative(s.power.loss_mean_s)),
        ("power.during_install", _share(s.power.during_install)),
    )
    problems += [(name, problem) for name, problem in checks if problem]
    return problems


# -------------------------------------------------------------------- the file

_TABLES: dict[str, tuple[str, ...]] = {
    "fleet": ("devices", "id_prefix", "seed", "speedup", "duration_s"),
    "fault": ("kind", "count", "devices", "onset_s", "growth_s", "severity"),
    "link": ("loss", "duplicate", "reorder", "disconnect_mean_s", "share"),
    "power": ("loss_mean_s", "during_install"),
}
_INTS = {"devices", "seed", "count"}
_STRINGS = {"id_prefix", "kind"}
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _line_of(text: str, table: str, index: int, key: str | None) -> int:
    """Line (from 1) of ``key`` in the ``index``-th (from 1) ``[table]`` or ``[[table]]``
    of a TOML text; the table's header line when the key is not on a line of its own, 1
    when the table is not found."""
    current, seen, header = None, 0, 0
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            current = match[2]
            if current == table:
                seen += 1
                if seen == index:
                    header = number
            continue
        if header and current == table and seen == index:
            found = _KEY.match(line)
            if key is not None and found and found[1] == key:
                return number
    return header or 1


def _typed(table: str, key: str, value: object) -> str | None:
    """The type problem of a raw TOML value for ``key`` of ``table``, or None."""
    if table == "fault" and key == "devices":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "an array of device ids"
    if key in _INTS:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if key in _STRINGS:
        return None if isinstance(value, str) else "a string"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return None if ok else "a number"


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file (see the module documentation).

    Raises:
        ConfigError: The file cannot be read, is not TOML, or a table, key or value is
            wrong; the message names the file, the line and the field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"scenario file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read scenario file {path}: {exc.strerror}") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    def fail(table: str, index: int, key: str | None, problem: str) -> ConfigError:
        name = table if index == 0 else f"{table}[{index}]"
        where = f"{name}.{key}" if key else f"[{name}]"
        line = _line_of(text, table, max(index, 1), key)
        return ConfigError(f"{path}:{line}: {where}: {problem}")

    values: dict[str, dict[str, Any]] = {"fleet": {}, "link": {}, "power": {}}
    faults: list[dict[str, Any]] = []
    for name, raw in document.items():
        if name not in _TABLES:
            raise fail(name, 0, None, f"unknown table (expected {', '.join(_TABLES)})")
        tables = raw if name == "fault" else [raw]
        if name == "fault" and not isinstance(raw, list):
            raise fail(name, 0, None, "must be an array of tables [[fault]]")
        for index, table in enumerate(tables, 1 if name == "fault" else 0):
            if not isinstance(table, dict):
                raise fail(name, index, None, f"must be a table, not {toml_type(table)}")
            for key, value in table.items():
                if key not in _TABLES[name]:
                    known = ", ".join(_TABLES[name])
                    raise fail(name, index, key, f"unknown field (expected one of {known})")
                wanted = _typed(name, key, value)
                if wanted is not None:
                    raise fail(name, index, key, f"must be {wanted}, not {toml_type(value)}")
            if name == "fault":
                faults.append(table)
            else:
                values[name] = table
    try:
        return Scenario(
            **values["fleet"],
            faults=tuple(_fault_plan(f) for f in faults),
            link=LinkPlan(**values["link"]),
            power=PowerPlan(**values["power"]),
        )
    except ScenarioError as exc:
        name, problem = exc.problems[0]
    table, _, key = name.partition(".")
    index = 0
    match = re.fullmatch(r"(\w+)\[(\d+)\]", table)
    if match:
        table, index = match[1], int(match[2])
    raise fail(table, index, key, problem) from None


def _fault_plan(table: dict[str, Any]) -> FaultPlan:
    """A fault table's plan; its values have the types :func:`_typed` checked."""
    return FaultPlan(**{**table, "devices": tuple(table.get("devices", ()))})


def parse_fault(text: str) -> FaultPlan:
    """A fault from the command line: ``KIND:COUNT`` or ``KIND@ID+ID...``, then optional
    ``,onset=S``, ``,growth=S`` and ``,severity=X`` (``outer_race:3,onset=60,growth=600``).

    Raises:
        ConfigError: The text is not such a fault; the message names the part.
    """
    head, *options = text.split(",")
    match = re.fullmatch(r"([a-z_]+)(?::(\d+)|@(.+))?", head.strip())
    if not match:
        raise ConfigError(f"--faults {text!r}: expected KIND:COUNT or KIND@ID+ID, then options")
    kind, count, devices = match[1], match[2], match[3]
    fields: dict[str, Any] = {
        "kind": kind,
        "count": int(count) if count else (0 if devices else 1),
        "devices": tuple(devices.split("+")) if devices else (),
    }
    for option in options:
        key, _, value = option.partition("=")
        key = key.strip()
        if key not in ("onset", "growth", "severity"):
            raise ConfigError(
                f"--faults {text!r}: unknown option {key!r} (onset, growth, severity)"
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--faults {text!r}: {key} {value!r} is not a number") from None
        fields[key if key == "severity" else f"{key}_s"] = number
    plan = FaultPlan(**fields)
    problems = _check_fault(plan, None, MAX_DEVICES)
    if problems:
        raise ConfigError(f"--faults {text!r}: {problems[0][0]}: {problems[0][1]}")
    return plan
