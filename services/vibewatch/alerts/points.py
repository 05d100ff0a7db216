"""Alerts as InfluxDB points, for the dashboards: pure.

* ``alert``, one point per change of an alert (:func:`alert_point`): it fired (at its
  start) or it resolved (at its end); its ``alertname``, ``severity`` and subject
  (``device``, ``rollout`` or ``instance``) as tags;
* ``alerts_firing``, one point per rule and snapshot (:func:`firing_points`): how many
  of its alerts fire, 0 included, so "firing now" is the last point of each rule.

``docs/influxdb-schema.md`` describes them; the state database stays the record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from vibewatch.alerts.model import Alert
from vibewatch.alerts.rules import Rule
from vibewatch.influx import schema
from vibewatch.influx.lineprotocol import Point, as_tag_value

__all__ = ["alert_point", "firing_points"]

#: Characters of a label kept in a tag at most.
_TAG_CHARS = 256


def _tag(value: str) -> str:
    return as_tag_value(value, max_chars=_TAG_CHARS)


def _site(site: str) -> list[tuple[str, str]]:
    return [(schema.SITE, site)] if site else []


def alert_point(alert: Alert, *, site: str = "") -> Point:
    """The ``alert`` point of an alert that fired (at its start) or resolved (at its end).

    Args:
        alert: The alert as the rules changed it.
        site: The ``site`` tag; empty: none.
    """
    tags = [(key, _tag(alert.labels[key])) for key in schema.ALERT_TAGS if alert.labels.get(key)]
    fields = (
        (schema.FIRING, alert.firing),
        (schema.SUMMARY, alert.annotations.get("summary", "")),
    )
    at_ns = alert.starts_at_ns if alert.ends_at_ns is None else alert.ends_at_ns
    return Point(schema.ALERT, tuple(sorted(tags + _site(site))), fields, at_ns)


def firing_points(
    rules: Sequence[Rule], firing: Iterable[Alert], *, time_ms: int, site: str = ""
) -> list[Point]:
    """The ``alerts_firing`` points: for each rule (and each alert name of a firing alert
    no rule makes any more), how many of ``firing`` are its.

    Args:
        rules: The rules in force.
        firing: The alerts firing now.
        time_ms: The points' time, ms since the epoch.
        site: The ``site`` tag; empty: none.
    """
    severity = {rule.name: rule.labels.get(schema.SEVERITY, "") for rule in rules}
    counts: Counter[str] = Counter()
    for alert in firing:
        name = alert.labels.get(schema.ALERTNAME, "")
        counts[name] += 1
        severity.setdefault(name, alert.labels.get(schema.SEVERITY, ""))
    at_ns = schema.time_ns(time_ms)
    out = []
    for name, level in sorted(severity.items()):
        tags = [(schema.ALERTNAME, _tag(name)), *_site(site)]
        if level:
            tags.append((schema.SEVERITY, _tag(level)))
        fields = ((schema.ALERTS, counts[name]),)
        out.append(Point(schema.ALERTS_FIRING, tuple(sorted(tags)), fields, at_ns))
    return out
