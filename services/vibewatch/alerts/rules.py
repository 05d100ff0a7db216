"""Alert rules: what fires when, and when it resolves; pure, on a clock the caller hands in.

A rule (``[alerts.rules.NAME]``, the name is its ``alertname``) has a **kind**, labels
(``severity`` ...), annotations (``summary``, ``description``, ``runbook_url``; templates
over the kind's variables, as Python's ``str.format``: ``{device}``, ``{score:.3g}``),
the rules whose alerts **inhibit** its own on the same device (``inhibited_by``), and the
kind's parameters:

* ``anomaly``: fires with a device's anomaly ``start`` event, resolves with its ``end``
  event. Variables: ``device score threshold model version``.
* ``sustained_score``: fires when, of a device's windows in the last ``span`` seconds
  (device time; at least ``min_windows`` of them), a share of at least ``share`` scored
  above ``factor`` times its threshold (the threshold of its latest anomaly event, else of
  its model in the registry); resolves when the share falls below, or no window arrived
  for ``span`` seconds. Variables: ``device share windows factor threshold span``.
* ``offline``: fires with a device's ``offline`` status (its last will), or when nothing
  came from it for ``silent_for`` seconds (0: only the will); resolves when it speaks
  again. Variables: ``device reason silent_for``.
* ``rollout_aborted``: fires while a rollout is aborted and no later rollout of its model
  started; resolves when one did. Variables: ``rollout model version reason``.
* ``ingestion``: fires while an ingest process's last report shows more than
  ``reject_rate`` of its messages rejected since its report before (of at least
  ``min_messages``), or more than ``spool_records`` records waiting in its spool;
  resolves when neither holds, or when its reports stop. Variables: ``instance
  reject_rate spool_records reason``.

:data:`DEFAULT_RULES` is one rule of each kind; :func:`parse_rules` reads the
configuration's tables over them. :class:`RuleEngine` turns the devices' messages and
the periodic looks into alert changes: an alert fires once and resolves once.
"""

from __future__ import annotations

import re
import string
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from vibewatch.alerts.model import Alert, fingerprint
from vibewatch.protocol import AnomalyEvent, DeviceState, EventKind, Status, Telemetry

__all__ = [
    "DEFAULT_RULES",
    "IngestReport",
    "RolloutRecord",
    "Rule",
    "RuleEngine",
    "RuleKind",
    "parse_rules",
]

_MS: Final = 1_000_000
_S: Final = 1_000_000_000
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class RuleKind(StrEnum):
    """What a rule watches."""

    ANOMALY = "anomaly"
    SUSTAINED_SCORE = "sustained_score"
    OFFLINE = "offline"
    ROLLOUT_ABORTED = "rollout_aborted"
    INGESTION = "ingestion"


#: The variables each kind's annotation templates may use.
VARIABLES: Final[Mapping[RuleKind, frozenset[str]]] = {
    RuleKind.ANOMALY: frozenset({"device", "score", "threshold", "model", "version"}),
    RuleKind.SUSTAINED_SCORE: frozenset(
        {"device", "share", "windows", "factor", "threshold", "span"}
    ),
    RuleKind.OFFLINE: frozenset({"device", "reason", "silent_for"}),
    RuleKind.ROLLOUT_ABORTED: frozenset({"rollout", "model", "version", "reason"}),
    RuleKind.INGESTION: frozenset({"instance", "reject_rate", "spool_records", "reason"}),
}

#: Each kind's parameters: name, (type, lowest, highest).
_PARAMS: Final[Mapping[RuleKind, Mapping[str, tuple[type, float, float]]]] = {
    RuleKind.ANOMALY: {},
    RuleKind.SUSTAINED_SCORE: {
        "factor": (float, 0.01, 1e6),
        "share": (float, 0.01, 1.0),
        "span": (float, 1.0, 7 * 86400.0),
        "min_windows": (int, 1, 1_000_000),
    },
    RuleKind.OFFLINE: {"silent_for": (float, 0.0, 30 * 86400.0)},
    RuleKind.ROLLOUT_ABORTED: {},
    RuleKind.INGESTION: {
        "reject_rate": (float, 0.0, 1.0),
        "min_messages": (int, 1, 10**9),
        "spool_records": (int, 0, 10**12),
    },
}


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the module documentation).

    Attributes:
        name: Its ``alertname``.
        kind: What it watches.
        labels: Labels of its alerts besides ``alertname`` and the subject's.
        annotations: Annotation templates over :data:`VARIABLES` of its kind.
        inhibited_by: Rules whose firing alert on the same device mutes its alerts.
        params: The kind's parameters (all of them: defaults filled in).
    """

    name: str
    kind: RuleKind
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    inhibited_by: tuple[str, ...] = ()
    params: Mapping[str, float] = field(default_factory=dict)

    def annotate(self, values: Mapping[str, object]) -> dict[str, str]:
        """Its annotations with ``values`` filled in."""
        return {key: _render(text, values) for key, text in self.annotations.items()}

    def as_json(self) -> dict[str, Any]:
        """The rule as its configuration table."""
        return {
            "kind": self.kind.value,
            **dict(self.params),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "inhibited_by": list(self.inhibited_by),
        }


class _Shown(dict[str, object]):
    """Template values; a missing one is shown as its placeholder."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _render(template: str, values: Mapping[str, object]) -> str:
    """``template`` filled in; a value a format spec does not fit is shown plain."""
    try:
        return template.format_map(_Shown(values))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return re.sub(r"\{(\w+)[^{}]*\}", r"{\1}", template).format_map(_Shown(values))


DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "DeviceAnomaly",
        RuleKind.ANOMALY,
        {"severity": "warning"},
        {
            "summary": "{device}: anomaly score {score:.4g} above the threshold "
            "{threshold:.4g} of {model} v{version}"
        },
        ("DeviceOffline",),
    ),
    Rule(
        "AnomalyScoreSustained",
        RuleKind.SUSTAINED_SCORE,
        {"severity": "critical"},
        {
            "summary": "{device}: {share:.0%} of its last {windows} windows scored above "
            "{factor:g} x its threshold {threshold:.4g}"
        },
        ("DeviceOffline",),
        {"factor": 2.0, "share": 0.5, "span": 600.0, "min_windows": 10},
    ),
    Rule(
        "DeviceOffline",
        RuleKind.OFFLINE,
        {"severity": "critical"},
        {"summary": "{device} is offline ({reason})"},
        (),
        {"silent_for": 900.0},
    ),
    Rule(
        "RolloutAborted",
        RuleKind.ROLLOUT_ABORTED,
        {"severity": "critical"},
        {"summary": "rollout {rollout} of {model} v{version} aborted: {reason}"},
    ),
    Rule(
        "IngestionTrouble",
        RuleKind.INGESTION,
        {"severity": "critical"},
        {"summary": "ingest {instance}: {reason}"},
        (),
        {"reject_rate": 0.05, "min_messages": 100, "spool_records": 10_000},
    ),
)

_COMMON: Final = ("kind", "enabled", "labels", "annotations", "inhibited_by")


def parse_rules(tables: Mapping[str, object]) -> tuple[Rule, ...]:
    """The rules of ``[alerts.rules]``: each table changes the default rule of its name
    (keys left out keep their default; ``enabled = false`` drops it) or adds a rule
    (``kind`` required).

    Raises:
        ValueError: What is wrong, naming the rule and the key.
    """
    rules = {rule.name: rule for rule in DEFAULT_RULES}
    dropped: set[str] = set()
    for name, table in tables.items():
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ValueError(
                f"rule name {name!r} must be 1 to 64 of A-Z a-z 0-9 _, not starting with a digit"
            )
        if not isinstance(table, Mapping):
            raise ValueError(f"rule {name}: expected a table, got {type(table).__name__}")
        rule = _rule(name, table, rules.get(name))
        if rule is None:
            dropped.add(name)
            rules.pop(name, None)
        else:
            rules[name] = rule
    for rule in rules.values():
        for other in rule.inhibited_by:
            if other not in rules and other not in dropped:
                raise ValueError(f"rule {rule.name}: inhibited_by names no rule {other!r}")
    return tuple(
        replace(r, inhibited_by=tuple(o for o in r.inhibited_by if o in rules))
        for r in rules.values()
    )


