"""The firmware's JSON reader (vw_json_reader.c) against the Python side (vibewatch.protocol, json).

Every ``Command`` and ``OtaJob`` the back end encodes reads back on the device as the same
strings, integers, floats (bit for bit) and booleans; the C validator accepts exactly the
payloads Python's ``json`` accepts as an object, except where the device is stricter on
purpose (lone surrogate escapes, nesting deeper than its limit); and numbers read as the
nearest double, as Python's ``float`` reads them.
"""

from __future__ import annotations

import ctypes
import json
import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vibewatch.edge import _lib
from vibewatch.protocol import Command, CommandName, OtaJob

DEVICE = "pump-07"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "protocol"
DEPTH = 16  # VW_JSON_DEFAULT_DEPTH
MAX_DEPTH = 32  # VW_JSON_MAX_DEPTH
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_INTP = ctypes.POINTER(ctypes.c_int)


@cache
def core() -> ctypes.CDLL:
    c_int, c_size, c_void, c_char = ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p
    return _lib.declare(
        [
            ("vwpy_json_doc_bytes", c_size, []),
            ("vw_json_parse", c_int, [c_void, c_void, c_size, ctypes.c_uint]),
            (
                "vw_json_get_string",
                c_int,
                [c_void, c_char, c_void, c_size, ctypes.POINTER(c_size), _INTP],
            ),
            (
                "vw_json_get_int",
                c_int,
                [
                    c_void,
                    c_char,
                    ctypes.c_int64,
                    ctypes.c_int64,
                    ctypes.POINTER(ctypes.c_int64),
                    _INTP,
                ],
            ),
            ("vw_json_get_number", c_int, [c_void, c_char, ctypes.POINTER(ctypes.c_double), _INTP]),
            ("vw_json_get_bool", c_int, [c_void, c_char, _INTP, _INTP]),
        ]
    )


@dataclass(frozen=True)
class Field:
    """What a getter said: its status name, whether the key was there, and the value."""

    status: str
    found: bool
    value: Any = None


