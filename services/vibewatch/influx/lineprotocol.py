"""InfluxDB line protocol: points as values and their exact text encoding.

Escaping follows the line-protocol reference, restricted to what round-trips
exactly through InfluxDB 1.x *and* 2.x/3.x parsers:

* tag values escape ``,``, ``=`` and space with a backslash. The 1.x parser never
  unescapes a backslash itself (``a\\\\b`` is stored with two backslashes), so a tag
  value that contains a backslash cannot be written exactly and is rejected, as
  are newlines and carriage returns (which end a line), empty values (which
  InfluxDB drops) and text that is not valid Unicode;
* string field values escape ``"`` and ``\\``; they may hold any text;
* floats are written as the shortest text that parses back to the same
  IEEE-754 double (orjson's formatting: ``0.1``, ``1e-7``, ``1e+16``), so values
  land bit for bit; NaN and infinities have no line-protocol form and are
  rejected;
* integers carry the ``i`` suffix and must fit in a signed 64-bit integer.

Measurement names, tag keys and field keys are the project's own identifiers
and must match ``[A-Za-z_][A-Za-z0-9_]*``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from vibewatch.errors import PointError

FieldValue = float | int | bool | str

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_FORBIDDEN_IN_TAG = ("\\", "\n", "\r")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_TAG_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point.

    Attributes:
        measurement: Measurement name (an identifier).
        tags: ``(key, value)`` pairs, keys sorted; values are free text.
        fields: ``(key, value)`` pairs; at least one.
        time_ns: Timestamp in nanoseconds since the Unix epoch (the precision every
            writer sends; see :mod:`vibewatch.influx.schema` for how points are keyed).
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time_ns: int


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a valid measurement, tag key or field key.

    Raises:
        PointError: The name is not an identifier.
    """
    if _IDENT.fullmatch(name) is None:
        raise PointError(f"invalid identifier {name!r}: must match [A-Za-z_][A-Za-z0-9_]*")
    return name


def check_tag_value(value: str) -> str:
    """Return ``value`` if it can be written as a tag value and read back exactly.

    Raises:
        PointError: Empty, too long, not valid Unicode, or holding a backslash,
            newline or carriage return.
    """
    if not value:
        raise PointError("empty tag value: InfluxDB drops empty tags")
    for bad in _FORBIDDEN_IN_TAG:
        if bad in value:
            raise PointError(f"tag value {value[:80]!r} contains {bad!r}, which cannot round-trip")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise PointError(f"tag value {value[:80]!r} is not valid Unicode") from exc
    if size > _MAX_TAG_BYTES:
        raise PointError(f"tag value of {size} bytes exceeds {_MAX_TAG_BYTES}")
    return value


_NOT_IN_TAG = re.compile(r"[\\\s]+")


def as_tag_value(text: str, *, max_chars: int = 64, empty: str = "unspecified") -> str:
    """Free text (a device's reason, a label) made fit for a tag value: each run of
    backslashes and white space (line breaks included) one space, cut to ``max_chars``
    characters, trimmed; ``empty`` when nothing is left. Text that is not valid Unicode
    keeps its valid characters."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _NOT_IN_TAG.sub(" ", text)[:max_chars].strip() or empty


def _field_text(key: str, value: FieldValue) -> str:
    if type(value) is float:  # the common case first
        if value - value != 0.0:  # NaN and infinities; cheaper than math.isfinite
            raise PointError(f"field {key}={value!r} is not finite")
        return f"{key}={orjson.dumps(value).decode()}"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise PointError(f"field {key}={value} does not fit in int64")
        return f"{key}={value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PointError(f"field {key}={value!r} is not finite")
        return f"{key}={value!r}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PointError(f"field {key} holds text that is not valid Unicode") from exc
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def encode_point(point: Point) -> str:
    """Encode one point as a line of line protocol (without the newline).

    Tag keys and field keys must already be identifiers (the point builders use
    constants); tag values and field values are checked here.

    Raises:
        PointError: A value cannot be represented exactly.
    """
    if not point.fields:
        raise PointError(f"point in {point.measurement!r} has no fields")
    fields = ",".join([_field_text(key, value) for key, value in point.fields])
    return f"{series_key(point.measurement, point.tags)} {fields} {point.time_ns}"


@functools.lru_cache(maxsize=16384)
def series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """Return the measurement and its escaped tags: the start of a line.

    Cached, as a fleet has few series and many points.

    Raises:
        PointError: A tag value cannot round-trip.
    """
    head = measurement
    for key, value in tags:
        head += f",{key}={check_tag_value(value).translate(_TAG_ESCAPES)}"
    return head


def encode_batch(lines: Iterable[str]) -> bytes:
    """Join encoded lines into one write body (UTF-8, newline-terminated)."""
    return "".join(f"{line}\n" for line in lines).encode("utf-8")