def _rule(name: str, table: Mapping[str, object], base: Rule | None) -> Rule | None:
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"rule {name}: enabled must be true or false")
    kind_text = table.get("kind", None if base is None else base.kind.value)
    if kind_text is None:
        raise ValueError(f"rule {name}: kind is required (one of {_kinds()})")
    try:
        kind = RuleKind(str(kind_text))
    except ValueError:
        raise ValueError(f"rule {name}: kind {kind_text!r} is not one of {_kinds()}") from None
    if base is not None and base.kind is not kind:
        base = None  # another kind under a default's name: start afresh
    known = set(_COMMON) | set(_PARAMS[kind])
    unknown = sorted(str(k) for k in table if k not in known)
    if unknown:
        raise ValueError(f"rule {name}: unknown key {unknown[0]!r} for kind {kind.value}")
    if not enabled:
        return None
    defaults = _default_params(kind) if base is None else dict(base.params)
    params = {key: _param(name, key, table[key], *_PARAMS[kind][key]) for key in table
              if key in _PARAMS[kind]}  # fmt: skip
    labels = _strings(name, "labels", table.get("labels", {}))
    for label in labels:
        if _NAME.fullmatch(label) is None or label == "alertname":
            raise ValueError(f"rule {name}: {label!r} cannot be a label name here")
    annotations = _strings(name, "annotations", table.get("annotations", {}))
    for key, text in annotations.items():
        _check_template(name, key, text, VARIABLES[kind])
    inhibited = table.get("inhibited_by", list(base.inhibited_by) if base else [])
    if not isinstance(inhibited, list) or not all(isinstance(i, str) for i in inhibited):
        raise ValueError(f"rule {name}: inhibited_by must be an array of rule names")
    return Rule(
        name,
        kind,
        {**(base.labels if base else {}), **labels},
        {**(base.annotations if base else {}), **annotations},
        tuple(dict.fromkeys(i for i in inhibited if i != name)),
        {**defaults, **params},
    )


def _kinds() -> str:
    return ", ".join(k.value for k in RuleKind)


def _default_params(kind: RuleKind) -> dict[str, float]:
    for rule in DEFAULT_RULES:
        if rule.kind is kind:
            return dict(rule.params)
    return {}


def _param(rule: str, key: str, value: object, kind: type, lo: float, hi: float) -> float:
    ok = not isinstance(value, bool) and (
        isinstance(value, int) if kind is int else isinstance(value, int | float)
    )
    if not ok or not lo <= float(value) <= hi:  # type: ignore[arg-type]
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"rule {rule}: {key} must be {what} in [{lo:g}, {hi:g}], not {value!r}")
    return value  # type: ignore[return-value]


def _strings(rule: str, key: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"rule {rule}: {key} must be a table of strings")
    return dict(value)


def _check_template(rule: str, key: str, text: str, variables: frozenset[str]) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"rule {rule}: annotation {key}: {exc}") from None
    for name in fields:
        if name not in variables:
            raise ValueError(
                f"rule {rule}: annotation {key} uses {{{name}}}; "
                f"this kind knows {', '.join(sorted(variables))}"
            )


@dataclass(frozen=True)
class RolloutRecord:
    """A rollout as the rollout-aborted rule sees it.

    Attributes:
        rollout_id: Its id.
        number: Its number (later rollouts have higher ones).
        model_id: The model it ships.
        version: The version it ships.
        phase: ``running``, ``paused``, ``completed`` or ``aborted``.
        reason: Why it is in that phase.
        updated_s: When it last changed, seconds since the epoch.
    """

    rollout_id: str
    number: int
    model_id: str
    version: int
    phase: str
    reason: str
    updated_s: float


@dataclass(frozen=True)
class IngestReport:
    """An ingest process's latest report of its counters.

    Attributes:
        instance: The process's instance name.
        at_s: When it reported, seconds since the epoch.
        interval_s: How often it reports.
        messages_in: Messages taken since it started.
        rejected: Messages rejected since it started.
        spool_records: Records waiting in its spool.
    """

    instance: str
    at_s: float
    interval_s: float
    messages_in: int
    rejected: int
    spool_records: int


@dataclass
class _Windows:
    """A device's recent windows for one sustained-score rule: (device ms, above)."""

    seen: deque[tuple[int, bool]] = field(default_factory=deque)
    above: int = 0
    arrived_ns: int = 0


