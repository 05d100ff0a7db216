"""Run every query of the dashboards against an InfluxDB, as Grafana would send it.

``vibewatch dashboards check`` answers "will these panels show anything here?" without a
Grafana server: for each dashboard, the template variables' own queries run first (a
variable takes every value its query returns, or the values given), then every panel
target and annotation query, rendered by :func:`~vibewatch.dashboards.influxql.render`
for the time range, and each answer is summarised (series, rows, columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vibewatch.dashboards.boards import EVENT_QUERIES
from vibewatch.dashboards.export import dashboard_json
from vibewatch.dashboards.influxql import render, targets_of
from vibewatch.errors import DataError
from vibewatch.influx.query import InfluxQL, QueryError, Series

__all__ = ["QueryCheck", "check_dashboard", "interval_ms_for", "queries_of"]

#: Data points a panel asks for across its width (Grafana's default for a full-width panel).
MAX_DATA_POINTS = 1000
#: The smallest ``$__interval`` (the data source's minimum time interval).
MIN_INTERVAL_MS = 1000


@dataclass(frozen=True)
class QueryCheck:
    """One query of a dashboard and what InfluxDB answered.

    Attributes:
        dashboard: The dashboard's uid.
        where: ``panel <title> <refId>``, ``variable <name>`` or ``annotation <name>``.
        query: The query as sent (variables and time range substituted).
        series: Series in the answer.
        rows: Rows over all series.
        columns: The columns of each series (time first for time series).
        tags: The tag set of each series.
        error: InfluxDB's refusal, or empty.
        events: A query of events a healthy fleet may have none of (:data:`EVENT_QUERIES`).
    """

    dashboard: str
    where: str
    query: str
    series: int = 0
    rows: int = 0
    columns: list[list[str]] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    error: str = ""
    events: bool = False

    @property
    def ok(self) -> bool:
        """No error, and at least one row unless it is a query of events."""
        return not self.error and (self.rows > 0 or self.events)


def interval_ms_for(start_ms: int, end_ms: int) -> int:
    """``$__interval`` for a time range: its span over :data:`MAX_DATA_POINTS`, at least
    :data:`MIN_INTERVAL_MS`, rounded down to whole seconds."""
    span = max(end_ms - start_ms, 0)
    return max(MIN_INTERVAL_MS, span // MAX_DATA_POINTS // 1000 * 1000)


def queries_of(uid: str) -> list[tuple[str, str]]:
    """``(where, query)`` of every query of dashboard ``uid``, in the order they run: the
    template variables' (``variable <name>``), the panels' targets (``panel <title>
    <refId>``), the annotations' (``annotation <name>``); queries as written."""
    model = dashboard_json(uid)
    out = [
        (f"variable {variable['name']}", str(variable["query"]))
        for variable in model.get("templating", {}).get("list", [])
    ]
    for panel in model.get("panels", []):
        for target in targets_of(panel):
            where = f"panel {panel.get('title', '')!r} {target.get('refId', '')}"
            out.append((where, str(target["query"])))
    for annotation in model.get("annotations", {}).get("list", []):
        query: Any = annotation.get("target") or {}
        if query.get("rawQuery"):
            out.append((f"annotation {annotation.get('name', '')!r}", str(query["query"])))
    return out


def check_dashboard(
    client: InfluxQL,
    uid: str,
    *,
    start_ms: int,
    end_ms: int,
    variables: Mapping[str, Sequence[str]] | None = None,
) -> list[QueryCheck]:
    """Run every query of dashboard ``uid`` over ``[start_ms, end_ms]``.

    Args:
        client: The InfluxDB to ask.
        uid: The dashboard.
        start_ms: Start of the time range, ms since the epoch.
        end_ms: End of the time range.
        variables: Values of template variables; a variable not given takes every value
            its own query returns (Grafana's "All").

    Returns:
        One :class:`QueryCheck` per variable query (not run for a variable given), per
        panel target and per annotation query, in the dashboard's order.
    """
    events = EVENT_QUERIES.get(uid, frozenset())
    chosen: dict[str, Sequence[str]] = dict(variables or {})
    interval = interval_ms_for(start_ms, end_ms)
    out: list[QueryCheck] = []

    def attempt(where: str, query: str) -> list[Series]:
        try:  # the query as sent once rendered; as written when it cannot be
            query = render(
                query, variables=chosen, start_ms=start_ms, end_ms=end_ms, interval_ms=interval
            )
            answer = client.query(query)
        except (DataError, QueryError) as exc:
            out.append(QueryCheck(uid, where, query, error=str(exc), events=where in events))
            return []
        out.append(
            QueryCheck(
                uid,
                where,
                query,
                series=len(answer),
                rows=sum(len(s.values) for s in answer),
                columns=[list(s.columns) for s in answer],
                tags=[dict(s.tags) for s in answer],
                events=where in events,
            )
        )
        return answer

    for where, query in queries_of(uid):
        name = where.removeprefix("variable ")
        if name == where:  # a panel's or an annotation's
            attempt(where, query)
        elif name not in chosen:
            answer = attempt(where, query)
            chosen[name] = sorted({str(row[-1]) for s in answer for row in s.values})
    return out
