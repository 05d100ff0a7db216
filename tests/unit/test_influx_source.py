"""Training data from InfluxDB, pure parts: anomaly intervals, exclusion, query text, parsing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibewatch.config import Config, InfluxConfig
from vibewatch.errors import DataError
from vibewatch.influx.query import (
    QueryError,
    Series,
    merge_series,
    parse_chunk,
    quote_identifier,
    quote_string,
)
from vibewatch.protocol import EventKind
from vibewatch.train.influx_source import (
    AnomalyMark,
    FeatureCollector,
    Selection,
    anomaly_intervals,
    device_condition,
    excluded_mask,
    is_open_after,
    load_training_features,
    select,
)

START, END = EventKind.START, EventKind.END


def marks(*events: tuple[EventKind, int]) -> list[AnomalyMark]:
    """Events with their time as sequence number (windows one millisecond apart)."""
    return [AnomalyMark(t, t, kind) for kind, t in events]


def intervals(*events: tuple[EventKind, int], open_at_start: bool = False) -> list[tuple[int, int]]:
    return anomaly_intervals(marks(*events), open_at_start=open_at_start, start_ms=100, end_ms=200)


# --- anomaly events to intervals -------------------------------------------------


def test_a_start_and_its_end_make_one_closed_interval() -> None:
    assert intervals((START, 120), (END, 130)) == [(120, 130)]


def test_events_pair_in_time_order_whatever_order_they_come_in() -> None:
    assert intervals((END, 150), (START, 110), (END, 130), (START, 140)) == [
        (110, 130),
        (140, 150),
    ]


def test_no_events_no_intervals() -> None:
    assert intervals() == []


def test_an_anomaly_open_at_the_range_start_is_excluded_from_the_start() -> None:
    assert intervals((END, 130), open_at_start=True) == [(100, 130)]
    assert intervals(open_at_start=True) == [(100, 200)]


def test_an_end_without_a_start_closes_an_interval_from_the_range_start() -> None:
    assert intervals((END, 130)) == [(100, 130)]


def test_an_unmatched_end_later_on_closes_an_interval_from_the_previous_end() -> None:
    assert intervals((START, 110), (END, 120), (END, 150)) == [(110, 120), (120, 150)]


def test_an_interval_still_open_at_the_end_runs_to_the_range_end() -> None:
    assert intervals((START, 180)) == [(180, 200)]
    assert intervals((START, 110), (END, 120), (START, 199)) == [(110, 120), (199, 200)]


def test_a_second_start_while_open_changes_nothing() -> None:
    assert intervals((START, 110), (START, 120), (END, 130)) == [(110, 130)]
    assert intervals((START, 120), (END, 130), open_at_start=True) == [(100, 130)]


def test_a_repeated_end_after_a_closed_interval_excludes_the_gap() -> None:
    # The start of the second anomaly was lost: from the last known-healthy point on.
    assert intervals((START, 110), (END, 120), (END, 120)) == [(110, 120), (120, 120)]


def test_events_at_the_range_bounds() -> None:
    # The range is [start, end): an event at start counts, one at end does not.
    assert intervals((START, 100), (END, 100)) == [(100, 100)]
    assert intervals((START, 150), (END, 200)) == [(150, 200)]
    assert intervals((END, 200), open_at_start=True) == [(100, 200)]


def test_events_outside_the_range_are_ignored() -> None:
    assert intervals((START, 50), (END, 60), (START, 250)) == []
    assert intervals((START, 99), (END, 130)) == [(100, 130)]


def test_events_at_the_same_time_go_by_sequence_number_then_start_first() -> None:
    same_time = [AnomalyMark(150, 7, END), AnomalyMark(150, 6, START)]
    got = anomaly_intervals(same_time, open_at_start=False, start_ms=100, end_ms=200)
    assert got == [(150, 150)]
    # open before: the end (seq 6) closes it, the start (seq 7) opens a new one
    reopened = [AnomalyMark(150, 7, START), AnomalyMark(150, 6, END)]
    got = anomaly_intervals(reopened, open_at_start=True, start_ms=100, end_ms=200)
    assert got == [(100, 150), (150, 200)]
    # same time and sequence number: start before end
    tie = [AnomalyMark(150, 6, END), AnomalyMark(150, 6, START)]
    assert anomaly_intervals(tie, open_at_start=False, start_ms=100, end_ms=200) == [(150, 150)]


def test_is_open_after_looks_at_the_last_event() -> None:
    assert not is_open_after([])
    assert is_open_after(marks((START, 10)))
    assert not is_open_after(marks((START, 10), (END, 20)))
    assert is_open_after(marks((START, 30), (END, 20)))
    assert not is_open_after([AnomalyMark(10, 1, END), AnomalyMark(10, 1, START)])
    assert is_open_after([AnomalyMark(10, 2, START), AnomalyMark(10, 1, END)])


# --- exclusion -----------------------------------------------------------------------


def test_both_ends_of_an_interval_are_excluded() -> None:
    times = np.array([9, 10, 11, 19, 20, 21], dtype=np.int64)
    assert excluded_mask(times, [(10, 20)]).tolist() == [False, True, True, True, True, False]


def test_overlapping_unsorted_and_point_intervals() -> None:
    times = np.arange(0, 12, dtype=np.int64)
    got = excluded_mask(times, [(8, 8), (1, 3), (2, 5), (5, 6), (10, 10)])
    assert np.flatnonzero(got).tolist() == [1, 2, 3, 4, 5, 6, 8, 10]


def test_no_intervals_exclude_nothing() -> None:
    times = np.array([3, 1, 2], dtype=np.int64)
    assert excluded_mask(times, []).tolist() == [False, False, False]
    assert excluded_mask(np.zeros(0, dtype=np.int64), [(1, 2)]).shape == (0,)


@given(
    st.lists(st.integers(-50, 50), max_size=40),
    st.lists(st.tuples(st.integers(-60, 60), st.integers(0, 30)), max_size=8),
)
def test_excluded_mask_agrees_with_a_plain_check(
    times: list[int], spans: list[tuple[int, int]]
) -> None:
    pairs = [(first, first + length) for first, length in spans]
    got = excluded_mask(np.array(times, dtype=np.int64), pairs)
    assert got.tolist() == [any(a <= t <= b for a, b in pairs) for t in times]


# --- query text ---------------------------------------------------------------------------


def test_quoting_escapes_what_would_end_the_literal() -> None:
    assert quote_string("it's a \\ path\nnext") == "'it\\'s a \\\\ path\\nnext'"
    assert quote_identifier('say "hi" \\') == '"say \\"hi\\" \\\\"'


def test_device_selectors_become_exact_matches_and_anchored_regexes() -> None:
    assert device_condition([]) == ""
    assert device_condition(["pump-1"]) == "(\"device\" = 'pump-1')"
    assert device_condition(["pump-*", "fan_?", "x"]) == (
        '("device" =~ /^pump-.*$/ OR "device" =~ /^fan_.$/ OR "device" = \'x\')'
    )


@pytest.mark.parametrize(
    "bad", ["", "pump 1", "pump'1", "a/b", "pump.1", "[ab]", "d\n", "ü", "x" * 65]
)
def test_other_selectors_are_refused(bad: str) -> None:
    with pytest.raises(DataError, match="device selector"):
        device_condition([bad])
    with pytest.raises(DataError, match="device selector"):
        Selection("s1", 0, 1, ("ok", bad))


def test_the_where_clause_has_nanosecond_times_and_the_devices() -> None:
    selection = Selection("s1", 1_700_000_000_000, 1_700_000_060_000, ("pump-*",))
    assert selection.where() == (
        "WHERE time >= 1700000000000000000 AND time < 1700000060000000000 "
        'AND ("device" =~ /^pump-.*$/)'
    )
    assert Selection("s1", 5, 6).where(before_start=True) == "WHERE time < 5000000"
    assert select("*", "features", "WHERE time < 5", ("device", "kind")) == (
        'SELECT * FROM "features" WHERE time < 5 GROUP BY "device", "kind"'
    )


def _config(tmp_path: Path) -> Config:
    # Port 9 (discard) on loopback: nothing may be sent in these tests, all fail first.
    return Config(data_home=tmp_path, influx=InfluxConfig(url="http://127.0.0.1:9"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"spec_id": "bad spec"}, "feature spec id 'bad spec'"),
        ({"start": datetime(2024, 1, 1)}, "start 2024-01-01T00:00:00 has no time zone"),
        ({"end": datetime(2024, 1, 1)}, "end 2024-01-01T00:00:00 has no time zone"),
        ({"end": datetime(2023, 12, 31, tzinfo=UTC)}, "empty time range"),
        ({"devices": ["ok", "not ok"]}, "device selector 'not ok'"),
        ({"min_windows": -1}, "min_windows must not be negative"),
    ],
)
def test_bad_arguments_are_refused_before_any_query(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    given_arguments: dict[str, Any] = {
        "spec_id": "s1",
        "start": datetime(2024, 1, 1, tzinfo=UTC),
        "end": datetime(2024, 1, 2, tzinfo=UTC),
        **arguments,
    }
    with pytest.raises(DataError, match=message):
        load_training_features(_config(tmp_path), **given_arguments)


def test_a_range_shorter_than_a_millisecond_is_empty(tmp_path: Path) -> None:
    start = datetime(2024, 1, 1, 0, 0, 0, 100, tzinfo=UTC)
    with pytest.raises(DataError, match="empty time range"):
        load_training_features(
            _config(tmp_path), spec_id="s1", start=start, end=start + timedelta(microseconds=500)
        )


# --- answers ----------------------------------------------------------------------------


def test_a_chunk_becomes_series() -> None:
    line = (
        b'{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"device":"d1"},'
        b'"columns":["time","x"],"values":[[1,0.5],[2,null]],"partial":true}],"partial":true},'
        b'{"statement_id":1}]}'
    )
    (series,) = parse_chunk(line, "q")
    assert (series.name, series.tags, series.columns) == ("m", {"device": "d1"}, ("time", "x"))
    assert series.values == [[1, 0.5], [2, None]]
    assert series.partial
    no_tags = parse_chunk(b'{"results":[{"series":[{"name":"m","columns":["time"]}]}]}', "q")
    assert no_tags == [Series("m", {}, ("time",), [], partial=False)]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"error":"authorization failed"}', "authorization failed"),
        (b'{"results":[{"statement_id":0,"error":"database not found: x"}]}', "database not found"),
        (b"<html>proxy error</html>", "answer is not JSON"),
        (b"[1, 2]", "answer is not a JSON object"),
        (b'{"results":[{"series":[{"name":"m"}]}]}', "unexpected shape"),
        (b'{"results":7}', "unexpected shape"),
    ],
)
def test_error_answers_name_the_query(line: bytes, problem: str) -> None:
    with pytest.raises(QueryError, match=problem) as failed:
        parse_chunk(line, "SELECT * FROM m")
    assert "'SELECT * FROM m'" in str(failed.value)
    assert failed.value.query == "SELECT * FROM m"


def test_long_queries_are_shortened_in_messages() -> None:
    query = "SELECT * FROM m WHERE " + " OR ".join(f"d = '{i}'" for i in range(200))
    error = QueryError(query, "boom")
    assert len(str(error)) < 400 and error.query == query


def test_partial_pieces_join_and_other_series_stay_apart() -> None:
    def piece(device: str, rows: list[list[object]], partial: bool) -> Series:
        return Series("m", {"device": device}, ("time", "x"), rows, partial)

    merged = merge_series(
        [
            piece("a", [[1, 1.0]], True),
            piece("a", [[2, 2.0]], True),
            piece("a", [[3, 3.0]], False),
            piece("b", [[1, 4.0]], False),
            piece("b", [[5, 5.0]], False),  # not partial before: a new series
        ]
    )
    assert [(s.tags["device"], s.values, s.partial) for s in merged] == [
        ("a", [[1, 1.0], [2, 2.0], [3, 3.0]], False),
        ("b", [[1, 4.0]], False),
        ("b", [[5, 5.0]], False),
    ]


# --- feature vectors -------------------------------------------------------------------


COLUMNS = ("time", "f0", "f1", "f10", "f11", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9")


def features_series(
    device: str, rows: Sequence[tuple[int, Sequence[object]]], columns: tuple[str, ...] = COLUMNS
) -> Series:
    """A ``SELECT *`` series: fields in the server's (alphabetical) column order."""
    extra = ("seq", "spec")
    values = []
    for t, fields in rows:
        by_name = {f"f{i}": v for i, v in enumerate(fields)}
        values.append([t, *(by_name.get(c) for c in columns[1:]), 7, "s1"])
    return Series("features", {"device": device}, (*columns, *extra), values)


