"""Training data from InfluxDB: the feature vectors devices published, anomalies left out.

:func:`load_training_features` reads the ``features`` measurement
(``docs/influxdb-schema.md``) for one feature spec, a time range and a device
selection, and leaves out every vector whose window lies inside an exclusion
interval of its device. The intervals come from the sources in
:data:`EXCLUSION_SOURCES`; today that is the ``anomaly`` measurement
(:func:`anomaly_event_intervals`). Alerts join as a second source once the alert
service writes them to InfluxDB: a source is any function of the query client
and the :class:`Selection` that returns :class:`Interval` values.

How anomaly events become intervals (:func:`anomaly_intervals`, pure):

* a ``start`` event opens an interval at its time; the next ``end`` event of the
  same device closes it, whatever the model that sent them;
* both ends are **included**: the window of the ``start`` event scored above the
  threshold, and the window of the ``end`` event is the first one back below it,
  at the edge of the anomaly; one borderline window less costs training nothing,
  one anomalous window more teaches the model the fault;
* the state at the range start comes from the last event before it, so an
  anomaly that began earlier and is still open excludes from the range start;
* an ``end`` with no open interval (its ``start`` was lost, or lies before the
  range with no record of it) closes an interval that began at the previous
  ``end`` of the device in the range, or at the range start: from the last time
  the device was known to be healthy;
* an interval still open at the end of the range runs to the range end;
* a second ``start`` while an interval is open changes nothing;
* events of one device at the same time are taken in ``seq`` order, then
  ``start`` before ``end``.

A window is identified by its time, the start of the window (the ``t`` of its
feature vector), so a window counts as inside an interval when that time is.
The time range itself is half-open, ``start <= t < end``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from vibewatch.errors import DataError
from vibewatch.influx.query import InfluxQL, Series, quote_identifier, quote_string
from vibewatch.influx.schema import (
    ANOMALY,
    DEVICE,
    FEATURE_FIELD_RE,
    FEATURES,
    KIND,
    SEQ,
    SPEC,
    feature_field,
)
from vibewatch.protocol import DEVICE_SELECTOR_RE, ID_PATTERN, ID_RE, EventKind

if TYPE_CHECKING:
    from vibewatch.config import Config

__all__ = [
    "EXCLUSION_SOURCES",
    "AnomalyMark",
    "DeviceCounts",
    "FeatureCollector",
    "Interval",
    "IntervalSource",
    "Selection",
    "TrainingFeatures",
    "anomaly_event_intervals",
    "anomaly_intervals",
    "device_condition",
    "excluded_mask",
    "is_open_after",
    "iso_ms",
    "load_training_features",
    "published_specs",
    "select",
    "spec_counts",
    "specs_text",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_MS: Final = 1_000_000
_SPEC_ID: Final = ID_RE
_LISTED: Final = 10  # devices or fields named in one message


# --- the selection ---------------------------------------------------------------


def device_condition(selectors: Sequence[str]) -> str:
    """InfluxQL condition on the ``device`` tag for device ids and globs; empty for all.

    A selector is a device id, or a glob in which ``*`` stands for any run of
    characters and ``?`` for one (``pump-*``). Device ids hold only
    ``A-Z a-z 0-9 _ -``, so a glob becomes an anchored regular expression
    without anything to escape.

    Raises:
        DataError: A selector holds other characters or is longer than 64.
    """
    terms: list[str] = []
    for selector in selectors:
        if DEVICE_SELECTOR_RE.fullmatch(selector) is None:
            raise DataError(
                f"device selector {selector!r} is not a device id or glob: 1 to 64 characters "
                "from A-Z a-z 0-9 _ - and the wildcards * and ?"
            )
        if "*" in selector or "?" in selector:
            pattern = selector.replace("*", ".*").replace("?", ".")
            terms.append(f"{quote_identifier(DEVICE)} =~ /^{pattern}$/")
        else:
            terms.append(f"{quote_identifier(DEVICE)} = {quote_string(selector)}")
    return f"({' OR '.join(terms)})" if terms else ""


def select(columns: str, measurement: str, where: str, group_by: Sequence[str] = ()) -> str:
    """One ``SELECT`` statement; ``where`` comes from :meth:`Selection.where`.

    Not every server binds parameters (the v1 API of InfluxDB 3 does not), so
    values are literals: strings written by :func:`quote_string`, integers, and
    device globs that :func:`device_condition` has checked to hold nothing but
    device-id characters and wildcards.
    """
    statement = f"SELECT {columns} FROM {quote_identifier(measurement)} {where}"  # noqa: S608
    if group_by:
        statement += " GROUP BY " + ", ".join(quote_identifier(tag) for tag in group_by)
    return statement


@dataclass(frozen=True, slots=True)
class Selection:
    """What a training set is made of: a feature spec, a time range and devices.

    Attributes:
        spec_id: Feature-spec id of the vectors.
        start_ms: First millisecond of the range (included).
        end_ms: End of the range (excluded).
        devices: Device ids and globs (see :func:`device_condition`); empty for all.
    """

    spec_id: str
    start_ms: int
    end_ms: int
    devices: tuple[str, ...] = ()

    def where(self, *, before_start: bool = False) -> str:
        """The ``WHERE`` clause for the range (or for all time before it) and the devices."""
        if before_start:
            conditions = [f"time < {self.start_ms * _NS_PER_MS}"]
        else:
            # InfluxQL reads an integer time literal as nanoseconds, whatever ``epoch`` says.
            conditions = [
                f"time >= {self.start_ms * _NS_PER_MS}",
                f"time < {self.end_ms * _NS_PER_MS}",
            ]
        devices = device_condition(self.devices)
        if devices:
            conditions.append(devices)
        return "WHERE " + " AND ".join(conditions)

    def __post_init__(self) -> None:
        """Refuse bad device selectors before anything is queried.

        Raises:
            DataError: A selector is not a device id or glob.
        """
        device_condition(self.devices)


# --- anomaly events to intervals (pure) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class AnomalyMark:
    """One anomaly event of a device.

    Attributes:
        t_ms: Device time of the event's window, ms since the epoch.
        seq: Sequence number of that window.
        kind: Whether the event opens or closes an anomaly.
    """

    t_ms: int
    seq: int
    kind: EventKind

    def order(self) -> tuple[int, int, int]:
        """Sort key: time, then window sequence number, then ``start`` before ``end``."""
        return (self.t_ms, self.seq, 0 if self.kind is EventKind.START else 1)


def is_open_after(marks: Iterable[AnomalyMark]) -> bool:
    """Whether an anomaly is open after ``marks``: the last of them (in event order) is a start."""
    last = max(marks, key=AnomalyMark.order, default=None)
    return last is not None and last.kind is EventKind.START


def anomaly_intervals(
    marks: Iterable[AnomalyMark], *, open_at_start: bool, start_ms: int, end_ms: int
) -> list[tuple[int, int]]:
    """Pair one device's anomaly events into closed intervals ``(first_ms, last_ms)``.

    The rules are those of the module documentation. Intervals lie within
    ``[start_ms, end_ms]``.

    Args:
        marks: The device's events, in any order; those outside
            ``start_ms <= t < end_ms`` are ignored (pass the effect of earlier ones
            as ``open_at_start``).
        open_at_start: An anomaly opened before ``start_ms`` is still open then.
        start_ms: Start of the range.
        end_ms: End of the range.

    Returns:
        The intervals in time order; both ends belong to the interval.
    """
    intervals: list[tuple[int, int]] = []
    opened: int | None = start_ms if open_at_start else None
    healthy_since = start_ms
    for mark in sorted(marks, key=AnomalyMark.order):
        if not start_ms <= mark.t_ms < end_ms:
            continue
        if mark.kind is EventKind.START:
            if opened is None:
                opened = mark.t_ms
            continue
        intervals.append((healthy_since if opened is None else opened, mark.t_ms))
        opened = None
        healthy_since = mark.t_ms
    if opened is not None:
        intervals.append((opened, end_ms))
    return intervals


def excluded_mask(
    times_ms: npt.NDArray[np.int64], intervals: Iterable[tuple[int, int]]
) -> npt.NDArray[np.bool_]:
    """Which times lie inside any of the closed intervals (both ends included).

    Args:
        times_ms: Times, in any order.
        intervals: ``(first_ms, last_ms)`` pairs, in any order, overlapping or not.

    Returns:
        A boolean array shaped like ``times_ms``.
    """
    merged: list[list[int]] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    times = np.asarray(times_ms, dtype=np.int64)
    if not merged:
        return np.zeros(times.shape, dtype=np.bool_)
    bounds = np.asarray(merged, dtype=np.int64)
    # The last interval starting at or before each time is the only one that can hold it.
    index = np.searchsorted(bounds[:, 0], times, side="right") - 1
    inside: npt.NDArray[np.bool_] = (index >= 0) & (times <= bounds[np.maximum(index, 0), 1])
    return inside


# --- exclusion sources --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A stretch of a device's time whose windows must not be trained on.

    Attributes:
        device: Device id.
        first_ms: First excluded millisecond.
        last_ms: Last excluded millisecond (included).
    """

    device: str
    first_ms: int
    last_ms: int


