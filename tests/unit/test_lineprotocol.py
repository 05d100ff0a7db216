import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibewatch.errors import PointError
from vibewatch.influx.lineprotocol import (
    Point,
    check_identifier,
    check_tag_value,
    encode_batch,
    encode_point,
)


def test_encodes_tags_fields_and_time() -> None:
    point = Point(
        "reading",
        (("device", "pump-1"), ("site", "Plant A, hall=2")),
        (("score", 0.1), ("seq", 7), ("online", True), ("fw", 'v"1\\2')),
        1_700_000_000_123,
    )
    assert encode_point(point) == (
        r"reading,device=pump-1,site=Plant\ A\,\ hall\=2 "
        r'score=0.1,seq=7i,online=true,fw="v\"1\\2" 1700000000123'
    )


def test_floats_use_shortest_round_trip_repr() -> None:
    value = 0.1 + 0.2
    line = encode_point(Point("m", (), (("x", value),), 0))
    assert float(line.split("=")[1].split(" ")[0]) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(PointError, match="not finite"):
        encode_point(Point("m", (), (("x", value),), 0))


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_integers_outside_int64_are_refused(value: int) -> None:
    with pytest.raises(PointError, match="int64"):
        encode_point(Point("m", (), (("x", value),), 0))


@pytest.mark.parametrize("value", ["", "a\\b", "line\nbreak", "cr\rhere", "\ud800", "x" * 1025])
def test_tag_values_that_cannot_round_trip_are_refused(value: str) -> None:
    with pytest.raises(PointError):
        check_tag_value(value)


def test_point_without_fields_is_refused() -> None:
    with pytest.raises(PointError, match="no fields"):
        encode_point(Point("m", (), (), 0))


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a,b", "é"])
def test_identifiers_are_checked(name: str) -> None:
    with pytest.raises(PointError):
        check_identifier(name)


def test_batch_is_newline_terminated_utf8() -> None:
    assert encode_batch(["a x=1 1", "b,t=é x=2 2"]) == "a x=1 1\nb,t=é x=2 2\n".encode()


@given(st.text())
def test_tag_escaping_never_leaves_a_bare_separator(value: str) -> None:
    try:
        check_tag_value(value)
    except PointError:
        return
    line = encode_point(Point("m", (("t", value),), (("x", 1),), 0))
    head = line.rsplit(" ", 2)[0]
    # every space, comma and '=' after the key must be escaped
    body = head[len("m,t=") :]
    i = 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        assert body[i] not in " ,="
        i += 1