class RuleEngine:
    """Alert changes from the devices' messages and the periodic looks.

    It keeps the alerts that fire (:attr:`firing`, by fingerprint): a condition that
    holds again does not fire again, and only a firing alert resolves.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        threshold_of: Callable[[str, int], float | None] | None = None,
    ) -> None:
        """An engine for ``rules``.

        Args:
            rules: The rules.
            threshold_of: The threshold of a model version (the registry's), for devices
                whose anomaly events have not told theirs yet; None: none known.
        """
        self.rules = tuple(rules)
        self._by_kind: dict[RuleKind, list[Rule]] = {}
        for rule in self.rules:
            self._by_kind.setdefault(rule.kind, []).append(rule)
        self._threshold_of = threshold_of or (lambda _m, _v: None)
        self.firing: dict[str, Alert] = {}
        self._on_device: Counter[tuple[str | None, str | None]] = Counter()
        self._thresholds: dict[str, float] = {}
        self._heard_ns: dict[str, int] = {}
        self._windows: dict[tuple[str, str], _Windows] = {}
        self._last_report: dict[str, IngestReport] = {}
        self._inhibitors = {r.name: frozenset(r.inhibited_by) for r in self.rules}

    def watches(self, kind: RuleKind) -> bool:
        """Whether a rule of ``kind`` is in force."""
        return bool(self._by_kind.get(kind))

    @property
    def needs_telemetry(self) -> bool:
        """Whether a rule looks at telemetry (sustained score, silence)."""
        return bool(self._by_kind.get(RuleKind.SUSTAINED_SCORE)) or any(
            r.params["silent_for"] > 0 for r in self._by_kind.get(RuleKind.OFFLINE, ())
        )

    def restore(self, alerts: Iterable[Alert], devices: Iterable[str], now_ns: int) -> None:
        """Start from the alerts that fired before a restart, and the devices known then
        (heard of now, so a silent one fires only ``silent_for`` from here)."""
        for alert in alerts:
            if alert.firing:
                self._fire(alert.fingerprint, alert)
        for device in devices:
            self._heard_ns.setdefault(device, now_ns)

    def _fire(self, key: str, alert: Alert) -> None:
        self.firing[key] = alert
        self._on_device[_where(alert)] += 1

    def _change(self, rule: Rule, subject: Mapping[str, str], values: Mapping[str, object],
                at_ns: int, *, fire: bool) -> list[Alert]:  # fmt: skip
        labels = {"alertname": rule.name, **subject, **rule.labels}
        key = fingerprint(labels)
        old = self.firing.get(key)
        if fire:
            if old is not None:
                return []
            alert = Alert(labels, rule.annotate(values), at_ns)
            self._fire(key, alert)
            return [alert]
        if old is None:
            return []
        self._on_device[_where(old)] -= 1
        del self.firing[key]
        return [Alert(old.labels, old.annotations, old.starts_at_ns, max(at_ns, old.starts_at_ns))]

    def message(self, message: AnomalyEvent | Status | Telemetry, now_ns: int) -> list[Alert]:
        """The alert changes a device's message makes."""
        device = message.device
        out: list[Alert] = []
        spoke = not (isinstance(message, Status) and message.state is DeviceState.OFFLINE)
        if spoke:
            self._heard_ns[device] = now_ns
        if isinstance(message, AnomalyEvent):
            self._thresholds[device] = message.threshold
            at = message.t * _MS
            values = {
                "device": device,
                "score": message.score,
                "threshold": message.threshold,
                "model": message.model_id,
                "version": message.model_version,
            }
            for rule in self._by_kind.get(RuleKind.ANOMALY, ()):
                fire = message.kind is EventKind.START
                out += self._change(rule, {"device": device}, values, at, fire=fire)
        elif isinstance(message, Telemetry):
            for rule in self._by_kind.get(RuleKind.SUSTAINED_SCORE, ()):
                out += self._sustained(rule, message, now_ns)
        elif message.model_id is not None and message.model_version is not None:
            known = self._threshold_of(message.model_id, message.model_version)
            if known is not None:
                self._thresholds[device] = known
        at = message.t * _MS if isinstance(message, Status) and message.t is not None else now_ns
        for rule in self._by_kind.get(RuleKind.OFFLINE, ()):
            values = {"device": device, "reason": "its connection dropped",
                      "silent_for": rule.params["silent_for"]}  # fmt: skip
            out += self._change(rule, {"device": device}, values, at, fire=not spoke)
        return out

    def _sustained(self, rule: Rule, message: Telemetry, now_ns: int) -> list[Alert]:
        device = message.device
        threshold = self._thresholds.get(device)
        if threshold is None:
            return []
        limit = rule.params["factor"] * threshold
        windows = self._windows.setdefault((rule.name, device), _Windows())
        windows.arrived_ns = now_ns
        for reading in message.readings:
            above = reading.score > limit
            windows.seen.append((reading.t, above))
            windows.above += above
        newest = max(t for t, _ in windows.seen)
        while windows.seen and windows.seen[0][0] <= newest - rule.params["span"] * 1000:
            windows.above -= windows.seen.popleft()[1]
        count = len(windows.seen)
        share = windows.above / count if count else 0.0
        fire = count >= rule.params["min_windows"] and share >= rule.params["share"]
        values = {"device": device, "share": share, "windows": count,
                  "factor": rule.params["factor"], "threshold": threshold,
                  "span": rule.params["span"]}  # fmt: skip
        at = message.readings[-1].t * _MS
        return self._change(rule, {"device": device}, values, at, fire=fire)

    def tick(
        self,
        now_ns: int,
        rollouts: Sequence[RolloutRecord] = (),
        ingest: Sequence[IngestReport] = (),
    ) -> list[Alert]:
        """The alert changes of a periodic look: silent devices, windows gone stale,
        aborted rollouts, ingest processes in trouble."""
        out: list[Alert] = []
        for rule in self._by_kind.get(RuleKind.OFFLINE, ()):
            silent_for = rule.params["silent_for"]
            if silent_for <= 0:
                continue
            for device, heard in self._heard_ns.items():
                if heard < now_ns - silent_for * _S:
                    values = {"device": device, "silent_for": silent_for,
                              "reason": f"nothing from it for {silent_for:g} s"}  # fmt: skip
                    out += self._change(rule, {"device": device}, values, now_ns, fire=True)
        for rule in self._by_kind.get(RuleKind.SUSTAINED_SCORE, ()):
            for (name, device), windows in list(self._windows.items()):
                if name == rule.name and windows.arrived_ns < now_ns - rule.params["span"] * _S:
                    del self._windows[(name, device)]
                    out += self._change(rule, {"device": device}, {}, now_ns, fire=False)
        for rule in self._by_kind.get(RuleKind.ROLLOUT_ABORTED, ()):
            out += self._rollouts(rule, rollouts, now_ns)
        for rule in self._by_kind.get(RuleKind.INGESTION, ()):
            out += self._ingest(rule, ingest, now_ns)
        for report in ingest:
            self._last_report[report.instance] = report
        return out

    def _rollouts(self, rule: Rule, rollouts: Sequence[RolloutRecord], now_ns: int) -> list[Alert]:
        latest: dict[str, int] = {}
        for r in rollouts:
            latest[r.model_id] = max(latest.get(r.model_id, 0), r.number)
        out: list[Alert] = []
        for r in rollouts:
            if r.phase != "aborted":
                continue
            subject = {"rollout": r.rollout_id, "model": r.model_id}
            values = {"rollout": r.rollout_id, "model": r.model_id, "version": r.version,
                      "reason": r.reason}  # fmt: skip
            fire = latest[r.model_id] == r.number
            at = int(r.updated_s * _S) if fire else now_ns
            out += self._change(rule, subject, values, at, fire=fire)
        return out

    def _ingest(self, rule: Rule, reports: Sequence[IngestReport], now_ns: int) -> list[Alert]:
        out: list[Alert] = []
        for report in reports:
            before = self._last_report.get(report.instance)
            if before is not None and before.at_s == report.at_s:
                continue  # nothing new
            fresh = report.at_s >= now_ns / _S - 3 * report.interval_s
            reasons = []
            if before is not None and before.messages_in <= report.messages_in:
                taken = report.messages_in - before.messages_in
                rate = (report.rejected - before.rejected) / taken if taken else 0.0
                if taken >= rule.params["min_messages"] and rate > rule.params["reject_rate"]:
                    reasons.append(f"{rate:.1%} of {taken} messages rejected")
            else:
                rate = 0.0
            if report.spool_records > rule.params["spool_records"]:
                reasons.append(f"{report.spool_records} records waiting in its spool")
            values = {"instance": report.instance, "reject_rate": rate,
                      "spool_records": report.spool_records,
                      "reason": "; ".join(reasons)}  # fmt: skip
            fire = fresh and bool(reasons)
            at = int(report.at_s * _S)
            out += self._change(rule, {"instance": report.instance}, values, at, fire=fire)
        known = {r.instance for r in reports}
        for instance, last in self._last_report.items():
            if instance not in known or last.at_s < now_ns / _S - 3 * last.interval_s:
                out += self._change(rule, {"instance": instance}, {}, now_ns, fire=False)
        return out

    def muted(self, alert: Alert) -> bool:
        """Whether a firing alert of a rule it is ``inhibited_by`` is on its device."""
        inhibitors = self._inhibitors.get(alert.labels.get("alertname", ""))
        if not inhibitors:
            return False
        device = alert.labels.get("device")
        return any(self._on_device[(name, device)] > 0 for name in inhibitors)


def _where(alert: Alert) -> tuple[str | None, str | None]:
    """An alert's rule and device (the inhibition's index)."""
    return alert.labels.get("alertname"), alert.labels.get("device")