class Doc:
    """A payload parsed by vw_json_parse; the getters read its top-level members."""

    def __init__(self, payload: bytes, depth: int = DEPTH) -> None:
        lib = core()
        # The document points into this copy: it lives as long as the Doc.
        self._payload = (ctypes.c_char * max(len(payload), 1)).from_buffer_copy(payload or b"\0")
        self._doc = _lib.buffer(lib.vwpy_json_doc_bytes())
        self.status = _lib.status_name(
            lib.vw_json_parse(self._doc, self._payload, len(payload), depth)
        )

    def text(self, key: str, size: int = 4096) -> Field:
        out = ctypes.create_string_buffer(size)
        length, found = ctypes.c_size_t(0), ctypes.c_int(-1)
        status = core().vw_json_get_string(
            self._doc, key.encode(), out, size, ctypes.byref(length), ctypes.byref(found)
        )
        return self._field(status, found, out.raw[: length.value].decode())

    def integer(self, key: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> Field:
        out, found = ctypes.c_int64(0), ctypes.c_int(-1)
        status = core().vw_json_get_int(
            self._doc, key.encode(), lo, hi, ctypes.byref(out), ctypes.byref(found)
        )
        return self._field(status, found, out.value)

    def number(self, key: str) -> Field:
        out, found = ctypes.c_double(0.0), ctypes.c_int(-1)
        status = core().vw_json_get_number(
            self._doc, key.encode(), ctypes.byref(out), ctypes.byref(found)
        )
        return self._field(status, found, out.value)

    def boolean(self, key: str) -> Field:
        out, found = ctypes.c_int(-1), ctypes.c_int(-1)
        status = core().vw_json_get_bool(
            self._doc, key.encode(), ctypes.byref(out), ctypes.byref(found)
        )
        return self._field(status, found, bool(out.value))

    @staticmethod
    def _field(status: int, found: ctypes.c_int, value: Any) -> Field:
        name = _lib.status_name(status)
        return Field(name, found.value == 1, value if name == "ok" and found.value == 1 else None)


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


# ---- what the back end sends reads back the same on the device -----------------------

# Any text JSON can carry: every code point but the surrogates, which UTF-8 cannot hold.
TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
FINITE = st.floats(allow_nan=False, allow_infinity=False)


def read_text(doc: Doc, key: str, want: str) -> None:
    """The C string equals ``want``, or is refused when it holds U+0000 (not a C string)."""
    got = doc.text(key, size=len(want.encode()) + 1)
    if "\0" in want:
        assert got == Field("message", True)
    else:
        assert got == Field("ok", True, want)
        if want:  # one byte short of the room it needs: refused, not cut
            assert doc.text(key, size=len(want.encode())).status == "message"


@given(
    st.builds(
        Command,
        device=st.just(DEVICE),
        id=TEXT,
        t=st.integers(0, INT64_MAX),
        cmd=st.sampled_from(CommandName),
        threshold=st.none() | FINITE,
    )
)
@example(Command(DEVICE, "cmd-20240610-0001", 1718000020000, CommandName.SET_THRESHOLD, 0.3))
@example(Command(DEVICE, "c", 1718000020000, CommandName.SET_THRESHOLD, 0.8125))
@example(Command(DEVICE, "c", 1718000020000, CommandName.SET_THRESHOLD, 1e-7))
@example(Command(DEVICE, "c", 1718000020000, CommandName.SET_THRESHOLD, 5e-324))
@example(Command(DEVICE, "c", 1718000020000, CommandName.SET_THRESHOLD, 1.7976931348623157e308))
def test_every_command_reads_back_the_same(command: Command) -> None:
    doc = Doc(command.encode())
    assert doc.status == "ok"
    read_text(doc, "id", command.id)
    assert doc.integer("t") == Field("ok", True, command.t)
    assert doc.text("cmd") == Field("ok", True, command.cmd.value)
    threshold = doc.number("threshold")
    if command.threshold is None:
        assert threshold == Field("ok", False)
    else:
        assert threshold.status == "ok" and threshold.found
        assert bits(threshold.value) == bits(command.threshold)
    # Fields of the wrong type for the getter.
    assert doc.integer("cmd").status == "message"
    assert doc.boolean("t").status == "message"


@given(
    st.builds(
        OtaJob,
        device=st.just(DEVICE),
        job=TEXT,
        model_id=TEXT,
        model_version=st.integers(0, 2**32 - 1),
        size=st.integers(INT64_MIN, INT64_MAX),
        sha256=st.binary(min_size=32, max_size=32).map(bytes.hex),
        chunk_size=st.integers(0, 2**63 - 1),
        signature=st.binary(min_size=64, max_size=64),
        rollback=st.booleans(),
    )
)
def test_every_ota_job_reads_back_the_same(job: OtaJob) -> None:
    doc = Doc(job.encode())
    assert doc.status == "ok"
    read_text(doc, "job", job.job)
    read_text(doc, "model_id", job.model_id)
    read_text(doc, "sha256", job.sha256)
    assert doc.integer("model_version", 0, 2**32 - 1) == Field("ok", True, job.model_version)
    assert doc.integer("size") == Field("ok", True, job.size)
    assert doc.integer("chunk_size") == Field("ok", True, job.chunk_size)
    signature = doc.text("signature", size=89)
    assert signature.status == "ok"
    assert signature.value == json.loads(job.encode())["signature"]
    # rollback is written only when true: absent reads as found 0.
    assert doc.boolean("rollback") == (
        Field("ok", True, True) if job.rollback else Field("ok", False)
    )
    # Integers out of the caller's range are refused, not clamped.
    if job.model_version > 0:
        assert doc.integer("model_version", 0, job.model_version - 1).status == "message"


def test_the_protocol_examples_read_as_documented() -> None:
    cmd = Doc((EXAMPLES / "cmd.example.json").read_bytes())
    assert cmd.text("cmd") == Field("ok", True, "set_threshold")
    assert cmd.number("threshold") == Field("ok", True, 0.3)
    job = Doc((EXAMPLES / "ota_job.example.json").read_bytes())
    assert job.integer("size") == Field("ok", True, 23552)
    assert job.boolean("rollback") == Field("ok", False)


# ---- numbers: the nearest double, as Python's float reads the text --------------------


@given(FINITE)
def test_the_shortest_text_of_any_double_reads_as_that_double(x: float) -> None:
    for text in (repr(x), f"{x:.17g}", f"{x:.17e}"):
        assert bits(Doc(b'{"v":%s}' % text.encode()).number("v").value) == bits(x)


@given(FINITE.filter(lambda x: x != 0.0 and math.isfinite(math.nextafter(x, math.inf))), st.data())
def test_decimals_near_a_midpoint_round_as_python_float_does(x: float, data: st.DataObject) -> None:
    """19 significant digits on either side of the midpoint between x and the next double."""
    mid = (Decimal(x) + Decimal(math.nextafter(x, math.inf))) / 2
    digits = data.draw(st.integers(1, 19))
    sign, mantissa, exponent = mid.as_tuple()
    assert isinstance(exponent, int)
    head = int("".join(map(str, mantissa[:digits])))
    shift = exponent + len(mantissa) - digits
    for m in (head - 1, head, head + 1):
        text = f"{'-' if sign else ''}{m}e{shift}"
        want = float(text)
        got = Doc(b'{"v":%s}' % text.encode()).number("v")
        if math.isinf(want):
            assert got.status == "message"
        else:
            assert got.status == "ok", text
            assert bits(got.value) == bits(want), text


@pytest.mark.parametrize(
    ("text", "status", "value"),
    [
        ("0.8125", "ok", 0.8125),
        ("1e-07", "ok", 1e-7),
        ("0.30000000000000004", "ok", 0.30000000000000004),
        ("-0", "ok", -0.0),
        ("1e-400", "ok", 0.0),
        ("1e999", "message", None),
        ("-1e309", "message", None),
        ("true", "message", None),
        ('"0.5"', "message", None),
        ("null", "message", None),
    ],
)
def test_number_field(text: str, status: str, value: float | None) -> None:
    got = Doc(b'{"v":%s}' % text.encode()).number("v")
    assert got.status == status
    if value is not None:
        assert bits(got.value) == bits(value)


@pytest.mark.parametrize(
    ("text", "status", "value"),
    [
        ("9223372036854775807", "ok", INT64_MAX),
        ("-9223372036854775808", "ok", INT64_MIN),
        ("9223372036854775808", "message", None),
        ("-9223372036854775809", "message", None),
        ("1" + "0" * 40, "message", None),
        ("1.0", "message", None),
        ("1e3", "message", None),
        ("false", "message", None),
    ],
)
def test_integer_field(text: str, status: str, value: int | None) -> None:
    assert Doc(b'{"v":%s}' % text.encode()).integer("v") == Field(status, True, value)


# ---- acceptance: the C validator and Python's json agree -------------------------------


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def python_value(payload: bytes) -> tuple[bool, Any]:
    """Whether Python reads ``payload`` as a JSON object (strict UTF-8, no NaN/Infinity)."""
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None
    return isinstance(value, dict), value


def stricter_on_device(value: Any, depth: int = 1) -> bool:
    """What the device refuses on purpose and Python takes: lone surrogates, deep nesting."""
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict | list):
        if depth > DEPTH:
            return True
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return any(
            (isinstance(k, str) and stricter_on_device(k)) or stricter_on_device(v, depth + 1)
            for k, v in items
        )
    return False


