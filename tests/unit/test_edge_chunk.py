"""The firmware's ota/chunk parser (vw_chunk.c) against the Python codec (vibewatch.protocol).

Chunks the back end encodes parse on the device to the same job reference, offset and
bytes; the device computes the same job reference from a job id; and on any payload,
well formed or not, both sides accept or refuse alike, for the same reason
(the status-to-reason table of docs/protocol/README.md, "ota/chunk").
"""

from __future__ import annotations

import ctypes
import struct
from functools import cache
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vibewatch.edge import _lib
from vibewatch.errors import ProtocolError
from vibewatch.protocol import (
    CHUNK_HEADER_BYTES,
    ID_MAX_LEN,
    ID_PATTERN,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_PAYLOAD,
    MAX_MODEL_BYTES,
    Kind,
    Limits,
    OtaChunk,
    chunk_job_ref,
    decode_message,
)

EXAMPLE = bytes.fromhex(
    (Path(__file__).resolve().parents[2] / "docs/protocol/ota_chunk.example.hex").read_text()
)
DEVICE = "pump-07"
U32 = 2**32 - 1

#: The reason the Python decoder gives for a payload the firmware refuses with this status.
REASON_OF_STATUS = {
    "too_large": "too_large",
    "truncated": "bad_binary",
    "magic": "bad_binary",
    "version": "bad_binary",
    "format": "bad_binary",
    "range": "out_of_range",
}

_U32P = ctypes.POINTER(ctypes.c_uint32)


@cache
def core() -> ctypes.CDLL:
    return _lib.declare(
        [
            (
                "vwpy_chunk_parse",
                ctypes.c_int,
                [ctypes.c_char_p, ctypes.c_size_t, _U32P, ctypes.POINTER(ctypes.c_size_t)],
            ),
            ("vw_chunk_job_ref", ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, _U32P]),
        ]
    )


def c_parse(payload: bytes) -> tuple[str, tuple[int, int, bytes] | None]:
    """The firmware's status name, and (job_ref, offset, data) when it accepts."""
    fields = (ctypes.c_uint32 * 3)()
    data_at = ctypes.c_size_t(0)
    status = core().vwpy_chunk_parse(payload, len(payload), fields, ctypes.byref(data_at))
    if status != 0:
        return _lib.status_name(status), None
    job_ref, offset, length = fields
    assert data_at.value == CHUNK_HEADER_BYTES
    return "ok", (job_ref, offset, payload[data_at.value : data_at.value + length])


def c_job_ref(job: bytes) -> tuple[str, int]:
    ref = ctypes.c_uint32(0)
    status = core().vw_chunk_job_ref(job, len(job), ctypes.byref(ref))
    return _lib.status_name(status), ref.value


def py_decode(payload: bytes) -> OtaChunk | str:
    """The decoded chunk, or the reason the Python decoder refuses it."""
    try:
        message = decode_message(Kind.OTA_CHUNK, DEVICE, payload, now_ms=0, limits=Limits())
    except ProtocolError as error:
        return error.reason
    assert isinstance(message, OtaChunk)
    return message


def header(job_ref: int, offset: int, length: int, *, head: bytes = b"VC\x01\x00") -> bytes:
    return head + struct.pack("<III", job_ref, offset, length)


def assert_agree(payload: bytes) -> None:
    status, parsed = c_parse(payload)
    decoded = py_decode(payload)
    if isinstance(decoded, OtaChunk):
        assert status == "ok", (status, payload[:32])
        assert parsed == (decoded.job_ref, decoded.offset, decoded.data)
    else:
        assert status != "ok", (decoded, payload[:32])
        assert REASON_OF_STATUS[status] == decoded, (status, decoded, payload[:32])


def with_byte(at: int, value: int) -> bytes:
    payload = bytearray(EXAMPLE)
    payload[at] = value
    return bytes(payload)


# --- encoded by Python, parsed by the firmware -----------------------------------------


def test_example_parses_to_its_documented_values() -> None:
    status, parsed = c_parse(EXAMPLE)
    assert status == "ok"
    assert parsed == (0x72E4A87B, 8192, EXAMPLE[16:])
    assert c_job_ref(b"rollout-42.pump-ae.v8") == ("ok", chunk_job_ref("rollout-42.pump-ae.v8"))


@given(
    job=st.from_regex(ID_PATTERN, fullmatch=True),
    offset=st.integers(0, MAX_MODEL_BYTES - 1),
    data=st.binary(min_size=1, max_size=4096),
)
@example(job="j", offset=MAX_MODEL_BYTES - MAX_CHUNK_BYTES, data=b"\xa5" * MAX_CHUNK_BYTES)
@example(job="j" * ID_MAX_LEN, offset=MAX_MODEL_BYTES - 1, data=b"\x00")
def test_python_chunks_parse_alike_in_c(job: str, offset: int, data: bytes) -> None:
    data = data[: MAX_MODEL_BYTES - offset]
    message = OtaChunk.for_job(DEVICE, job, offset, data)
    status, ref = c_job_ref(job.encode("ascii"))
    assert (status, ref) == ("ok", message.job_ref)
    assert c_parse(message.encode()) == ("ok", (ref, offset, data))