IntervalSource = Callable[[InfluxQL, Selection], Iterable[Interval]]
"""Reads the exclusion intervals of the selected devices in the selected range."""


def _event_kind(value: object, device: str, t_ms: object) -> EventKind:
    try:
        return EventKind(str(value))
    except ValueError:
        raise DataError(
            f"{ANOMALY} event of device {device!r} at {t_ms} ms has kind {value!r}, "
            "not start or end"
        ) from None


def _column(series: Series, name: str) -> int:
    try:
        return series.columns.index(name)
    except ValueError:
        raise DataError(
            f"{series.name} series {dict(series.tags)} has no column {name!r}: {series.columns}"
        ) from None


def anomaly_event_intervals(client: InfluxQL, selection: Selection) -> list[Interval]:
    """Exclusion intervals from the ``anomaly`` measurement (device start/end events).

    Two queries: the last ``start`` and the last ``end`` of each device before the
    range (whether an anomaly is open at its start), and every event in the range.

    Raises:
        QueryError: A query failed.
        DataError: An event has a kind other than start or end.
    """
    before: dict[str, list[AnomalyMark]] = {}
    where_before = selection.where(before_start=True)
    last_seq = f"last({quote_identifier(SEQ)})"
    for series in client.query(select(last_seq, ANOMALY, where_before, (DEVICE, KIND))):
        name = series.tags.get(DEVICE, "")
        for t_ms, last in series.values:
            mark_kind = _event_kind(series.tags.get(KIND), name, t_ms)
            before.setdefault(name, []).append(AnomalyMark(int(t_ms), int(last), mark_kind))
    during: dict[str, list[AnomalyMark]] = {}
    columns = f"{quote_identifier(KIND)}, {quote_identifier(SEQ)}"
    for series in client.query(select(columns, ANOMALY, selection.where(), (DEVICE,))):
        name = series.tags.get(DEVICE, "")
        t_col, kind_col, seq_col = (_column(series, c) for c in ("time", KIND, SEQ))
        during.setdefault(name, []).extend(
            AnomalyMark(
                int(row[t_col]), int(row[seq_col]), _event_kind(row[kind_col], name, row[t_col])
            )
            for row in series.values
        )
    return [
        Interval(name, first, last)
        for name in sorted(before.keys() | during.keys())
        for first, last in anomaly_intervals(
            during.get(name, ()),
            open_at_start=is_open_after(before.get(name, ())),
            start_ms=selection.start_ms,
            end_ms=selection.end_ms,
        )
    ]