def c_accepts(payload: bytes) -> bool:
    status = Doc(payload).status
    assert status in ("ok", "json")
    return status == "ok"


def agrees(payload: bytes) -> bool:
    accepted, value = python_value(payload)
    return c_accepts(payload) == (accepted and not stricter_on_device(value))


TRICKY_AGREE = [
    # structure
    b"{}",
    b' \t\r\n{ "a" : [ ] , "b" : { } }\r\n',
    b"[]",
    b"1",
    b'"s"',
    b"null",
    b"",
    b"{",
    b"{}}",
    b"{}{}",
    b'{"a":1,}',
    b'{"a":[1,]}',
    b'{,"a":1}',
    b'{"a" 1}',
    b"{'a':1}",
    b"{a:1}",
    b'{"a":1}//',
    b'{"a":/*c*/1}',
    b'{"a":1}\x00',
    b'{"a":\x0b1}',
    b'{"a":\x0c1}',
    b"\xef\xbb\xbf{}",
    b'{"a":1,"a":2}',
    # literals and numbers
    b'{"a":true,"b":false,"c":null}',
    b'{"a":True}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":-Infinity}',
    b'{"a":01}',
    b'{"a":-01}',
    b'{"a":-0}',
    b'{"a":-0.0e-0}',
    b'{"a":1.}',
    b'{"a":.5}',
    b'{"a":+1}',
    b'{"a":1e}',
    b'{"a":1e+}',
    b'{"a":0x1F}',
    b'{"a":1e999}',
    b'{"a":123456789012345678901234567890}',
    # strings and escapes
    b'{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    b'{"a":"\\u0000"}',
    b'{"a":"\\u00e9\\u00E9"}',
    b'{"a":"\\ud83d\\ude00"}',
    b'{"a":"\\x41"}',
    b'{"a":"\\u12"}',
    b'{"a":"\\uGGGG"}',
    b'{"a":"\\\'"}',
    b'{"a":"\t"}',
    b'{"a":"\n"}',
    b'{"a":"\x00"}',
    b'{"a":"\x1f"}',
    b'{"a":"\x7f"}',
    b'{"a":"abc}',
    # UTF-8
    b'{"a":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"}',
    b'{"a":"\xc0\x80"}',
    b'{"a":"\xc1\xbf"}',
    b'{"a":"\xe0\x80\xaf"}',
    b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\xed\xbf\xbf"}',
    b'{"a":"\xf0\x80\x80\x80"}',
    b'{"a":"\xf4\x90\x80\x80"}',
    b'{"a":"\xf5\x80\x80\x80"}',
    b'{"a":"\xff"}',
    b'{"a":"\x80"}',
    b'{"a":"\xe2\x82"}',
    b'{"\xc3\xa9":1}',
    b'{"\xc3":1}',
    # nesting within the limit
    b'{"a":' + b"[" * (DEPTH - 1) + b"]" * (DEPTH - 1) + b"}",
]