def test_fields_come_out_in_numeric_order_as_float32() -> None:
    collector = FeatureCollector("s1")
    vector = [0.1, 1, 2.5, 3e-7, 4, 5, 6, 7, 8, 9, 10.25, 11]
    assert collector.add(features_series("d1", [(1000, vector)])) == 1
    features, times, devices, names = collector.arrays()
    assert features.dtype == np.float32 and features.shape == (1, 12)
    assert features[0].tolist() == np.array(vector, dtype=np.float32).tolist()
    assert (times.tolist(), devices.tolist(), names) == ([1000], [0], ["d1"])


def test_rows_are_ordered_by_time_then_device_across_chunks() -> None:
    collector = FeatureCollector("s1")
    collector.add(features_series("d2", [(10, [2.0] * 12), (30, [3.0] * 12)]))
    collector.add(features_series("d1", [(10, [1.0] * 12), (20, [4.0] * 12)]))
    collector.add(features_series("d1", []))
    assert len(collector) == 4
    features, times, devices, names = collector.arrays()
    assert times.tolist() == [10, 10, 20, 30]
    assert [names[i] for i in devices] == ["d1", "d2", "d1", "d2"]
    assert features[:, 0].tolist() == [1.0, 2.0, 4.0, 3.0]


def test_fields_of_other_specs_that_are_all_null_do_not_count() -> None:
    collector = FeatureCollector("s1")
    columns = (*COLUMNS, "f12", "f13")
    collector.add(features_series("d1", [(1, [1.0] * 12), (2, [2.0] * 12)], columns))
    assert collector.width == 12
    assert collector.arrays()[0].shape == (2, 12)