EXCLUSION_SOURCES: Final[tuple[IntervalSource, ...]] = (anomaly_event_intervals,)
"""Where exclusion intervals come from; the alert service's intervals join here."""


# --- feature vectors (pure) -----------------------------------------------------------


def iso_ms(t_ms: int) -> str:
    """``t_ms`` since the epoch as an ISO 8601 UTC time to the millisecond."""
    return (_EPOCH + timedelta(milliseconds=t_ms)).isoformat(timespec="milliseconds")


def _names(fields: Iterable[int]) -> str:
    listed = [feature_field(i) for i in fields]
    more = f" and {len(listed) - _LISTED} more" if len(listed) > _LISTED else ""
    return ", ".join(listed[:_LISTED]) + more


class FeatureCollector:
    """Turns ``features`` series (``SELECT *``, grouped by device) into arrays, chunk by chunk.

    Every vector must have the same fields ``f0 .. f{n-1}`` as the first one seen;
    a vector with a field missing, or with more or fewer fields, is refused.
    """

    def __init__(self, spec_id: str) -> None:
        """Start empty; ``spec_id`` names the spec in error messages."""
        self.spec_id = spec_id
        self.width: int | None = None
        self._first: tuple[str, int] = ("", 0)
        self._chunks: list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.int64]]] = []

    def __len__(self) -> int:
        """Vectors collected so far."""
        return sum(len(times) for _, _, times in self._chunks)

    def add(self, series: Series) -> int:
        """Take the rows of one series (or series piece); return how many there were.

        Raises:
            DataError: A vector's fields differ from the first vector's, or a value
                is not a number; the message names device and time.
        """
        if not series.values:
            return 0
        device = series.tags.get(DEVICE, "")
        fields = sorted(
            (int(m.group(1)), j)
            for j, column in enumerate(series.columns)
            if (m := FEATURE_FIELD_RE.fullmatch(column))
        )
        numbers = np.array([number for number, _ in fields], dtype=np.int64)
        time_column = _column(series, "time")
        times = np.fromiter(
            (row[time_column] for row in series.values), dtype=np.int64, count=len(series.values)
        )
        try:
            # A field a point lacks comes as null, which becomes NaN; stored values are
            # never NaN (line protocol cannot hold one), so NaN means "missing".
            values = np.array(
                [[row[j] for _, j in fields] for row in series.values], dtype=np.float64
            ).reshape(len(series.values), len(fields))
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{series.name} of device {device!r} (spec {self.spec_id}): a field value "
                f"is not a number: {exc}"
            ) from exc
        present = ~np.isnan(values)
        if self.width is None:
            self.width = int(present[0].sum())
            self._first = (device, int(times[0]))
            if self.width == 0:
                raise DataError(
                    f"feature vector of device {device!r} at {iso_ms(int(times[0]))} "
                    f"(spec {self.spec_id}) has no values f0, f1, ..."
                )
        good = (present == (numbers < self.width)).all(axis=1)
        # Fields f0..f{width-1} must all be columns: the count of numbers below width is width.
        if np.searchsorted(numbers, self.width) != self.width:
            good[:] = False
        if not good.all():
            self._refuse(device, int(times[~good][0]), set(numbers[present[~good][0]].tolist()))
        self._chunks.append((device, values[:, : self.width].astype(np.float32), times))
        return len(times)

    def _refuse(self, device: str, t_ms: int, fields: set[int]) -> None:
        assert self.width is not None
        expected = set(range(self.width))
        problems = []
        if missing := sorted(expected - fields):
            problems.append(f"missing {_names(missing)}")
        if extra := sorted(fields - expected):
            problems.append(f"extra {_names(extra)}")
        first_device, first_ms = self._first
        raise DataError(
            f"feature vector of device {device!r} at {iso_ms(t_ms)} ({t_ms} ms), spec "
            f"{self.spec_id}, has {len(fields)} values where the first vector (device "
            f"{first_device!r} at {iso_ms(first_ms)}) has {self.width} (f0..f{self.width - 1}): "
            + "; ".join(problems)
        )

    def arrays(
        self,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]]:
        """Everything collected, ordered by time, then device.

        Returns:
            ``(features [n, width], times_ms [n], device_index [n], device_names)``,
            where ``device_names[device_index[i]]`` is the device of row ``i`` and the
            names are sorted.
        """
        names = sorted({device for device, _, _ in self._chunks})
        code = {name: i for i, name in enumerate(names)}
        if not self._chunks:
            return (
                np.zeros((0, self.width or 0), dtype=np.float32),
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
                names,
            )
        features = np.concatenate([f for _, f, _ in self._chunks])
        times = np.concatenate([t for _, _, t in self._chunks])
        devices = np.concatenate(
            [np.full(len(t), code[d], dtype=np.int64) for d, _, t in self._chunks]
        )
        order = np.lexsort((devices, times))
        return features[order], times[order], devices[order], names


