"""Grouping and the notification schedule, as Alertmanager 0.25 does them; and matchers.

Pure logic on a clock the caller hands in (nanoseconds since the epoch):

* alerts fall into **groups** by the values of the route's ``group_by`` labels (``...``:
  all of them); an alert is identified by its fingerprint, and an update keeps the
  earliest ``startsAt``;
* a new group waits ``group_wait`` before its first notification (not when its alert
  started longer ago than that), then looks again every ``group_interval``;
* at each look it notifies (**dedup**) when no notification went out before and an alert
  fires, when a firing alert is new since the last notification, when every alert
  resolved, when an alert resolved since (with ``send_resolved``), or when nothing
  changed but ``repeat_interval`` passed since the last one; a resolved alert is then
  dropped from its group (it is notified once);
* muted alerts (silenced or inhibited: :class:`Matcher`) are left out before that
  decision, so a notification that would hold only muted alerts is not sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from vibewatch.alerts.model import Alert, group_key, webhook_body

__all__ = ["Dispatcher", "Matcher", "Notice", "Route", "parse_matcher"]

_S: Final = 1_000_000_000
Op = Literal["=", "!=", "=~", "!~"]
_MATCHER: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")


@dataclass(frozen=True)
class Matcher:
    """A label matcher of silences, inhibition and receivers: ``name op value``; a
    regular expression matches the whole value (``^(?:value)$``), and an absent label
    is matched as the empty string.

    Raises:
        ValueError: A regular expression that does not compile.
    """

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise ValueError(f"{self.name}{self.op}{self.value!r}: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy it."""
        value = labels.get(self.name, "")
        if self._regex is not None:
            return bool(self._regex.match(value)) == (self.op == "=~")
        return (value == self.value) == (self.op == "=")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """A matcher from ``name=value``, ``name!="value"``, ``name=~regex`` ...

    Raises:
        ValueError: Not a matcher; the message shows it.
    """
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise ValueError(f'{text!r} is not a matcher like severity="page" or device=~"pump-.*"')
    name, op, value = match[1], match[2], match[3]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r'\\(["\\n])', lambda m: "\n" if m[1] == "n" else m[1], value[1:-1])
    return Matcher(name, op, value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Route:
    """How alerts are grouped and notified (one receiver).

    Attributes:
        receiver: The receiver's name.
        group_by: The labels that make a group; ``("...",)``: all labels.
        group_wait_s: Seconds a new group waits before its first notification.
        group_interval_s: Seconds between two looks at a group.
        repeat_interval_s: Seconds before an unchanged notification goes out again.
        send_resolved: Whether resolved alerts are notified.
        max_alerts: At most this many alerts in a notification (0: all).
        key: The route's key in group keys.
    """

    receiver: str
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 14_400.0
    send_resolved: bool = True
    max_alerts: int = 0
    key: str = "{}"

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels of the group an alert with ``labels`` falls into."""
        if self.group_by == ("...",):
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}


@dataclass(frozen=True)
class Notice:
    """A notification to send.

    Attributes:
        receiver: Its receiver.
        group_key: Its group's key.
        body: The webhook body.
        alerts: The alerts in it.
    """

    receiver: str
    group_key: str
    body: bytes
    alerts: tuple[Alert, ...]


@dataclass
class _Sent:
    firing: frozenset[str]
    resolved: frozenset[str]
    at_ns: int


@dataclass
class _Group:
    labels: dict[str, str]
    key: str
    next_ns: int
    alerts: dict[str, Alert] = field(default_factory=dict)
    flushed: bool = False
    sent: _Sent | None = None


class Dispatcher:
    """Groups alerts and says when to notify what (see the module documentation)."""

    def __init__(
        self,
        route: Route,
        *,
        external_url: str = "",
        muted: Callable[[Alert, Sequence[Alert]], bool] | None = None,
    ) -> None:
        """A dispatcher for one route.

        Args:
            route: The grouping and the schedule.
            external_url: The ``externalURL`` of the notifications.
            muted: Whether an alert is muted (silenced, or inhibited by one of the
                others) when a notification is made.
        """
        self._route = route
        self._external_url = external_url
        self._muted = muted or (lambda _alert, _others: False)
        self._groups: dict[str, _Group] = {}
        self._dirty: set[str] = set()

    @property
    def route(self) -> Route:
        """Its route."""
        return self._route

    def put(self, alert: Alert, now_ns: int) -> None:
        """A new alert or an update of one (same labels)."""
        labels = self._route.group_labels(alert.labels)
        key = group_key(labels, self._route.key)
        group = self._groups.get(key)
        if group is None:
            group = _Group(labels, key, now_ns + int(self._route.group_wait_s * _S))
            self._groups[key] = group
        if not group.flushed and alert.starts_at_ns + self._route.group_wait_s * _S < now_ns:
            group.next_ns = now_ns  # it started long ago: no wait
        old = group.alerts.get(alert.fingerprint)
        if old is not None and old.starts_at_ns < alert.starts_at_ns:
            alert = Alert(
                alert.labels,
                alert.annotations,
                old.starts_at_ns,
                alert.ends_at_ns,
                alert.generator_url,
            )
        group.alerts[alert.fingerprint] = alert
        self._dirty.add(key)

    def next_ns(self) -> int | None:
        """When the next group is due for a look."""
        return min((g.next_ns for g in self._groups.values()), default=None)

    def due(self, now_ns: int) -> list[Notice]:
        """Look at the groups due by ``now_ns``; the notifications to send."""
        out: list[Notice] = []
        for key, group in list(self._groups.items()):
            if group.next_ns > now_ns:
                continue
            before = (group.flushed, group.sent, len(group.alerts))
            group.next_ns = now_ns + int(self._route.group_interval_s * _S)
            group.flushed = True
            notice = self._flush(group, now_ns)
            if notice is not None:
                out.append(notice)
            if (group.flushed, group.sent, len(group.alerts)) != before:
                self._dirty.add(key)  # a look that only moved the schedule is no change
            if not group.alerts:
                del self._groups[key]
        return out

    def _flush(self, group: _Group, now_ns: int) -> Notice | None:
        every = list(group.alerts.values())
        resolved_now = {fp for fp, a in group.alerts.items() if _resolved(a, now_ns)}
        alerts = [a for a in every if not self._muted(a, every)]
        firing = frozenset(a.fingerprint for a in alerts if a.fingerprint not in resolved_now)
        resolved = frozenset(a.fingerprint for a in alerts if a.fingerprint in resolved_now)
        if not self._needs_update(group.sent, firing, resolved, now_ns):
            if group.sent is None:  # resolved before anything was told of it: forget it
                for fp in resolved_now:
                    del group.alerts[fp]
            return None
        group.sent = _Sent(firing, resolved, now_ns)
        for fp in resolved_now:  # a resolved alert is notified once
            del group.alerts[fp]
        shown = [
            a if a.fingerprint in resolved_now else _firing(a)
            for a in alerts
            if self._route.send_resolved or a.fingerprint not in resolved_now
        ]
        if not shown:
            return None
        body = webhook_body(
            receiver=self._route.receiver,
            alerts=shown,
            group_labels=group.labels,
            group_key=group.key,
            external_url=self._external_url,
            max_alerts=self._route.max_alerts,
        )
        return Notice(self._route.receiver, group.key, body, tuple(shown))

    def _needs_update(
        self, sent: _Sent | None, firing: frozenset[str], resolved: frozenset[str], now_ns: int
    ) -> bool:
        if sent is None:
            return bool(firing)
        if not firing <= sent.firing:
            return True
        if not firing:
            return bool(sent.firing)
        if self._route.send_resolved and not resolved <= sent.resolved:
            return True
        return sent.at_ns < now_ns - self._route.repeat_interval_s * _S

    def alerts(self) -> Iterable[Alert]:
        """Every alert the groups hold."""
        for group in self._groups.values():
            yield from group.alerts.values()

    def changes(self) -> dict[str, dict[str, Any] | None]:
        """The groups changed since the last call, by key: each as :meth:`restore` takes
        it, or None when it is gone. A look that notified nothing and dropped nothing
        does not change a group: restored, it is looked at again at once, which notifies
        only what is due."""
        out = {key: _group_json(self._groups[key]) if key in self._groups else None
               for key in self._dirty}  # fmt: skip
        self._dirty.clear()
        return out

    def restore(self, groups: Iterable[Mapping[str, Any]]) -> None:
        """Take back groups as :meth:`changes` gave them (after a restart).

        Raises:
            ValueError: A group is not in that form.
        """
        for state in groups:
            try:
                sent = state["sent"]
                group = _Group(
                    dict(state["labels"]),
                    str(state["key"]),
                    int(state["next_ns"]),
                    {a.fingerprint: a for a in map(Alert.from_dict, state["alerts"])},
                    bool(state["flushed"]),
                    None
                    if sent is None
                    else _Sent(
                        frozenset(sent["firing"]), frozenset(sent["resolved"]), int(sent["at_ns"])
                    ),
                )
            except (KeyError, TypeError) as exc:
                raise ValueError(f"not a group: {exc!r}") from None
            self._groups[group.key] = group


def _group_json(group: _Group) -> dict[str, Any]:
    sent = group.sent
    return {
        "labels": group.labels,
        "key": group.key,
        "next_ns": group.next_ns,
        "alerts": [a.as_dict() for a in group.alerts.values()],
        "flushed": group.flushed,
        "sent": None
        if sent is None
        else {
            "firing": sorted(sent.firing),
            "resolved": sorted(sent.resolved),
            "at_ns": sent.at_ns,
        },
    }


def _resolved(alert: Alert, now_ns: int) -> bool:
    return alert.ends_at_ns is not None and alert.ends_at_ns <= now_ns


def _firing(alert: Alert) -> Alert:
    """The alert as a notification shows a firing one (no end yet)."""
    if alert.ends_at_ns is None:
        return alert
    return Alert(alert.labels, alert.annotations, alert.starts_at_ns, None, alert.generator_url)
