"""Alerts as Prometheus Alertmanager (0.25) sees them: fingerprints, group keys and the
webhook body, byte for byte.

Pure functions; ``docs/alerts.md`` says where each rule comes from:

* :func:`fingerprint`: FNV-1a 64 over the labels sorted by name, each ``name 0xFF value
  0xFF``, as 16 lower-case hex digits;
* :func:`labels_text`: a label set as Alertmanager prints it in a group key:
  ``{a="1", b="2"}``, the ``name="value"`` strings sorted as strings, values quoted as
  Go's ``strconv.Quote`` does;
* :func:`group_key`: the route's key (``{}`` for the root route) and the group labels,
  joined by ``:``;
* :func:`webhook_body`: the version 4 body: alerts sorted as Alertmanager sorts them
  (those with a ``job`` label first, then ``instance``, then fewer labels, then label by
  label), cut to ``max_alerts``, with the common labels and annotations of those sent,
  compact JSON escaped as Go's ``encoding/json`` escapes it (``<``, ``>``, ``&``,
  U+2028 and U+2029 too), ending in a newline. Times are RFC 3339 in UTC with as many
  fractional digits as needed (nanoseconds); a firing alert's ``endsAt`` is
  ``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "Alert",
    "fingerprint",
    "format_time",
    "group_key",
    "labels_text",
    "webhook_body",
]

_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_MASK64: Final = (1 << 64) - 1
#: ``endsAt`` of a firing alert: Go's zero time.
ZERO_TIME: Final = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes:
        labels: What identifies it (``alertname``, ``device`` ...).
        annotations: What explains it (``summary``, ``description``, ``runbook_url``).
        starts_at_ns: When it started, nanoseconds since the epoch.
        ends_at_ns: When it resolved (``None`` while it fires).
        generator_url: A link to what raised it.
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at_ns: int = 0
    ends_at_ns: int | None = None
    generator_url: str = ""

    @property
    def firing(self) -> bool:
        """Whether it has not resolved."""
        return self.ends_at_ns is None

    @property
    def fingerprint(self) -> str:
        """Its fingerprint (:func:`fingerprint` of its labels)."""
        return fingerprint(self.labels)

    def as_dict(self) -> dict[str, Any]:
        """The alert as plain JSON data (:meth:`from_dict` takes it back)."""
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at_ns": self.starts_at_ns,
            "ends_at_ns": self.ends_at_ns,
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The alert :meth:`as_dict` gave.

        Raises:
            KeyError: A key is missing.
            TypeError: A value is of the wrong type.
        """
        labels, annotations = data["labels"], data["annotations"]
        if not all(isinstance(v, str) for v in (*labels.values(), *annotations.values())):
            raise TypeError("labels and annotations must be strings")
        ends = data["ends_at_ns"]
        return cls(
            {str(k): v for k, v in labels.items()},
            {str(k): v for k, v in annotations.items()},
            int(data["starts_at_ns"]),
            None if ends is None else int(ends),
            str(data["generator_url"]),
        )


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set."""
    value = _FNV_OFFSET
    for name in sorted(labels, key=str.encode):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return f"{value:016x}"


_SHORT_QUOTE: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(text: str) -> str:
    """``strconv.Quote``: printable characters (letters, marks, numbers, punctuation,
    symbols, the ASCII space) as they are, the rest escaped."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":
            out.append(ch)
        elif ch in _SHORT_QUOTE:
            out.append(_SHORT_QUOTE[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def labels_text(labels: Mapping[str, str]) -> str:
    """A label set as Alertmanager prints it (group keys)."""
    pairs = sorted((f"{name}={_go_quote(value)}" for name, value in labels.items()), key=str.encode)
    return "{" + ", ".join(pairs) + "}"


def group_key(group_labels: Mapping[str, str], route_key: str = "{}") -> str:
    """The key of an aggregation group: its route's key and its labels."""
    return f"{route_key}:{labels_text(group_labels)}"


_JSON_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE: Final = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


def _json_string(text: str) -> str:
    """A JSON string as Go's ``encoding/json`` writes it (HTML-safe)."""
    return (
        '"'
        + _NEEDS_ESCAPE.sub(lambda m: _JSON_ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)
        + '"'
    )


def _json_map(values: Mapping[str, str]) -> str:
    items = sorted(values.items(), key=lambda kv: kv[0].encode())
    return "{" + ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in items) + "}"


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with the fraction Go's ``RFC3339Nano`` writes (trailing zeros
    dropped, none at all for whole seconds)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def _before(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """``LabelSet.Before``: fewer labels first, then the first difference over the sorted
    names (the set without the name first, else the smaller value)."""
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted(set(a) | set(b), key=str.encode):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name].encode() < b[name].encode()
    return False


