"""InfluxQL in Grafana dashboards: query targets for the foundation SDK, and the substitution
Grafana applies before a query reaches InfluxDB.

The SDK (``grafana-foundation-sdk``) types every panel and variable but ships no InfluxDB
query type, so :class:`InfluxQLQuery` is one, in the shape Grafana's InfluxDB data source
stores a raw InfluxQL query (``query``, ``rawQuery``, ``refId``, ``resultFormat``,
``alias``); :class:`InfluxQLAnnotation` is the same query as an annotation target
(``fromAnnotations`` and the columns that give an event its text and tags).

:func:`render` replaces what Grafana replaces in a raw InfluxQL query, so the queries of
the generated dashboards can be run against a real InfluxDB exactly as Grafana would send
them: template variables (``$name``, ``${name}``, ``[[name]]``; as a regular expression,
one value escaped, several as ``(a|b)``, Grafana's default for raw InfluxQL), then
``$timeFilter`` (``time >= <from>ms and time <= <to>ms``), ``$__interval_ms``,
``$__interval`` and ``$interval`` (:func:`interval_text`: ``10s``, ``1m``, ``2h``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import AnnotationTarget

from vibewatch.errors import DataError

__all__ = [
    "InfluxQL",
    "InfluxQLAnnotation",
    "InfluxQLAnnotationQuery",
    "InfluxQLQuery",
    "interval_text",
    "register",
    "render",
    "targets_of",
]

#: Result formats of Grafana's InfluxDB data source.
RESULT_FORMATS = ("time_series", "table", "logs")


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query of a panel (Grafana's InfluxDB data source, InfluxQL mode)."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.ref_id: str | None = None
        self.result_format: str | None = None
        self.alias: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"query": self.query, "rawQuery": True}
        if self.ref_id is not None:
            out["refId"] = self.ref_id
        if self.result_format is not None:
            out["resultFormat"] = self.result_format
        if self.alias is not None:
            out["alias"] = self.alias
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The query of a target of a dashboard's JSON (the SDK's decoding hook)."""
        query = cls(str(data.get("query", "")))
        query.ref_id = data.get("refId")
        query.result_format = data.get("resultFormat")
        query.alias = data.get("alias")
        return query


def register() -> None:
    """Make the SDK's ``Dashboard.from_json`` decode targets of InfluxDB data sources as
    :class:`InfluxQLQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier="influxdb", from_json_hook=InfluxQLQuery.from_json)
    )


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builds an :class:`InfluxQLQuery`: ``InfluxQL("SELECT ...").ref_id("A")``."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        """The query's id within its panel (``A``, ``B`` ...)."""
        self._internal.ref_id = ref_id
        return self

    def result_format(self, result_format: str) -> Self:
        """``time_series`` (the default), ``table`` or ``logs``."""
        if result_format not in RESULT_FORMATS:
            raise DataError(f"result format {result_format!r} is not one of {RESULT_FORMATS}")
        self._internal.result_format = result_format
        return self

    def alias(self, alias: str) -> Self:
        """The series' display name; ``$tag_device`` is the value of tag ``device``."""
        self._internal.alias = alias
        return self


class InfluxQLAnnotationQuery(AnnotationTarget):
    """A raw InfluxQL query whose rows are annotations: ``text_column`` gives each its text,
    ``tags_column`` (comma-separated column names) its tags."""

    def __init__(self, query: str, text_column: str, tags_column: str = "") -> None:
        super().__init__()
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        return {
            "query": self.query,
            "rawQuery": True,
            "fromAnnotations": True,
            "refId": "Anno",
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }


class InfluxQLAnnotation(cogbuilder.Builder[AnnotationTarget]):
    """Builds an :class:`InfluxQLAnnotationQuery`, for ``AnnotationQuery().target(...)``."""

    def __init__(self, query: str, *, text_column: str, tags_column: str = "") -> None:
        self._internal = InfluxQLAnnotationQuery(query, text_column, tags_column)

    def build(self) -> InfluxQLAnnotationQuery:
        return self._internal


# ---- what Grafana substitutes ----

#: Characters Grafana escapes in a value formatted as a regular expression.
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|\[\]{}/])")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]")
_BUILTIN = frozenset({"timeFilter", "__interval", "__interval_ms", "interval"})
#: Units of :func:`interval_text`, largest first (Grafana's ``gtime.FormatInterval``).
_UNITS = (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def interval_text(interval_ms: int) -> str:
    """An interval as Grafana writes it for ``$__interval``: in the largest unit that
    divides it into at least one, rounded down (``10s``, ``1m``, ``2h``; ``500ms``)."""
    if interval_ms < 1:
        raise DataError(f"interval {interval_ms} ms is not >= 1")
    for unit, ms in _UNITS:
        if interval_ms >= ms:
            return f"{interval_ms // ms}{unit}"
    return f"{interval_ms}ms"


def _regex_value(values: Sequence[str]) -> str:
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def render(
    query: str,
    *,
    variables: Mapping[str, Sequence[str]],
    start_ms: int,
    end_ms: int,
    interval_ms: int,
) -> str:
    """``query`` as Grafana sends it to InfluxDB for the time range ``[start_ms, end_ms]``
    and the selected values of each template variable.

    Raises:
        DataError: ``query`` names a variable that is not in ``variables`` (Grafana would
            leave it in place and InfluxDB would refuse the query), a variable has no value,
            or the range is empty.
    """
    if end_ms < start_ms:
        raise DataError(f"time range {start_ms}..{end_ms} ms ends before it starts")

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name in _BUILTIN:
            return match.group(0)
        values = variables.get(name)
        if values is None:
            raise DataError(f"query names the variable ${name}, which is not given: {query}")
        if not values:
            raise DataError(f"variable ${name} has no value selected")
        return _regex_value(values)

    out = _VARIABLE.sub(variable, query)
    out = out.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    out = out.replace("$__interval_ms", str(interval_ms))
    text = interval_text(interval_ms)
    return out.replace("$__interval", text).replace("$interval", text)


def targets_of(panel: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The InfluxQL targets of a panel of a dashboard's JSON."""
    return [t for t in panel.get("targets") or () if t.get("rawQuery")]