def test_job_ref_refuses_what_is_no_job_id_length() -> None:
    assert c_job_ref(b"a" * ID_MAX_LEN)[0] == "ok"
    assert c_job_ref(b"a" * (ID_MAX_LEN + 1))[0] == "arg"
    assert c_job_ref(b"")[0] == "arg"
    for job in ("a" * (ID_MAX_LEN + 1), ""):
        with pytest.raises(ValueError):
            chunk_job_ref(job)


# --- malformed payloads: refused alike ------------------------------------------------

LARGEST = header(0, 0, MAX_CHUNK_BYTES) + bytes(MAX_CHUNK_BYTES)

# (payload, firmware status): each check of the README's table, in its order.
MALFORMED = [
    pytest.param(LARGEST + b"\x00", "too_large", id="one-byte-too-many"),
    pytest.param(b"\x00" * (MAX_CHUNK_PAYLOAD * 2), "too_large", id="size-before-header"),
    pytest.param(b"", "truncated", id="empty"),
    pytest.param(EXAMPLE[:15], "truncated", id="short-header"),
    pytest.param(b'{"job":"j1","offset":0,"data":"QUJD"}', "magic", id="json-chunk"),
    pytest.param(with_byte(1, ord("c")), "magic", id="magic"),
    pytest.param(with_byte(2, 0), "version", id="version-0"),
    pytest.param(with_byte(2, 2), "version", id="version-2"),
    pytest.param(with_byte(3, 1), "format", id="reserved"),
    pytest.param(EXAMPLE[:16], "truncated", id="header-only"),
    pytest.param(EXAMPLE[:-1], "truncated", id="data-cut"),
    pytest.param(EXAMPLE + b"\x00", "format", id="byte-after-data"),
    pytest.param(with_byte(12, 0), "format", id="length-0-of-48"),
    pytest.param(header(0, 0, U32) + b"x", "truncated", id="length-u32-max"),
    pytest.param(header(0, 0, 0), "range", id="no-data"),
    pytest.param(header(0, MAX_MODEL_BYTES, 1) + b"x", "range", id="offset-16MiB"),
    pytest.param(header(0, U32, 1) + b"x", "range", id="offset-u32-max"),
    pytest.param(header(0, MAX_MODEL_BYTES - 1, 2) + b"xy", "range", id="end-past-16MiB"),
    pytest.param(header(0, U32 - 15, 32) + bytes(32), "range", id="end-wraps-u32"),
]


@pytest.mark.parametrize(("payload", "status"), MALFORMED)
def test_firmware_refuses_what_python_refuses(payload: bytes, status: str) -> None:
    assert c_parse(payload) == (status, None)
    assert py_decode(payload) == REASON_OF_STATUS[status]


def test_status_table_names_every_refusal_of_the_parser() -> None:
    assert {case.values[1] for case in MALFORMED} == set(REASON_OF_STATUS)


FIELDS = st.one_of(
    st.sampled_from([0, 1, 47, 48, 49, MAX_CHUNK_BYTES, MAX_MODEL_BYTES - 1, MAX_MODEL_BYTES, U32]),
    st.integers(0, U32),
)
HEADS = st.one_of(
    st.sampled_from([b"VC\x01\x00", b"VC\x02\x00", b"VC\x01\x01", b"vc\x01\x00"]),
    st.binary(min_size=4, max_size=4),
)


@given(
    head=HEADS,
    job_ref=st.integers(0, U32),
    offset=FIELDS,
    length=FIELDS,
    data=st.binary(max_size=64),
    cut=st.integers(0, 80),
)
def test_any_header_is_judged_alike(
    head: bytes, job_ref: int, offset: int, length: int, data: bytes, cut: int
) -> None:
    payload = header(job_ref, offset, length, head=head) + data
    assert_agree(payload)
    assert_agree(payload[:cut])


@given(at=st.integers(0, len(EXAMPLE) - 1), value=st.integers(0, 255), extra=st.binary(max_size=4))
def test_any_edit_of_the_example_is_judged_alike(at: int, value: int, extra: bytes) -> None:
    assert_agree(with_byte(at, value))
    assert_agree(with_byte(at, value) + extra)


@given(payload=st.binary(max_size=80))
def test_any_bytes_are_judged_alike(payload: bytes) -> None:
    assert_agree(payload)