class _Order:
    """Alertmanager's order of the alerts of a notification (a sort key)."""

    __slots__ = ("labels",)

    def __init__(self, alert: Alert) -> None:
        self.labels = alert.labels

    def __lt__(self, other: _Order) -> bool:
        for name in ("job", "instance"):
            mine, theirs = self.labels.get(name), other.labels.get(name)
            if mine is None and theirs is None:
                continue
            if mine is None:
                return False
            if theirs is None:
                return True
            if mine != theirs:
                return mine.encode() < theirs.encode()
        return _before(self.labels, other.labels)


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k, "") == v}
    return common


def _alert_json(alert: Alert) -> str:
    ends = ZERO_TIME if alert.ends_at_ns is None else format_time(alert.ends_at_ns)
    return (
        f'{{"status":{_json_string("firing" if alert.firing else "resolved")},'
        f'"labels":{_json_map(alert.labels)},"annotations":{_json_map(alert.annotations)},'
        f'"startsAt":{_json_string(format_time(alert.starts_at_ns))},'
        f'"endsAt":{_json_string(ends)},"generatorURL":{_json_string(alert.generator_url)},'
        f'"fingerprint":{_json_string(alert.fingerprint)}}}'
    )


_META: Final = re.compile(r"[\\.+*?()|\[\]{}^$]")


def _quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: a backslash before each of ``\\.+*?()|[]{}^$``."""
    return _META.sub(lambda m: "\\" + m[0], text)


def webhook_body(
    *,
    receiver: str,
    alerts: Sequence[Alert],
    group_labels: Mapping[str, str],
    group_key: str,
    external_url: str,
    max_alerts: int = 0,
) -> bytes:
    """The webhook body Alertmanager sends for a group (see the module documentation).

    Args:
        receiver: The receiver's name (sent with regular-expression metacharacters
            escaped, as Alertmanager sends it).
        alerts: The group's alerts, in any order.
        group_labels: The group's labels.
        group_key: Its key (:func:`group_key`).
        external_url: Where the alerts can be seen (a trailing ``/`` is dropped).
        max_alerts: Send at most this many (0: all); the rest are counted in
            ``truncatedAlerts``.
    """
    ordered = sorted(alerts, key=_Order)
    sent = ordered[:max_alerts] if max_alerts > 0 else ordered
    status = "firing" if any(a.firing for a in sent) else "resolved"
    common_labels = _common([a.labels for a in sent])
    common_annotations = _common([a.annotations for a in sent])
    body = (
        f'{{"receiver":{_json_string(_quote_meta(receiver))},"status":{_json_string(status)},'
        f'"alerts":[{",".join(_alert_json(a) for a in sent)}],'
        f'"groupLabels":{_json_map(group_labels)},"commonLabels":{_json_map(common_labels)},'
        f'"commonAnnotations":{_json_map(common_annotations)},'
        f'"externalURL":{_json_string(external_url.rstrip("/"))},"version":"4",'
        f'"groupKey":{_json_string(group_key)},"truncatedAlerts":{len(ordered) - len(sent)}}}\n'
    )
    return body.encode()
