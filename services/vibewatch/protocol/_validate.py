"""Shared checkers that turn parsed JSON into checked Python values.

One checker per kind of check. Each reads ``node[key]`` (a field of an object or
an item of an array), returns the value converted and checked, or raises
:class:`ProtocolError` with a detail of the form ``<path>: <why> (<value>)``,
where the path is built from ``where`` (the path of ``node``) and ``key`` only
when something is wrong, so the accepting path stays cheap: one lookup, one
type test, one comparison.

A type failure is classified in one place (:func:`_type_failure`): an absent
field is ``missing_field``, an overflowed number such as ``1e999`` is
``non_finite``, anything else is ``wrong_type``. JSON ``true``/``false`` are
never numbers, and an integer field takes only JSON integers (``1.0`` is not
one); ``type(x) is int`` does both, since ``bool`` is a subclass of ``int``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from enum import Enum
from typing import Any, Final, NoReturn, Protocol, TypeVar

import orjson

from vibewatch.errors import ProtocolError

REJECT_REASONS: tuple[str, ...] = (
    "too_large",
    "bad_encoding",
    "bad_json",
    "bad_binary",
    "not_object",
    "missing_field",
    "wrong_type",
    "non_finite",
    "out_of_range",
    "bad_value",
    "time_in_future",
    "time_too_old",
    "bad_topic",
    "bad_device_id",
)
"""Every reason a message or topic can be rejected with, in checking order."""

_SHOW_MAX = 80
_MISSING: Final = object()

E = TypeVar("E", bound=Enum)


class Node(Protocol):
    """A parsed JSON object or array: anything indexable by field name or position."""

    def __getitem__(self, key: Any, /) -> Any: ...


def _get(node: Node, key: str | int) -> Any:
    """Return ``node[key]``, or the missing marker when there is no such key."""
    try:
        return node[key]
    except KeyError:
        return _MISSING


def show(value: object) -> str:
    """Return ``repr(value)`` cut to about 80 characters, for error details and logs."""
    text = repr(value)
    return text if len(text) <= _SHOW_MAX else f"{text[: _SHOW_MAX - 3]}..."


def field_path(where: str, key: str | int) -> str:
    """Join a parent path and a field name or index: ``readings[3].rms``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _reject(reason: str, where: str, key: str | int, why: str) -> NoReturn:
    raise ProtocolError(reason, f"{field_path(where, key)}: {why}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_failure(value: object, where: str, key: str | int, expected: str) -> NoReturn:
    if value is _MISSING:
        _reject("missing_field", where, key, "required field is missing")
    if isinstance(value, float) and not math.isfinite(value):
        _reject("non_finite", where, key, f"number is not finite ({show(value)})")
    _reject(
        "wrong_type", where, key, f"expected {expected}, got {_json_type(value)} ({show(value)})"
    )


def _reject_constant(name: str) -> NoReturn:
    # json accepts NaN, Infinity and -Infinity by default; they are not JSON.
    raise ProtocolError("non_finite", f"{name} is not a JSON number")


_TWO_64: Final = float(2**64)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_slowly(payload: bytes) -> Any:
    """Parse with the standard library, mapping each failure to its reason."""
    try:
        document = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = payload[exc.start : exc.start + 4]
        raise ProtocolError("bad_encoding", f"not UTF-8 at byte {exc.start} ({show(bad)})") from exc
    try:
        return _DECODER.decode(document)
    except RecursionError as exc:
        raise ProtocolError("bad_json", "arrays or objects nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and integers past the digit limit
        raise ProtocolError("bad_json", str(exc)[:_SHOW_MAX]) from exc


def load_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse a payload into a JSON object, checking its size first.

    Raises:
        ProtocolError: ``too_large``, ``bad_encoding``, ``bad_json``,
            ``non_finite`` (a NaN or infinity literal) or ``not_object``.
    """
    size = len(payload)
    if size > max_bytes:
        raise ProtocolError("too_large", f"payload of {size} bytes exceeds {max_bytes}")
    try:
        value = orjson.loads(payload)  # fast path for well-formed payloads
    except orjson.JSONDecodeError:
        value = _load_slowly(payload)  # says precisely why, or accepts what orjson does not
    if type(value) is not dict:
        raise ProtocolError("not_object", f"top level is {_json_type(value)}, expected object")
    return value


def _integral(value: Any) -> Any:
    """Return an integer literal beyond 64 bits (parsed as a float) as an int; else ``value``.

    The fast parser turns integers past 64 bits into floats; such a value can only
    be out of range, and it must be reported as that, not as a wrong type.
    """
    if type(value) is float and abs(value) >= _TWO_64 and value.is_integer():
        return int(value)
    return value


def integer(node: Node, key: str | int, where: str, lo: int, hi: int) -> int:
    """Return an integer in ``[lo, hi]``.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``non_finite``, ``out_of_range``.
    """
    value = _integral(_get(node, key))
    if type(value) is int:
        if lo <= value <= hi:
            return value
        _reject("out_of_range", where, key, f"{value} is outside [{lo}, {hi}]")
    _type_failure(value, where, key, "integer")


def number(
    node: Node, key: str | int, where: str, lo: float, hi: float, *, above: bool = False
) -> float:
    """Return a finite number in ``[lo, hi]`` (``(lo, hi]`` if ``above``) as a float.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``non_finite``, ``out_of_range``.
    """
    value = _get(node, key)
    if type(value) is float:
        if lo <= value <= hi and (value > lo or not above):
            return value
        if not math.isfinite(value):  # 1e999 parses to inf
            _reject("non_finite", where, key, f"number is not finite ({show(value)})")
    elif type(value) is int:
        if lo <= value <= hi and (value > lo or not above):
            return float(value)
    else:
        _type_failure(value, where, key, "number")
    interval = f"{'(' if above else '['}{lo:g}, {hi:g}]"
    _reject("out_of_range", where, key, f"{show(value)} is outside {interval}")


def timestamp(node: Node, key: str | int, where: str, earliest: int, latest: int) -> int:
    """Return a time in integer milliseconds since the epoch within ``[earliest, latest]``.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``non_finite``,
            ``time_too_old``, ``time_in_future``.
    """
    value = _integral(_get(node, key))
    if type(value) is int:
        if earliest <= value <= latest:
            return value
        if value < earliest:
            _reject("time_too_old", where, key, f"{value} is before {earliest} (min_time_ms)")
        _reject("time_in_future", where, key, f"{value} is after {latest} (now_ms + max_future_ms)")
    _type_failure(value, where, key, "integer milliseconds")


def text(
    node: Node,
    key: str | int,
    where: str,
    min_len: int,
    max_len: int,
    pattern: re.Pattern[str] | None = None,
) -> str:
    """Return a string of ``min_len..max_len`` characters that fully matches ``pattern``.

    Without a pattern the string is free text, which must still be valid Unicode:
    a JSON escape such as ``"\\ud800"`` yields a lone surrogate that no UTF-8
    consumer could take.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``out_of_range`` (length),
            ``bad_value`` (pattern, or a lone surrogate).
    """
    value = _get(node, key)
    if type(value) is not str:
        _type_failure(value, where, key, "string")
    if not min_len <= len(value) <= max_len:
        _reject(
            "out_of_range",
            where,
            key,
            f"length {len(value)} is outside [{min_len}, {max_len}] ({show(value)})",
        )
    if pattern is not None:
        if pattern.fullmatch(value) is None:
            _reject("bad_value", where, key, f"{show(value)} does not match {pattern.pattern}")
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            _reject("bad_value", where, key, f"not valid Unicode text ({show(value)})")
    return value


def choice(node: Node, key: str | int, where: str, options: type[E]) -> E:
    """Return the member of the string enum ``options`` whose value the field holds.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``bad_value``.
    """
    value = _get(node, key)
    if type(value) is not str:
        _type_failure(value, where, key, "string")
    try:
        return options(value)
    except ValueError:
        pass
    allowed = ", ".join(str(member.value) for member in options)
    _reject("bad_value", where, key, f"{show(value)} is not one of {allowed}")


def flag(node: Node, key: str | int, where: str) -> bool:
    """Return an optional JSON boolean field; a missing field is ``False``."""
    value = _get(node, key)
    if value is _MISSING:
        return False
    if not isinstance(value, bool):
        _type_failure(value, where, key, "boolean")
    return value


def array(node: Node, key: str | int, where: str, min_len: int, max_len: int) -> list[Any]:
    """Return an array of ``min_len..max_len`` items (not checked here).

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``out_of_range``.
    """
    value = _get(node, key)
    if type(value) is not list:
        _type_failure(value, where, key, "array")
    if not min_len <= len(value) <= max_len:
        _reject("out_of_range", where, key, f"{len(value)} items, expected {min_len}..{max_len}")
    return value


def mapping(node: Node, key: str | int, where: str) -> dict[str, Any]:
    """Return a nested JSON object (its fields are not checked here).

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``.
    """
    value = _get(node, key)
    if type(value) is not dict:
        _type_failure(value, where, key, "object")
    return value


def base64_bytes(node: Node, key: str | int, where: str, min_len: int, max_len: int) -> bytes:
    """Return the bytes of a padded standard base64 string, ``min_len..max_len`` long.

    Raises:
        ProtocolError: ``missing_field``, ``wrong_type``, ``out_of_range`` (text or
            decoded length), ``bad_value`` (not base64).
    """
    # Bound the text before decoding it: 4 characters carry 3 bytes.
    encoded = text(node, key, where, 4 * -(-min_len // 3), 4 * -(-max_len // 3))
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        _reject("bad_value", where, key, f"not padded standard base64 ({show(encoded)})")
    if not min_len <= len(data) <= max_len:
        _reject("out_of_range", where, key, f"{len(data)} bytes, expected {min_len}..{max_len}")
    return data