def test_nothing_collected_gives_empty_arrays() -> None:
    features, times, devices, names = FeatureCollector("s1").arrays()
    assert (features.shape, times.shape, devices.shape, names) == ((0, 0), (0,), (0,), [])


def test_a_vector_with_a_missing_field_is_refused_naming_device_and_time() -> None:
    collector = FeatureCollector("s1")
    collector.add(features_series("d1", [(1_700_000_000_000, [1.0] * 12)]))
    short: list[float | None] = [1.0] * 12
    short[5] = None
    with pytest.raises(DataError) as refused:
        collector.add(
            features_series("d2", [(1_700_000_000_001, [1.0] * 12), (1_700_000_000_002, short)])
        )
    message = str(refused.value)
    assert "device 'd2' at 2023-11-14T22:13:20.002+00:00 (1700000000002 ms)" in message
    assert "spec s1, has 11 values" in message
    assert "first vector (device 'd1' at 2023-11-14T22:13:20.000+00:00) has 12" in message
    assert "missing f5" in message


def test_a_longer_or_shorter_vector_is_refused() -> None:
    collector = FeatureCollector("s1")
    collector.add(features_series("d1", [(1, [1.0] * 11)]))
    with pytest.raises(DataError, match=r"has 12 values where .* has 11 .*: extra f11"):
        collector.add(features_series("d1", [(2, [1.0] * 12)]))
    with pytest.raises(DataError, match=r"has 10 values where .* has 11 .*: missing f10"):
        collector.add(features_series("d1", [(3, [1.0] * 10)]))


def test_a_gap_in_the_columns_is_refused() -> None:
    collector = FeatureCollector("s1")
    columns = ("time", "f0", "f2")
    with pytest.raises(DataError, match=r"has 2 values where .* has 2 .*: missing f1; extra f2"):
        collector.add(features_series("d1", [(1, [1.0, None, 2.0])], columns))


def test_a_vector_without_fields_or_with_text_is_refused() -> None:
    with pytest.raises(DataError, match="has no values"):
        FeatureCollector("s1").add(features_series("d1", [(1, [None] * 12)]))
    with pytest.raises(DataError, match="a field value is not a number"):
        FeatureCollector("s1").add(features_series("d1", [(1, ["x"] * 12)]))