DEVICE_STRICTER = [
    b'{"a":"\\ud800"}',
    b'{"a":"\\udc00"}',
    b'{"a":"\\ud800\\u0041"}',
    b'{"\\udfff":1}',
    b'{"a":' + b"[" * DEPTH + b"]" * DEPTH + b"}",
]


@pytest.mark.parametrize("payload", TRICKY_AGREE)
def test_c_validator_agrees_with_python_json(payload: bytes) -> None:
    assert agrees(payload), payload


@pytest.mark.parametrize("payload", DEVICE_STRICTER)
def test_device_is_stricter_on_purpose(payload: bytes) -> None:
    assert python_value(payload)[0]
    assert not c_accepts(payload)


def test_depth_is_the_callers_choice() -> None:
    deep = b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert Doc(deep, depth=MAX_DEPTH).status == "ok"
    assert Doc(deep, depth=MAX_DEPTH - 1).status == "json"
    assert Doc(b"{}", depth=MAX_DEPTH + 1).status == "arg"
    assert Doc(b"{}", depth=0).status == "arg"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX) | FINITE | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(
    st.dictionaries(TEXT, JSON_VALUES, max_size=6),
    st.sampled_from([None, 0, 2]),
    st.booleans(),
)
def test_any_object_python_writes_is_read_back(
    obj: dict[str, Any], indent: int | None, ensure_ascii: bool
) -> None:
    """Python writes it (any spacing, escaped or raw UTF-8); the device reads every scalar."""
    payload = json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii).encode()
    doc = Doc(payload, depth=MAX_DEPTH)
    assert doc.status == "ok"
    for key, value in obj.items():
        if "\0" in key:
            continue  # a C key cannot hold U+0000
        if isinstance(value, bool):
            assert doc.boolean(key) == Field("ok", True, value)
        elif isinstance(value, int):
            assert doc.integer(key) == Field("ok", True, value)
            assert doc.number(key) == Field("ok", True, float(value))
        elif isinstance(value, float):
            assert bits(doc.number(key).value) == bits(value)
            assert doc.integer(key).status == "message"
        elif isinstance(value, str) and "\0" not in value:
            assert doc.text(key, size=len(value.encode()) + 1) == Field("ok", True, value)
        else:
            assert doc.text(key).status == "message"
            assert doc.number(key).status == "message"
            assert doc.boolean(key).status == "message"


DAMAGE_BASES = [
    (EXAMPLES / "cmd.example.json").read_bytes(),
    (EXAMPLES / "ota_job.example.json").read_bytes(),
    b'{"a":[1,-2.5e+3,true,false,null,{"b":{}}],"c":"\\u00e9\\ud83d\\ude00\\n"}',
    '{"é":"€😀","n":-0.0e-0,"x":[[[]]]}'.encode(),
]


@given(st.data())
def test_damaged_payloads_are_accepted_exactly_when_python_accepts(data: st.DataObject) -> None:
    """A valid payload with bytes deleted, inserted or replaced: the two validators agree."""
    base = bytearray(data.draw(st.sampled_from(DAMAGE_BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(base)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        byte = data.draw(st.sampled_from(b'{}[]:,"\\u0aeE.-+ \x00\x80\xc3\xed\xf4tfn'))
        if op == "delete" and at < len(base):
            del base[at]
        elif op == "insert":
            base.insert(at, byte)
        elif at < len(base):
            base[at] = byte
    assert agrees(bytes(base)), bytes(base)