# --- the loader ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCounts:
    """Vectors of one device in a training set.

    Attributes:
        healthy: Vectors kept.
        excluded: Vectors left out as inside an exclusion interval.
    """

    healthy: int
    excluded: int


@dataclass(frozen=True, slots=True)
class TrainingFeatures:
    """Healthy feature vectors of one spec, time range and device selection.

    Attributes:
        features: ``[n, n_features]`` float32, one vector per row, ordered by time, then device.
        times_ms: ``[n]`` int64 window times, ms since the epoch.
        devices: Device id of each row.
        spec_id: Feature-spec id of the vectors.
        start: Start of the range (included).
        end: End of the range (excluded).
        excluded_count: Vectors found but left out (inside an exclusion interval).
        per_device: Counts per device that has vectors in the range.
        anomalous: The vectors left out, by device (devices with none are missing),
            each ordered by time: what the devices saw during their anomalies.
    """

    features: npt.NDArray[np.float32]
    times_ms: npt.NDArray[np.int64]
    devices: tuple[str, ...]
    spec_id: str
    start: datetime
    end: datetime
    excluded_count: int
    per_device: Mapping[str, DeviceCounts]
    anomalous: Mapping[str, npt.NDArray[np.float32]]


def _epoch_ms(moment: datetime, name: str) -> int:
    """The first whole millisecond at or after ``moment`` (so ``t >= ms`` iff ``t >= moment``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DataError(f"{name} {moment.isoformat()} has no time zone; give one (e.g. UTC)")
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


def load_training_features(
    config: Config,
    *,
    spec_id: str,
    start: datetime,
    end: datetime,
    devices: Sequence[str] | None = None,
    min_windows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingFeatures:
    """Load the healthy feature vectors of a spec, time range and device selection.

    Args:
        config: The configuration; ``[influx]`` says where to read.
        spec_id: Only vectors of this feature spec (the ``spec`` tag).
        start: Start of the range, included; must carry a time zone.
        end: End of the range, excluded; must carry a time zone.
        devices: Device ids and globs (``*``, ``?``); ``None`` or empty for all devices.
        min_windows: Fewest healthy vectors to accept; ``config.train.min_healthy_windows``
            when ``None``.
        progress: Called after each chunk of the answer with the vectors read so
            far and the number the range holds.

    Returns:
        The healthy vectors, ordered by time, then device, with counts.

    Raises:
        DataError: An argument is invalid, a vector does not have the fields of the
            others, or fewer than ``min_windows`` healthy vectors remain (the message
            gives the counts found, excluded and required).
        QueryError: InfluxDB could not be queried.
    """
    if _SPEC_ID.fullmatch(spec_id) is None:
        raise DataError(f"feature spec id {spec_id!r} does not match {ID_PATTERN}")
    required = config.train.min_healthy_windows if min_windows is None else min_windows
    if required < 0:
        raise DataError(f"min_windows must not be negative, got {required}")
    selection = Selection(
        spec_id, _epoch_ms(start, "start"), _epoch_ms(end, "end"), tuple(devices or ())
    )
    if selection.start_ms >= selection.end_ms:
        raise DataError(
            f"empty time range: start {start.isoformat()} is not before end {end.isoformat()}"
        )
    client = InfluxQL.from_config(config.influx)
    where = f"{selection.where()} AND {quote_identifier(SPEC)} = {quote_string(spec_id)}"

    total = 0
    for series in client.query(select(f"count({quote_identifier(SEQ)})", FEATURES, where)):
        total += sum(int(row[1]) for row in series.values)
    if total == 0:
        raise DataError(_no_vectors(selection, start, end, spec_counts(client, selection)))
    collector = FeatureCollector(spec_id)
    loaded = 0
    for piece in client.stream(select("*", FEATURES, where, (DEVICE,))):
        loaded += collector.add(piece)
        if progress is not None:
            progress(loaded, max(total, loaded))
    features, times, device_index, names = collector.arrays()

    intervals: dict[str, list[tuple[int, int]]] = {}
    for source in EXCLUSION_SOURCES:
        for interval in source(client, selection):
            intervals.setdefault(interval.device, []).append((interval.first_ms, interval.last_ms))
    excluded = np.zeros(len(times), dtype=np.bool_)
    for code, name in enumerate(names):
        rows = device_index == code
        excluded[rows] = excluded_mask(times[rows], intervals.get(name, ()))
    per_device = {
        name: DeviceCounts(
            healthy=int(np.count_nonzero((device_index == code) & ~excluded)),
            excluded=int(np.count_nonzero((device_index == code) & excluded)),
        )
        for code, name in enumerate(names)
    }
    healthy = int(np.count_nonzero(~excluded))
    if healthy < required:
        raise DataError(_too_few(selection, start, end, per_device, healthy, required))
    keep = ~excluded
    return TrainingFeatures(
        features=features[keep],
        times_ms=times[keep],
        devices=tuple(names[i] for i in device_index[keep].tolist()),
        spec_id=spec_id,
        start=start,
        end=end,
        excluded_count=int(np.count_nonzero(excluded)),
        per_device=MappingProxyType(per_device),
        anomalous=MappingProxyType(
            {
                name: features[(device_index == code) & excluded]
                for code, name in enumerate(names)
                if per_device[name].excluded
            }
        ),
    )


def spec_counts(client: InfluxQL, selection: Selection) -> dict[str, int]:
    """Feature vectors per feature-spec id in the selection's range and devices, any spec.

    Raises:
        QueryError: InfluxDB could not be queried.
    """
    counts: dict[str, int] = {}
    count = f"count({quote_identifier(SEQ)})"
    for series in client.query(select(count, FEATURES, selection.where(), (SPEC,))):
        spec = series.tags.get(SPEC, "")
        counts[spec] = counts.get(spec, 0) + sum(int(row[1]) for row in series.values)
    return {spec: n for spec, n in sorted(counts.items()) if n}


def published_specs(
    config: Config, *, start: datetime, end: datetime, devices: Sequence[str] | None = None
) -> dict[str, int]:
    """Feature vectors per feature-spec id that devices published in ``[start, end)``.

    Raises:
        DataError: The range or a device selector is invalid.
        QueryError: InfluxDB could not be queried.
    """
    selection = Selection(
        "", _epoch_ms(start, "start"), _epoch_ms(end, "end"), tuple(devices or ())
    )
    return spec_counts(InfluxQL.from_config(config.influx), selection)


def specs_text(counts: Mapping[str, int]) -> str:
    """``fs-a (120 vectors), fs-b (10 vectors)``, or ``none`` for no spec."""
    shown = [f"{spec} ({n} vectors)" for spec, n in list(counts.items())[:_LISTED]]
    more = f", and {len(counts) - _LISTED} more" if len(counts) > _LISTED else ""
    return ", ".join(shown) + more if shown else "none"


def _no_vectors(
    selection: Selection, start: datetime, end: datetime, counts: Mapping[str, int]
) -> str:
    chosen = ", ".join(selection.devices) if selection.devices else "all devices"
    return (
        f"no feature vectors of spec {selection.spec_id} from {start.isoformat()} to "
        f"{end.isoformat()}, devices: {chosen}; specs with vectors there: {specs_text(counts)}"
    )


def _too_few(
    selection: Selection,
    start: datetime,
    end: datetime,
    per_device: Mapping[str, DeviceCounts],
    healthy: int,
    required: int,
) -> str:
    excluded = sum(c.excluded for c in per_device.values())
    chosen = ", ".join(selection.devices) if selection.devices else "all devices"
    text = (
        f"too few healthy feature vectors to train: {healthy} healthy of {healthy + excluded} "
        f"found ({excluded} excluded as inside anomalies), {required} required; "
        f"spec {selection.spec_id}, from {start.isoformat()} to {end.isoformat()}, "
        f"devices: {chosen}"
    )
    if per_device:
        shown = [
            f"{name} {c.healthy} healthy/{c.excluded} excluded"
            for name, c in sorted(per_device.items())
        ]
        more = f", and {len(shown) - _LISTED} more" if len(shown) > _LISTED else ""
        text += "; per device: " + ", ".join(shown[:_LISTED]) + more
    unmatched = [
        s for s in selection.devices if not any(fnmatch.fnmatchcase(n, s) for n in per_device)
    ]
    if unmatched:
        text += "; no vectors at all from: " + ", ".join(unmatched)
    return text
