"""The wire contract: topics, decode/encode of every message, and the JSON Schemas.

The schemas and examples in docs/protocol are checked against the decoder: every
example must validate and decode, and every malformed payload below must be
refused by the decoder with its exact reason, and by the schema too wherever
JSON Schema can express the rule. The binary ota/chunk and raw have no schema:
their hex examples and byte layouts are checked instead (and the chunk against
the firmware's parser in test_edge_chunk.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from paho.mqtt.client import topic_matches_sub

from vibewatch.edge.spec import MAX_SAMPLE_RATE_HZ, MAX_WINDOW, MIN_WINDOW
from vibewatch.errors import ConfigError, ProtocolError
from vibewatch.protocol import (
    CHUNK_HEADER_BYTES,
    CHUNK_MAGIC,
    CHUNK_VERSION,
    DEFAULT_PREFIX,
    DEVICE_ID_PATTERN,
    ID_PATTERN,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_PAYLOAD,
    MAX_MODEL_BYTES,
    MAX_RAW_PAYLOAD,
    MODEL_VERSION_MAX,
    RAW_HEADER_BYTES,
    RAW_MAGIC,
    RAW_MAX_SAMPLE_RATE_HZ,
    RAW_MAX_SAMPLES,
    RAW_MIN_SAMPLES,
    RAW_VERSION,
    REJECT_REASONS,
    AnomalyEvent,
    Command,
    CommandName,
    CommandOutcome,
    CommandReply,
    DeviceState,
    Features,
    Kind,
    Limits,
    Message,
    OtaChunk,
    OtaJob,
    OtaRequest,
    OtaRequestKind,
    OtaState,
    RawWindow,
    Reading,
    Slots,
    SlotState,
    Status,
    Telemetry,
    chunk_job_ref,
    decode_message,
    parse_topic,
    prefix_problem,
    subscription_filters,
    topic_for,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol"
NOW = 1_750_000_000_000  # 2025-06-15; every example time is before it
LIMITS = Limits()
DEVICE = "pump-07"
TYPES: dict[Kind, type[Message]] = {
    Kind.TELEMETRY: Telemetry,
    Kind.EVENT: AnomalyEvent,
    Kind.FEATURES: Features,
    Kind.STATUS: Status,
    Kind.OTA_REQ: OtaRequest,
    Kind.OTA_JOB: OtaJob,
    Kind.OTA_CHUNK: OtaChunk,
    Kind.CMD: Command,
    Kind.CMD_REPLY: CommandReply,
    Kind.RAW: RawWindow,
}


BINARY_KINDS = (Kind.OTA_CHUNK, Kind.RAW)
JSON_KINDS = [kind for kind in Kind if kind not in BINARY_KINDS]
"""Every message but the binary ones: these have a JSON Schema and a JSON example."""


def doc_name(kind: Kind) -> str:
    return kind.name.lower()


@cache
def validator(kind: Kind) -> Draft202012Validator:
    schema = json.loads((DOCS / f"{doc_name(kind)}.schema.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def example(kind: Kind) -> Any:
    """A fresh copy of the example, safe to edit."""
    return json.loads((DOCS / f"{doc_name(kind)}.example.json").read_text("utf-8"))


def chunk_example() -> bytes:
    """The ota/chunk example: hex digits, whitespace between them (``xxd -r -p`` reads it)."""
    return bytes.fromhex((DOCS / "ota_chunk.example.hex").read_text("ascii"))


def raw_example() -> bytes:
    """The raw example, written like the ota/chunk one."""
    return bytes.fromhex((DOCS / "raw.example.hex").read_text("ascii"))


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def decode(kind: Kind, payload: bytes, limits: Limits = LIMITS) -> Message:
    return decode_message(kind, DEVICE, payload, now_ms=NOW, limits=limits)


def reject(kind: Kind, payload: bytes, limits: Limits = LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(kind, payload, limits)
    assert info.value.reason in REJECT_REASONS
    return info.value


# --- examples and schemas -------------------------------------------------------------


def test_reject_reasons_are_the_documented_codes() -> None:
    assert REJECT_REASONS == (
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
    readme = (DOCS / "README.md").read_text("utf-8")
    for reason in REJECT_REASONS:
        assert f"| `{reason}` |" in readme


def test_every_message_has_its_documents() -> None:
    names = {path.name for path in DOCS.iterdir()}
    expected = {
        f"{doc_name(kind)}.{suffix}.json" for kind in JSON_KINDS for suffix in ("schema", "example")
    }
    assert names == expected | {"ota_chunk.example.hex", "raw.example.hex", "README.md"}


@pytest.mark.parametrize("kind", JSON_KINDS, ids=doc_name)
def test_schema_is_valid_draft_2020_12(kind: Kind) -> None:
    Draft202012Validator.check_schema(validator(kind).schema)
    assert validator(kind).schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("kind", JSON_KINDS, ids=doc_name)
def test_example_validates_decodes_and_round_trips(kind: Kind) -> None:
    doc = example(kind)
    validator(kind).validate(doc)
    message = decode(kind, dumps(doc))
    assert type(message) is TYPES[kind]
    assert message.KIND is kind
    assert message.device == DEVICE
    encoded = message.encode()
    assert decode(kind, encoded) == message
    # Compact JSON that says what the example says (the example has no extra fields).
    assert b": " not in encoded
    assert b", " not in encoded
    assert json.loads(encoded) == doc


def test_telemetry_example_values() -> None:
    message = decode(Kind.TELEMETRY, dumps(example(Kind.TELEMETRY)))
    assert isinstance(message, Telemetry)
    assert len(message.readings) == 3
    assert message.readings[0] == Reading(
        seq=81234, t=1718000000000, score=0.0213, rms=0.412, peak=1.337, crest=3.245, kurtosis=3.08
    )


def test_status_example_values() -> None:
    message = decode(Kind.STATUS, dumps(example(Kind.STATUS)))
    assert isinstance(message, Status)
    assert message.state is DeviceState.ONLINE
    assert message.slots == Slots(a=SlotState.ACTIVE, b=SlotState.STANDBY)
    assert message.capabilities == ("ota", "raw_upload", "features")
    assert message.uptime_s == 86400


def test_ota_job_example_values_and_signed_message() -> None:
    message = decode(Kind.OTA_JOB, dumps(example(Kind.OTA_JOB)))
    assert isinstance(message, OtaJob)
    assert len(message.signature) == 64
    assert message.signed_message() == (
        b"vw-model-v1\npump-ae\n8\n23552\n"
        b"bcd392227acbf97a54231a00e31c0ac45a4d105f4c0e58c339b544104f708f18\n"
    )


def test_ota_job_rollback_is_optional_signed_and_a_boolean() -> None:
    fields = example(Kind.OTA_JOB)
    assert decode(Kind.OTA_JOB, dumps(fields)).rollback is False
    rollback = decode(Kind.OTA_JOB, dumps({**fields, "rollback": True}))
    assert isinstance(rollback, OtaJob)
    assert rollback.signed_message().endswith(b"f18\nrollback\n")
    assert decode(Kind.OTA_JOB, rollback.encode()) == rollback
    assert b"rollback" not in decode(Kind.OTA_JOB, dumps(fields)).encode()
    with pytest.raises(ProtocolError) as info:
        decode(Kind.OTA_JOB, dumps({**fields, "rollback": "yes"}))
    assert info.value.reason == "wrong_type"


def test_schemas_carry_the_default_limits() -> None:
    telemetry = validator(Kind.TELEMETRY).schema
    assert telemetry["properties"]["readings"]["maxItems"] == LIMITS.max_readings
    assert telemetry["$defs"]["time"]["minimum"] == LIMITS.min_time_ms
    features = validator(Kind.FEATURES).schema
    assert features["properties"]["vectors"]["maxItems"] == LIMITS.max_vectors
    assert features["$defs"]["vector"]["properties"]["x"]["maxItems"] == LIMITS.max_vector_len


# --- accepted edge cases --------------------------------------------------------------


def status_offline() -> dict[str, Any]:
    return {"state": "offline"}


def telemetry_with_ints() -> dict[str, Any]:
    doc = example(Kind.TELEMETRY)
    doc["readings"][0].update(score=0, rms=1, peak=2, crest=2, kurtosis=3)
    return doc


def telemetry_at_bounds() -> dict[str, Any]:
    doc = example(Kind.TELEMETRY)
    doc["readings"][0].update(seq=2**63 - 1, t=NOW + LIMITS.max_future_ms, score=1e12, rms=0.0)
    doc["readings"][1].update(seq=0, t=LIMITS.min_time_ms, kurtosis=1e9, crest=1e6)
    return doc


def with_unknown_fields() -> dict[str, Any]:
    doc = example(Kind.TELEMETRY)
    doc["firmware_hint"] = {"anything": [1, None, True]}
    doc["readings"][0]["temperature_c"] = 41.5
    return doc


def calibrate_with_stray_threshold() -> dict[str, Any]:
    return {"id": "c1", "t": NOW, "cmd": "calibrate", "threshold": "ignored"}


def ota_state_report() -> dict[str, Any]:
    return {
        "t": NOW,
        "job": "j1",
        "kind": "state",
        "state": "failed",
        "detail": "sha256 mismatch é",
    }


def reply_refused_unknown_cmd() -> dict[str, Any]:
    return {"id": "c9", "t": NOW, "outcome": "refused", "detail": "unknown cmd 'reboot'"}


def reply_failed() -> dict[str, Any]:
    return {"id": "c2", "t": NOW, "cmd": "calibrate", "outcome": "failed", "detail": ""}


def reply_done_with_unknown_fields() -> dict[str, Any]:
    return {"id": "c3", "t": NOW, "cmd": "upload_raw", "outcome": "done", "bytes": 8192}


def reply_at_bounds() -> dict[str, Any]:
    return {
        "id": "r" * 64,
        "t": LIMITS.min_time_ms,
        "cmd": "set_threshold",
        "outcome": "done",
        "detail": "é" * 256,
        "threshold": 1e12,
    }


@pytest.mark.parametrize(
    ("kind", "build", "expected"),
    [
        pytest.param(
            Kind.CMD_REPLY,
            reply_refused_unknown_cmd,
            CommandReply(DEVICE, "c9", NOW, CommandOutcome.REFUSED, detail="unknown cmd 'reboot'"),
            id="reply-refused-without-cmd",
        ),
        pytest.param(
            Kind.CMD_REPLY,
            reply_failed,
            CommandReply(
                DEVICE, "c2", NOW, CommandOutcome.FAILED, CommandName.CALIBRATE, detail=""
            ),
            id="reply-failed-empty-detail",
        ),
        pytest.param(
            Kind.CMD_REPLY,
            reply_done_with_unknown_fields,
            CommandReply(DEVICE, "c3", NOW, CommandOutcome.DONE, CommandName.UPLOAD_RAW),
            id="reply-done-unknown-field-ignored",
        ),
        pytest.param(
            Kind.CMD_REPLY,
            reply_at_bounds,
            CommandReply(
                DEVICE,
                "r" * 64,
                LIMITS.min_time_ms,
                CommandOutcome.DONE,
                CommandName.SET_THRESHOLD,
                detail="é" * 256,
                threshold=1e12,
            ),
            id="reply-at-bounds",
        ),
        pytest.param(
            Kind.STATUS,
            status_offline,
            Status(DEVICE, DeviceState.OFFLINE),
            id="status-offline-last-will",
        ),
        pytest.param(
            Kind.CMD,
            calibrate_with_stray_threshold,
            Command(DEVICE, "c1", NOW, CommandName.CALIBRATE),
            id="cmd-threshold-ignored-without-set_threshold",
        ),
        pytest.param(
            Kind.OTA_REQ,
            ota_state_report,
            OtaRequest(
                DEVICE,
                NOW,
                "j1",
                OtaRequestKind.STATE,
                state=OtaState.FAILED,
                detail="sha256 mismatch é",
            ),
            id="ota-req-state",
        ),
    ],
)
def test_accepts(kind: Kind, build: Callable[[], Any], expected: Message) -> None:
    doc = build()
    assert validator(kind).is_valid(doc)
    message = decode(kind, dumps(doc))
    assert message == expected
    assert decode(kind, message.encode()) == message


@pytest.mark.parametrize(
    "build",
    [telemetry_with_ints, telemetry_at_bounds, with_unknown_fields],
    ids=lambda f: f.__name__,
)
def test_accepts_telemetry(build: Callable[[], Any]) -> None:
    doc = build()
    assert validator(Kind.TELEMETRY).is_valid(doc)
    message = decode(Kind.TELEMETRY, dumps(doc))
    assert isinstance(message, Telemetry)
    for reading in message.readings:
        assert type(reading.score) is float
        assert type(reading.kurtosis) is float
    assert decode(Kind.TELEMETRY, message.encode()) == message


def test_accepts_any_whitespace_and_non_ascii_text() -> None:
    payload = json.dumps(ota_state_report(), indent=4, ensure_ascii=True).encode()
    message = decode(Kind.OTA_REQ, payload)
    assert isinstance(message, OtaRequest)
    assert message.detail == "sha256 mismatch é"
    assert "é".encode() in message.encode()  # written as UTF-8, not escaped


# --- the malformed-input matrix -------------------------------------------------------

Edit = Callable[[Any], Any]


def put(*path: str | int, value: Any) -> Edit:
    def edit(doc: Any) -> Any:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return doc

    return edit


def drop(*path: str | int) -> Edit:
    def edit(doc: Any) -> Any:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return doc

    return edit


def raw(data: bytes) -> Edit:
    return lambda doc: data


def replace_text(old: str, new: str) -> Edit:
    """Edit the JSON text itself, for what json.dumps cannot write."""

    def edit(doc: Any) -> bytes:
        text = json.dumps(doc)
        assert old in text
        return text.replace(old, new, 1).encode()

    return edit


def pad_to(size: int) -> Edit:
    def edit(doc: Any) -> bytes:
        text = json.dumps(doc).encode()
        return text + b" " * (size - len(text))

    return edit


def many_readings(n: int) -> Edit:
    def edit(doc: Any) -> Any:
        doc["readings"] = [doc["readings"][0]] * n
        return doc

    return edit


def ragged_vectors(doc: Any) -> Any:
    doc["vectors"][1]["x"] = doc["vectors"][1]["x"][:-1]
    return doc


BIG = Limits(max_payload_bytes=1 << 20)
T, E, F, S = Kind.TELEMETRY, Kind.EVENT, Kind.FEATURES, Kind.STATUS
Q, J, M, R = Kind.OTA_REQ, Kind.OTA_JOB, Kind.CMD, Kind.CMD_REPLY
B64_63 = "A" * 84  # 63 bytes
SHA = "ab" * 32

# (kind, edit, reason, schema): schema is True when the schema must reject the payload
# too, False when the rule is beyond JSON Schema (the schema accepts the payload), and
# None when the schema cannot be asked: the payload is not JSON, or the rule is one that
# Python's validator reads differently from the ECMA-262 patterns the schemas use.
CASES = [
    # payload as a whole
    pytest.param(T, pad_to(LIMITS.max_payload_bytes + 1), "too_large", False, id="too-large"),
    pytest.param(T, raw(b'{"readings": "\xff"}'), "bad_encoding", None, id="latin-1-byte"),
    pytest.param(T, raw(b'{"r": "\xed\xa0\x80"}'), "bad_encoding", None, id="utf8-surrogate"),
    pytest.param(T, raw(b'{"readings": ['), "bad_json", None, id="truncated"),
    pytest.param(T, raw(b"\xef\xbb\xbf{}"), "bad_json", None, id="utf8-bom"),
    pytest.param(T, raw(b"[" * 30000 + b"]" * 30000), "bad_json", None, id="deep-nesting"),
    pytest.param(T, raw(b'{"a": ' + b"9" * 5000 + b"}"), "bad_json", None, id="huge-int"),
    pytest.param(T, raw(b"[1, 2]"), "not_object", True, id="array-top"),
    pytest.param(T, raw(b'"readings"'), "not_object", True, id="string-top"),
    pytest.param(T, raw(b"null"), "not_object", True, id="null-top"),
    # telemetry
    pytest.param(T, drop("readings"), "missing_field", True, id="t-no-readings"),
    pytest.param(T, put("readings", value=[]), "out_of_range", True, id="t-empty"),
    pytest.param(T, many_readings(1001), "out_of_range", True, id="t-1001-readings"),
    pytest.param(T, put("readings", value={}), "wrong_type", True, id="t-readings-object"),
    pytest.param(T, put("readings", 1, value="x"), "wrong_type", True, id="t-reading-string"),
    pytest.param(T, drop("readings", 2, "kurtosis"), "missing_field", True, id="t-no-kurtosis"),
    pytest.param(T, put("readings", 1, "rms", value=1e6 + 1), "out_of_range", True, id="t-rms-big"),
    pytest.param(T, put("readings", 0, "peak", value=-0.5), "out_of_range", True, id="t-peak<0"),
    pytest.param(T, put("readings", 0, "kurtosis", value=2e9), "out_of_range", True, id="t-kurt"),
    pytest.param(T, put("readings", 0, "score", value=True), "wrong_type", True, id="t-bool"),
    pytest.param(T, put("readings", 0, "score", value="0.5"), "wrong_type", True, id="t-str-num"),
    pytest.param(T, put("readings", 0, "t", value=None), "wrong_type", True, id="t-null"),
    pytest.param(T, put("readings", 0, "seq", value=1.0), "wrong_type", False, id="t-seq-1.0"),
    pytest.param(T, put("readings", 0, "seq", value=False), "wrong_type", True, id="t-seq-bool"),
    pytest.param(T, put("readings", 0, "seq", value=2**63), "out_of_range", True, id="t-seq-2^63"),
    pytest.param(T, put("readings", 0, "seq", value=-1), "out_of_range", True, id="t-seq<0"),
    pytest.param(T, replace_text("0.412", "NaN"), "non_finite", None, id="t-nan"),
    pytest.param(T, replace_text("0.412", "Infinity"), "non_finite", None, id="t-inf"),
    pytest.param(T, replace_text("1.337", "1e999"), "non_finite", True, id="t-1e999"),
    pytest.param(T, replace_text("81234", "1e999"), "non_finite", True, id="t-seq-1e999"),
    pytest.param(
        T, put("readings", 0, "t", value=1_500_000_000_000), "time_too_old", True, id="t-old"
    ),
    pytest.param(T, put("readings", 0, "t", value=0), "time_too_old", True, id="t-zero"),
    pytest.param(
        T, put("readings", 2, "t", value=NOW + 300_001), "time_in_future", False, id="t-future"
    ),
    pytest.param(T, put("readings", 0, "t", value=10**30), "time_in_future", False, id="t-huge"),
    # event
    pytest.param(E, put("kind", value="begin"), "bad_value", True, id="e-kind"),
    pytest.param(E, put("kind", value=1), "wrong_type", True, id="e-kind-int"),
    pytest.param(E, put("threshold", value=0), "out_of_range", True, id="e-threshold-0"),
    pytest.param(E, put("score", value=1.5e12), "out_of_range", True, id="e-score-big"),
    pytest.param(E, put("model_id", value="pump/ae"), "bad_value", True, id="e-model-slash"),
    pytest.param(E, put("model_id", value="é"), "bad_value", True, id="e-model-non-ascii"),
    pytest.param(E, put("model_id", value="m" * 65), "out_of_range", True, id="e-model-65"),
    pytest.param(E, put("model_id", value=""), "out_of_range", True, id="e-model-empty"),
    pytest.param(E, put("model_version", value=2**32), "out_of_range", True, id="e-version"),
    pytest.param(E, drop("seq"), "missing_field", True, id="e-no-seq"),
    # features
    pytest.param(F, ragged_vectors, "out_of_range", False, id="f-ragged"),
    pytest.param(F, put("vectors", 0, "x", value=[]), "out_of_range", True, id="f-x-empty"),
    pytest.param(F, put("vectors", 0, "x", value=[0.0] * 257), "out_of_range", True, id="f-x-257"),
    pytest.param(F, put("vectors", value=[]), "out_of_range", True, id="f-no-vectors"),
    pytest.param(F, put("vectors", 1, "x", 2, value=-2e12), "out_of_range", True, id="f-x-big"),
    pytest.param(F, put("vectors", 1, "x", 2, value=None), "wrong_type", True, id="f-x-null"),
    pytest.param(F, replace_text("0.0042", "-Infinity"), "non_finite", None, id="f-x-minus-inf"),
    pytest.param(F, put("spec", value=""), "out_of_range", True, id="f-spec-empty"),
    pytest.param(F, put("spec", value="bands 16"), "bad_value", True, id="f-spec-space"),
    # status
    pytest.param(S, drop("firmware"), "missing_field", True, id="s-online-no-firmware"),
    pytest.param(S, drop("t"), "missing_field", True, id="s-online-no-t"),
    pytest.param(S, put("state", value="sleeping"), "bad_value", True, id="s-state"),
    pytest.param(S, put("firmware", value="1.4 beta"), "bad_value", True, id="s-fw-space"),
    pytest.param(S, put("firmware", value="1" * 33), "out_of_range", True, id="s-fw-33"),
    pytest.param(S, put("model_sha256", value=SHA.upper()), "bad_value", True, id="s-sha-upper"),
    pytest.param(S, put("model_sha256", value=SHA[:63]), "out_of_range", True, id="s-sha-63"),
    pytest.param(S, put("slots", "b", value="broken"), "bad_value", True, id="s-slot-state"),
    pytest.param(S, drop("slots", "b"), "missing_field", True, id="s-slot-missing"),
    pytest.param(S, put("slots", value=["active"]), "wrong_type", True, id="s-slots-array"),
    pytest.param(S, put("capabilities", value=["c"] * 17), "out_of_range", True, id="s-caps-17"),
    pytest.param(S, put("capabilities", 0, value="a b"), "bad_value", True, id="s-cap-space"),
    pytest.param(S, put("uptime_s", value=-1), "out_of_range", True, id="s-uptime<0"),
    pytest.param(
        S,
        lambda doc: {"state": "offline", "t": "yesterday"},
        "wrong_type",
        True,
        id="s-offline-checks-present-fields",
    ),
    # ota/req
    pytest.param(Q, drop("length"), "missing_field", True, id="q-chunk-no-length"),
    pytest.param(Q, put("length", value=0), "out_of_range", True, id="q-length-0"),
    pytest.param(Q, put("length", value=65537), "out_of_range", True, id="q-length-big"),
    pytest.param(Q, put("offset", value=16 << 20), "out_of_range", True, id="q-offset-big"),
    pytest.param(Q, put("kind", value="resume"), "bad_value", True, id="q-kind"),
    pytest.param(Q, put("job", value="job#1"), "bad_value", True, id="q-job"),
    pytest.param(
        Q,
        lambda doc: {**ota_state_report(), "state": "done"},
        "bad_value",
        True,
        id="q-state",
    ),
    pytest.param(
        Q,
        lambda doc: {**ota_state_report(), "detail": "x" * 257},
        "out_of_range",
        True,
        id="q-detail-257",
    ),
    pytest.param(
        Q,
        lambda doc: json.dumps({**ota_state_report(), "detail": "\ud800"}).encode(),
        "bad_value",
        False,
        id="q-detail-lone-surrogate",
    ),
    # ota/job
    pytest.param(J, put("signature", value=B64_63), "out_of_range", True, id="j-sig-63"),
    pytest.param(J, put("signature", value="!" * 86 + "=="), "bad_value", True, id="j-sig-b64"),
    pytest.param(J, put("size", value=(16 << 20) + 1), "out_of_range", True, id="j-size"),
    pytest.param(J, put("size", value=0), "out_of_range", True, id="j-size-0"),
    pytest.param(J, put("chunk_size", value=63), "out_of_range", True, id="j-chunk-63"),
    pytest.param(J, put("sha256", value="g" * 64), "bad_value", True, id="j-sha-hex"),
    pytest.param(J, drop("sha256"), "missing_field", True, id="j-no-sha"),
    # cmd
    pytest.param(M, drop("threshold"), "missing_field", True, id="m-set-no-threshold"),
    pytest.param(M, put("threshold", value=-1.0), "out_of_range", True, id="m-threshold<0"),
    pytest.param(M, put("threshold", value=False), "wrong_type", True, id="m-threshold-bool"),
    pytest.param(M, put("cmd", value="reboot"), "bad_value", True, id="m-cmd"),
    pytest.param(M, put("cmd", value="CALIBRATE"), "bad_value", True, id="m-cmd-case"),
    pytest.param(M, drop("id"), "missing_field", True, id="m-no-id"),
    pytest.param(M, put("t", value="now"), "wrong_type", True, id="m-t-string"),
    pytest.param(M, put("t", value=NOW + 3_600_000), "time_in_future", False, id="m-t-future"),
    # cmd/reply
    pytest.param(R, drop("id"), "missing_field", True, id="r-no-id"),
    pytest.param(R, put("id", value=""), "out_of_range", True, id="r-id-empty"),
    pytest.param(R, put("id", value="c" * 65), "out_of_range", True, id="r-id-65"),
    pytest.param(R, put("id", value="cmd 1"), "bad_value", True, id="r-id-space"),
    pytest.param(R, put("id", value=7), "wrong_type", True, id="r-id-int"),
    pytest.param(R, drop("t"), "missing_field", True, id="r-no-t"),
    pytest.param(R, put("t", value=0), "time_too_old", True, id="r-t-zero"),
    pytest.param(R, put("t", value=NOW + 300_001), "time_in_future", False, id="r-t-future"),
    pytest.param(R, put("t", value=1718000020450.0), "wrong_type", False, id="r-t-1.0"),
    pytest.param(R, drop("outcome"), "missing_field", True, id="r-no-outcome"),
    pytest.param(R, put("outcome", value="ok"), "bad_value", True, id="r-outcome"),
    pytest.param(R, put("outcome", value="DONE"), "bad_value", True, id="r-outcome-case"),
    pytest.param(R, put("outcome", value=None), "wrong_type", True, id="r-outcome-null"),
    pytest.param(R, put("cmd", value="reboot"), "bad_value", True, id="r-cmd"),
    pytest.param(R, put("cmd", value=None), "wrong_type", True, id="r-cmd-null"),
    pytest.param(R, put("detail", value="x" * 257), "out_of_range", True, id="r-detail-257"),
    pytest.param(R, put("detail", value=["x"]), "wrong_type", True, id="r-detail-array"),
    pytest.param(
        R,
        lambda doc: json.dumps({**doc, "detail": "\udc00"}).encode(),
        "bad_value",
        False,
        id="r-detail-lone-surrogate",
    ),
    pytest.param(R, put("threshold", value=0), "out_of_range", True, id="r-threshold-0"),
    pytest.param(R, put("threshold", value=1.5e12), "out_of_range", True, id="r-threshold-big"),
    pytest.param(R, put("threshold", value="0.3"), "wrong_type", True, id="r-threshold-str"),
    pytest.param(R, put("threshold", value=True), "wrong_type", True, id="r-threshold-bool"),
    pytest.param(R, replace_text("0.3", "NaN"), "non_finite", None, id="r-threshold-nan"),
    pytest.param(R, replace_text("0.3", "1e999"), "non_finite", True, id="r-threshold-1e999"),
]


@pytest.mark.parametrize(("kind", "edit", "reason", "schema"), CASES)
def test_rejects(kind: Kind, edit: Edit, reason: str, schema: bool | None) -> None:
    edited = edit(example(kind))
    payload = edited if isinstance(edited, bytes) else dumps(edited)
    limits = LIMITS if reason == "too_large" else BIG
    assert reject(kind, payload, limits).reason == reason
    if schema is not None:
        doc = json.loads(payload)
        assert validator(kind).is_valid(doc) is not schema


def test_matrix_covers_every_payload_reason_and_message() -> None:
    binary = {case.values[1] for case in CHUNK_CASES + RAW_CASES}
    reasons = {case.values[2] for case in CASES} | binary
    assert reasons == set(REJECT_REASONS) - {"bad_topic", "bad_device_id"}
    assert {case.values[0] for case in CASES} == set(JSON_KINDS)


def test_detail_names_the_field_path_and_value() -> None:
    doc = example(Kind.TELEMETRY)
    doc["readings"][1]["rms"] = 1234567.5
    error = reject(Kind.TELEMETRY, dumps(doc))
    assert error.reason == "out_of_range"
    assert error.detail.startswith("readings[1].rms: ")
    assert "1234567.5" in error.detail
    assert str(error).startswith("out_of_range: readings[1].rms")

    doc = example(Kind.FEATURES)
    doc["vectors"][1]["x"][3] = "big"
    assert reject(Kind.FEATURES, dumps(doc)).detail.startswith("vectors[1].x[3]: ")

    missing = reject(Kind.EVENT, dumps({k: v for k, v in example(Kind.EVENT).items() if k != "t"}))
    assert missing.detail.startswith("t: ")


def test_detail_truncates_long_values() -> None:
    doc = example(Kind.EVENT)
    doc["model_id"] = "é" * 5000
    error = reject(Kind.EVENT, dumps(doc))
    assert error.reason == "out_of_range"
    assert "'éééé" in error.detail
    assert len(error.detail) < 200


def test_size_is_checked_before_parsing() -> None:
    payload = b"\xff" * (LIMITS.max_payload_bytes + 1)  # neither UTF-8 nor JSON
    assert reject(Kind.TELEMETRY, payload).reason == "too_large"
    assert reject(Kind.TELEMETRY, payload[:-1]).reason == "bad_encoding"


# --- ota/chunk: binary -------------------------------------------------------------------

EXAMPLE_JOB = "rollout-42.pump-ae.v8"
MIB16 = 16 << 20


def chunk_header(
    job_ref: int, offset: int, length: int, *, magic: bytes = b"VC", version: int = 1
) -> bytes:
    """A chunk header written field by field, independently of ``OtaChunk.encode``."""
    return magic + bytes([version, 0]) + struct.pack("<III", job_ref, offset, length)


def test_chunk_example_decodes_to_the_documented_values() -> None:
    payload = chunk_example()
    assert len(payload) == 64
    message = decode(Kind.OTA_CHUNK, payload)
    assert message == OtaChunk(
        DEVICE, 0x72E4A87B, 8192, bytes.fromhex("56574d3101000000") + bytes(range(40))
    )
    assert message.KIND is Kind.OTA_CHUNK
    assert message.encode() == payload
    assert message.belongs_to(EXAMPLE_JOB)
    assert not message.belongs_to("rollout-42.pump-ae.v9")
    assert OtaChunk.for_job(DEVICE, EXAMPLE_JOB, 8192, message.data) == message


def test_chunk_job_ref_is_the_first_four_sha256_bytes_little_endian() -> None:
    digest = hashlib.sha256(EXAMPLE_JOB.encode()).digest()
    assert digest[:4] == bytes.fromhex("7ba8e472")  # as the README says
    assert chunk_job_ref(EXAMPLE_JOB) == 0x72E4A87B
    assert chunk_example()[4:8] == digest[:4]  # the wire carries the digest bytes in order
    assert chunk_job_ref("a" * 64) == int.from_bytes(
        hashlib.sha256(b"a" * 64).digest()[:4], "little"
    )
    for job in ("", "a" * 65, "job#1", "jöb", "j1\n"):
        with pytest.raises(ValueError, match="not an id"):
            chunk_job_ref(job)


def test_chunk_readme_states_the_layout_and_the_example() -> None:
    readme = (DOCS / "README.md").read_text("utf-8")
    section = readme.partition("### ota/chunk (back end → device)")[2].partition("\n### ")[0]
    rows = re.findall(r"^\| (\d+) \| (\w+) \| ([a-z ]+) \|", section, re.MULTILINE)
    assert rows == [
        ("0", "2", "magic"),
        ("2", "1", "version"),
        ("3", "1", "reserved"),
        ("4", "4", "job reference"),
        ("8", "4", "offset"),
        ("12", "4", "length"),
        ("16", "length", "data"),
    ]
    assert (CHUNK_MAGIC, CHUNK_VERSION, CHUNK_HEADER_BYTES) == (b"VC", 1, 16)
    assert MAX_CHUNK_PAYLOAD == CHUNK_HEADER_BYTES + MAX_CHUNK_BYTES == 65552
    # The example block in the README: hex bytes before each line's comment.
    block = section.partition("```\n")[2].partition("```")[0]
    shown = "".join(re.findall(r"^((?:[0-9a-f]{2} )*[0-9a-f]{2})", block, re.MULTILINE))
    assert bytes.fromhex(shown) == chunk_example()


def test_chunk_bounds_are_accepted() -> None:
    largest = OtaChunk(DEVICE, 2**32 - 1, MIB16 - MAX_CHUNK_BYTES, b"\xa5" * MAX_CHUNK_BYTES)
    last_byte = OtaChunk(DEVICE, 0, MIB16 - 1, b"\x00")
    for message in (largest, last_byte):
        payload = message.encode()
        assert len(payload) == CHUNK_HEADER_BYTES + len(message.data)
        # The format bounds the size, not max_payload_bytes: any chunk size a job may use fits.
        for limits in (LIMITS, Limits(max_payload_bytes=100)):
            assert decode(Kind.OTA_CHUNK, payload, limits) == message
    assert len(largest.encode()) == MAX_CHUNK_PAYLOAD
    assert MAX_MODEL_BYTES == MIB16


def with_byte(at: int, value: int) -> bytes:
    payload = bytearray(chunk_example())
    payload[at] = value
    return bytes(payload)


OLD_JSON_CHUNK = b'{"job":"j1","offset":0,"data":"QUJD"}'
LARGEST = chunk_header(0, 0, MAX_CHUNK_BYTES) + bytes(MAX_CHUNK_BYTES)

# (payload, reason): the checks in their order (README, "ota/chunk"); the C statuses of the
# same payloads are in test_edge_chunk.py.
CHUNK_CASES = [
    pytest.param(LARGEST + b"\x00", "too_large", id="one-byte-too-many"),
    pytest.param(
        chunk_header(0, 0, MAX_CHUNK_BYTES + 1) + bytes(MAX_CHUNK_BYTES + 1),
        "too_large",
        id="65537-bytes",
    ),
    pytest.param(b"", "bad_binary", id="empty"),
    pytest.param(chunk_example()[:15], "bad_binary", id="short-header"),
    pytest.param(OLD_JSON_CHUNK, "bad_binary", id="json-chunk"),
    pytest.param(with_byte(0, ord("v")), "bad_binary", id="magic"),
    pytest.param(with_byte(2, 0), "bad_binary", id="version-0"),
    pytest.param(with_byte(2, 2), "bad_binary", id="version-2"),
    pytest.param(with_byte(3, 1), "bad_binary", id="reserved"),
    pytest.param(chunk_example()[:16], "bad_binary", id="header-only"),
    pytest.param(chunk_example()[:-1], "bad_binary", id="data-cut"),
    pytest.param(chunk_example() + b"\x00", "bad_binary", id="byte-after-data"),
    pytest.param(with_byte(12, 47), "bad_binary", id="length-47-of-48"),
    pytest.param(with_byte(12, 0), "bad_binary", id="length-0-of-48"),
    pytest.param(chunk_header(0, 0, 2**32 - 1) + b"x", "bad_binary", id="length-u32-max"),
    pytest.param(chunk_header(0, 0, 0), "out_of_range", id="no-data"),
    pytest.param(chunk_header(0, MIB16, 1) + b"x", "out_of_range", id="offset-16MiB"),
    pytest.param(chunk_header(0, MIB16 - 1, 2) + b"xy", "out_of_range", id="end-past-16MiB"),
    pytest.param(chunk_header(0, 2**32 - 16, 32) + bytes(32), "out_of_range", id="end-wraps-u32"),
]


@pytest.mark.parametrize(("payload", "reason"), CHUNK_CASES)
def test_chunk_rejects(payload: bytes, reason: str) -> None:
    assert reject(Kind.OTA_CHUNK, payload).reason == reason


def test_chunk_details_name_the_field() -> None:
    assert reject(Kind.OTA_CHUNK, with_byte(2, 2)).detail == "version: expected 1 (2)"
    assert reject(Kind.OTA_CHUNK, with_byte(12, 47)).detail == "length: 47, but 48 bytes follow"
    error = reject(Kind.OTA_CHUNK, OLD_JSON_CHUNK)
    assert error.detail.startswith("magic: expected b'VC'") and "'{\"'" in error.detail
    assert reject(Kind.OTA_CHUNK, chunk_header(0, MIB16, 1) + b"x").detail.startswith("offset: ")
    short = reject(Kind.OTA_CHUNK, b"V" * 15)
    assert short.detail.startswith("payload of 15 bytes, shorter than the 16-byte header (b'VVV")


@given(
    job_ref=st.integers(0, 2**32 - 1),
    offset=st.integers(0, MIB16 - 1),
    data=st.binary(min_size=1, max_size=2048),
)
def test_chunk_round_trips(job_ref: int, offset: int, data: bytes) -> None:
    data = data[: MIB16 - offset]  # the chunk ends inside 16 MiB
    message = OtaChunk(DEVICE, job_ref, offset, data)
    payload = message.encode()
    assert payload == chunk_header(job_ref, offset, len(data)) + data
    assert decode(Kind.OTA_CHUNK, payload) == message


@given(
    job=st.from_regex(ID_PATTERN, fullmatch=True), other=st.from_regex(ID_PATTERN, fullmatch=True)
)
def test_chunk_belongs_to_its_job_only(job: str, other: str) -> None:
    message = OtaChunk.for_job(DEVICE, job, 0, b"x")
    assert message.belongs_to(job)
    assert decode(Kind.OTA_CHUNK, message.encode()).belongs_to(job)
    if chunk_job_ref(other) != chunk_job_ref(job):
        assert not message.belongs_to(other)


# --- raw: binary ------------------------------------------------------------------------

EXAMPLE_COMMAND = "cmd-20240610-0002"
EXAMPLE_SAMPLES = tuple(round(512 * math.sin(2 * math.pi * i / 32)) / 1024 for i in range(256))
"""The README's example signal: an 800 Hz sine of 0.5 g at 25 600 Hz, exact in float32."""
T_MAX = NOW + LIMITS.max_future_ms


def raw_header(
    ref: int,
    rate: int,
    count: int,
    seq: int,
    t: int,
    *,
    magic: bytes = b"VR",
    version: int = 1,
    reserved: int = 0,
) -> bytes:
    """A raw header written field by field, independently of ``RawWindow.encode``."""
    return magic + bytes([version, reserved]) + struct.pack("<IIIQQ", ref, rate, count, seq, t)


def raw_payload(count: int = 256, *, rate: int = 25_600, seq: int = 1, t: int = NOW) -> bytes:
    """A header with these fields, then ``count`` zero samples."""
    return raw_header(0, rate, count, seq, t) + bytes(4 * count)


def raw_with(at: int, value: bytes) -> bytes:
    """The raw example with ``value`` written at byte ``at``."""
    payload = bytearray(raw_example())
    payload[at : at + len(value)] = value
    return bytes(payload)


def f32(value: float) -> bytes:
    return struct.pack("<f", value)


def test_raw_example_decodes_to_the_documented_values() -> None:
    payload = raw_example()
    assert len(payload) == 1056 == RAW_HEADER_BYTES + 4 * 256
    message = decode(Kind.RAW, payload)
    assert message == RawWindow(
        DEVICE, 0x8C1E86BF, 25_600, 81_240, 1_718_000_021_000, EXAMPLE_SAMPLES
    )
    assert message.KIND is Kind.RAW
    assert message.encode() == payload
    assert message.belongs_to(EXAMPLE_COMMAND)
    assert not message.belongs_to("cmd-20240610-0001")
    assert (
        RawWindow.for_command(
            DEVICE, EXAMPLE_COMMAND, 25_600, 81_240, 1_718_000_021_000, EXAMPLE_SAMPLES
        )
        == message
    )
    # The command reference is the chunk's job reference of the command id.
    digest = hashlib.sha256(EXAMPLE_COMMAND.encode()).digest()
    assert payload[4:8] == digest[:4] == bytes.fromhex("bf861e8c")  # as the README says
    assert chunk_job_ref(EXAMPLE_COMMAND) == 0x8C1E86BF
    assert max(EXAMPLE_SAMPLES) == 0.5 and min(EXAMPLE_SAMPLES) == -0.5
    with pytest.raises(ValueError, match="not an id"):
        RawWindow.for_command(DEVICE, "cmd 1", 25_600, 0, NOW, EXAMPLE_SAMPLES)


def test_raw_readme_states_the_layout_and_the_example() -> None:
    readme = (DOCS / "README.md").read_text("utf-8")
    section = readme.partition("### raw (device → back end)")[2].partition("\n### ")[0]
    rows = re.findall(r"^\| (\d+) \| ([\w \u00d7]+) \| ([a-z ]+) \|", section, re.MULTILINE)
    assert rows == [
        ("0", "2", "magic"),
        ("2", "1", "version"),
        ("3", "1", "reserved"),
        ("4", "4", "command reference"),
        ("8", "4", "sample rate"),
        ("12", "4", "count"),
        ("16", "8", "seq"),
        ("24", "8", "t"),
        ("32", "4 \u00d7 count", "samples"),  # MULTIPLICATION SIGN
    ]
    assert (RAW_MAGIC, RAW_VERSION, RAW_HEADER_BYTES) == (b"VR", 1, 32)
    assert (RAW_MIN_SAMPLES, RAW_MAX_SAMPLES, RAW_MAX_SAMPLE_RATE_HZ) == (256, 4096, 1_000_000)
    assert MAX_RAW_PAYLOAD == RAW_HEADER_BYTES + 4 * RAW_MAX_SAMPLES == 16416
    # The README shows the header and the first samples of the example file.
    block = section.partition("```\n")[2].partition("```")[0]
    shown = bytes.fromhex(
        "".join(re.findall(r"^((?:[0-9a-f]{2} )*[0-9a-f]{2})", block, re.MULTILINE))
    )
    assert len(shown) == RAW_HEADER_BYTES + 32
    assert raw_example().startswith(shown)
    # The checks table names the reasons in the decoder's order.
    checks = section.partition("**Checks**")[2]
    assert re.findall(r"^\| [^|]+ \| `(\w+)` \|$", checks, re.MULTILINE) == [
        "too_large",
        *["bad_binary"] * 5,
        *["out_of_range"] * 3,
        "time_too_old",
        "time_in_future",
        "non_finite",
    ]


def test_raw_bounds_are_accepted() -> None:
    ramp = tuple(float(i) - 2048.0 for i in range(RAW_MAX_SAMPLES))
    largest = RawWindow(DEVICE, 2**32 - 1, RAW_MAX_SAMPLE_RATE_HZ, 2**63 - 1, T_MAX, ramp)
    extremes = (0.0, -0.0, 3.4028234663852886e38, -1.401298464324817e-45) * 64
    smallest = RawWindow(DEVICE, 0, 1, 0, LIMITS.min_time_ms, extremes)
    for message in (largest, smallest):
        payload = message.encode()
        assert len(payload) == RAW_HEADER_BYTES + 4 * len(message.samples)
        # The format bounds the size, not max_payload_bytes: the longest window fits.
        for limits in (LIMITS, Limits(max_payload_bytes=100)):
            assert decode(Kind.RAW, payload, limits) == message
    assert len(largest.encode()) == MAX_RAW_PAYLOAD


LARGEST_RAW = raw_payload(RAW_MAX_SAMPLES)

# (payload, reason): the checks in their order (README, "raw").
RAW_CASES = [
    pytest.param(LARGEST_RAW + b"\x00", "too_large", id="raw-one-byte-too-many"),
    pytest.param(raw_payload(RAW_MAX_SAMPLES + 1), "too_large", id="raw-4097-samples"),
    pytest.param(b"", "bad_binary", id="raw-empty"),
    pytest.param(raw_example()[:31], "bad_binary", id="raw-short-header"),
    pytest.param(b'{"samples":[0.0]}', "bad_binary", id="raw-json"),
    pytest.param(raw_with(0, b"v"), "bad_binary", id="raw-magic"),
    pytest.param(chunk_example(), "bad_binary", id="raw-chunk"),
    pytest.param(raw_with(2, b"\x00"), "bad_binary", id="raw-version-0"),
    pytest.param(raw_with(2, b"\x02"), "bad_binary", id="raw-version-2"),
    pytest.param(raw_with(3, b"\x01"), "bad_binary", id="raw-reserved"),
    pytest.param(raw_example()[:32], "bad_binary", id="raw-header-only"),
    pytest.param(raw_example()[:-1], "bad_binary", id="raw-byte-cut"),
    pytest.param(raw_example()[:-4], "bad_binary", id="raw-sample-cut"),
    pytest.param(raw_example() + bytes(4), "bad_binary", id="raw-sample-after"),
    pytest.param(raw_with(12, struct.pack("<I", 255)), "bad_binary", id="raw-count-255-of-256"),
    pytest.param(raw_with(12, struct.pack("<I", 2**32 - 1)), "bad_binary", id="raw-count-u32-max"),
    pytest.param(raw_with(12, struct.pack("<I", 2**30)), "bad_binary", id="raw-count-wraps"),
    pytest.param(raw_payload(rate=0), "out_of_range", id="raw-rate-0"),
    pytest.param(raw_payload(rate=1_000_001), "out_of_range", id="raw-rate-1000001"),
    pytest.param(raw_payload(rate=2**32 - 1), "out_of_range", id="raw-rate-u32-max"),
    pytest.param(raw_payload(0), "out_of_range", id="raw-no-samples"),
    pytest.param(raw_payload(255), "out_of_range", id="raw-255-samples"),
    pytest.param(raw_payload(seq=2**63), "out_of_range", id="raw-seq-2^63"),
    pytest.param(raw_payload(seq=2**64 - 1), "out_of_range", id="raw-seq-u64-max"),
    pytest.param(raw_payload(t=0), "time_too_old", id="raw-t-unset-clock"),
    pytest.param(raw_payload(t=LIMITS.min_time_ms - 1), "time_too_old", id="raw-t-before-min"),
    pytest.param(raw_payload(t=T_MAX + 1), "time_in_future", id="raw-t-future"),
    pytest.param(raw_payload(t=2**64 - 1), "time_in_future", id="raw-t-u64-max"),
    pytest.param(raw_with(32, f32(math.nan)), "non_finite", id="raw-nan-first"),
    pytest.param(raw_with(1052, f32(math.inf)), "non_finite", id="raw-inf-last"),
    pytest.param(raw_with(100, f32(-math.inf)), "non_finite", id="raw-minus-inf"),
    pytest.param(raw_with(36, bytes.fromhex("0100807f")), "non_finite", id="raw-signalling-nan"),
]


@pytest.mark.parametrize(("payload", "reason"), RAW_CASES)
def test_raw_rejects(payload: bytes, reason: str) -> None:
    assert reject(Kind.RAW, payload).reason == reason


def test_raw_details_name_the_field() -> None:
    assert reject(Kind.RAW, raw_with(2, b"\x02")).detail == "version: expected 1 (2)"
    count = reject(Kind.RAW, raw_with(12, struct.pack("<I", 255))).detail
    assert count == "count: 255, but 1024 bytes follow"
    assert reject(Kind.RAW, raw_payload(255)).detail == "count: 255 is outside [256, 4096]"
    assert reject(Kind.RAW, raw_payload(rate=0)).detail.startswith("sample_rate: 0 ")
    assert reject(Kind.RAW, raw_payload(seq=2**63)).detail.startswith("seq: ")
    assert reject(Kind.RAW, raw_payload(t=0)).detail.startswith("t: 0 is before ")
    assert (
        reject(Kind.RAW, raw_with(1052, f32(math.inf))).detail == "samples[255]: not finite (inf)"
    )
    error = reject(Kind.RAW, chunk_example())
    assert error.detail.startswith("magic: expected b'VR'") and "'VC'" in error.detail
    short = reject(Kind.RAW, b"V" * 31)
    assert short.detail.startswith("payload of 31 bytes, shorter than the 32-byte header (b'VVV")


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(deadline=None)
@given(
    ref=st.integers(0, 2**32 - 1),
    rate=st.integers(1, RAW_MAX_SAMPLE_RATE_HZ),
    seq=st.integers(0, 2**63 - 1),
    t=st.integers(LIMITS.min_time_ms, T_MAX),
    samples=st.lists(float32s, min_size=RAW_MIN_SAMPLES, max_size=RAW_MIN_SAMPLES + 64),
)
def test_raw_round_trips(ref: int, rate: int, seq: int, t: int, samples: list[float]) -> None:
    message = RawWindow(DEVICE, ref, rate, seq, t, tuple(samples))
    payload = message.encode()
    count = len(samples)
    assert payload == raw_header(ref, rate, count, seq, t) + struct.pack(f"<{count}f", *samples)
    decoded = decode(Kind.RAW, payload)
    assert decoded == message
    assert decoded.encode() == payload


@given(
    command=st.from_regex(ID_PATTERN, fullmatch=True),
    other=st.from_regex(ID_PATTERN, fullmatch=True),
)
def test_raw_belongs_to_its_command_only(command: str, other: str) -> None:
    message = RawWindow.for_command(DEVICE, command, 25_600, 1, NOW, EXAMPLE_SAMPLES)
    assert message.command_ref == chunk_job_ref(command)
    assert decode(Kind.RAW, message.encode()).belongs_to(command)
    if chunk_job_ref(other) != chunk_job_ref(command):
        assert not message.belongs_to(other)


def test_raw_bounds_are_the_dsp_window_and_rate() -> None:
    # A raw window is one DSP window: the wire bounds are those the C core was built with.
    assert (RAW_MIN_SAMPLES, RAW_MAX_SAMPLES) == (MIN_WINDOW, MAX_WINDOW)
    assert RAW_MAX_SAMPLE_RATE_HZ == MAX_SAMPLE_RATE_HZ


# --- encoding and limits ----------------------------------------------------------------


def test_encode_refuses_nan() -> None:
    reading = Reading(seq=1, t=NOW, score=float("nan"), rms=0, peak=0, crest=0, kurtosis=0)
    with pytest.raises(ValueError):
        Telemetry(DEVICE, (reading,)).encode()


def test_encode_omits_absent_optional_fields() -> None:
    assert Status(DEVICE, DeviceState.OFFLINE).encode() == b'{"state":"offline"}'
    command = Command(DEVICE, "c7", NOW, CommandName.ROLLBACK)
    assert json.loads(command.encode()) == {"id": "c7", "t": NOW, "cmd": "rollback"}
    reply = CommandReply(DEVICE, "c7", NOW, CommandOutcome.REFUSED)
    assert reply.encode() == b'{"id":"c7","t":%d,"outcome":"refused"}' % NOW


def test_readme_tables_name_every_kind_and_outcome() -> None:
    readme = (DOCS / "README.md").read_text("utf-8")
    for kind in Kind:
        way = "device → back end" if kind.uplink else "back end → device"
        retained = "**yes**" if kind.retained else "no"
        row = f"| `vw/v1/{{dev}}/{kind.suffix}` | {way} | {kind.qos} | {retained} |"
        assert row in readme
    section = readme.partition("### cmd/reply (device → back end)")[2].partition("\n### ")[0]
    assert re.findall(r"^\| `(\w+)` \| (?:the|it)", section, re.MULTILINE) == [
        outcome.value for outcome in CommandOutcome
    ]


def test_reply_fields_are_written_in_their_order() -> None:
    reply = CommandReply(
        DEVICE,
        "c8",
        NOW,
        CommandOutcome.DONE,
        CommandName.SET_THRESHOLD,
        detail="ok",
        threshold=0.5,
    )
    assert list(json.loads(reply.encode())) == ["id", "t", "cmd", "outcome", "detail", "threshold"]
    assert reply.KIND is Kind.CMD_REPLY


def test_limits_are_keyword_only_frozen_and_checked() -> None:
    assert LIMITS.max_payload_bytes == 65536
    assert LIMITS.max_future_ms == 300_000
    assert LIMITS.min_time_ms == 1_577_836_800_000
    assert (LIMITS.max_readings, LIMITS.max_vectors, LIMITS.max_vector_len) == (1000, 100, 256)
    with pytest.raises(TypeError):
        Limits(1000)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        LIMITS.max_readings = 5  # type: ignore[misc]
    with pytest.raises(ConfigError):
        Limits(max_readings=0)


def test_limits_apply() -> None:
    payload = dumps(example(Kind.TELEMETRY))  # three readings
    assert reject(Kind.TELEMETRY, payload, Limits(max_readings=2)).reason == "out_of_range"
    late = Limits(min_time_ms=NOW)
    assert reject(Kind.TELEMETRY, payload, late).reason == "time_too_old"
    assert reject(Kind.TELEMETRY, payload, Limits(max_payload_bytes=100)).reason == "too_large"


# --- topics ---------------------------------------------------------------------------


def test_kinds() -> None:
    assert [kind.suffix for kind in Kind] == [
        "telemetry",
        "event",
        "features",
        "status",
        "ota/req",
        "ota/job",
        "ota/chunk",
        "cmd",
        "cmd/reply",
        "raw",
    ]
    assert {kind for kind in Kind if kind.uplink} == {T, E, F, S, Q, R, Kind.RAW}
    assert {kind for kind in Kind if kind.retained} == {S, J}
    assert {kind.qos for kind in Kind} == {1}


@pytest.mark.parametrize("kind", list(Kind), ids=doc_name)
@pytest.mark.parametrize("prefix", [DEFAULT_PREFIX, "site-7/vw/v1/", ""])
def test_topic_round_trip(kind: Kind, prefix: str) -> None:
    topic = topic_for(prefix, DEVICE, kind)
    assert topic == f"{prefix}{DEVICE}/{kind.suffix}"
    assert parse_topic(topic, prefix) == (DEVICE, kind)


def test_parse_topic_accepts_edge_ids() -> None:
    longest = "A-z_9" * 12 + "abcd"
    assert len(longest) == 64
    assert parse_topic(f"vw/v1/{longest}/status", "vw/v1/") == (longest, Kind.STATUS)
    assert parse_topic("vw/v1/-/cmd", "vw/v1/") == ("-", Kind.CMD)
    # A device may be called like a suffix or a suffix's first level.
    assert parse_topic("vw/v1/cmd/cmd/reply", "vw/v1/") == ("cmd", Kind.CMD_REPLY)
    assert parse_topic("vw/v1/reply/cmd", "vw/v1/") == ("reply", Kind.CMD)
    assert parse_topic("vw/v1/raw/raw", "vw/v1/") == ("raw", Kind.RAW)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("vw/v1/+/telemetry", "bad_device_id"),
        ("vw/v1/#/telemetry", "bad_device_id"),
        ("vw/v1/#", "bad_topic"),
        ("vw/v1/dev/#", "bad_topic"),
        ("vw/v1/dev/+", "bad_topic"),
        ("vw/v1//telemetry", "bad_device_id"),
        ("vw/v1/" + "a" * 65 + "/telemetry", "bad_device_id"),
        ("vw/v1/dévice/telemetry", "bad_device_id"),
        ("vw/v1/dev\u0661/telemetry", "bad_device_id"),  # ARABIC-INDIC DIGIT ONE
        ("vw/v1/dev\uff21/telemetry", "bad_device_id"),  # FULLWIDTH LATIN CAPITAL A
        ("vw/v1/../telemetry", "bad_device_id"),
        ("vw/v1/dev.1/telemetry", "bad_device_id"),
        ("vw/v1/dev/../telemetry", "bad_topic"),
        ("vw/v1/dev/..", "bad_topic"),
        ("vw/v1/dev\x00/telemetry", "bad_device_id"),
        ("vw/v1/dev/telemetry\x00", "bad_topic"),
        ("vw/v1/dev\n/telemetry", "bad_device_id"),
        ("vw/v1/dev /telemetry", "bad_device_id"),
        ("vw/v1/dev/telemetry/extra", "bad_topic"),
        (None, "bad_topic"),  # not UTF-8: the MQTT adapter hands over None
        ("vw/v1/site/dev/telemetry", "bad_topic"),
        ("vw/v1/dev/telemetry/", "bad_topic"),
        ("vw/v1/dev", "bad_topic"),
        ("vw/v1/dev/", "bad_topic"),
        ("vw/v1/dev/ota", "bad_topic"),
        ("vw/v1/dev/reply", "bad_topic"),
        ("vw/v1/cmd/reply", "bad_topic"),
        ("vw/v1/dev/cmd/", "bad_topic"),
        ("vw/v1/dev/cmd/reply/", "bad_topic"),
        ("vw/v1/dev/cmd/reply/extra", "bad_topic"),
        ("vw/v1/dev/cmd/+", "bad_topic"),
        ("vw/v1/dev/cmd/#", "bad_topic"),
        ("vw/v1/dev/cmd/Reply", "bad_topic"),
        ("vw/v1/dev/cmd_reply", "bad_topic"),
        ("vw/v1/+/cmd/reply", "bad_device_id"),
        ("vw/v1/+/raw", "bad_device_id"),
        ("vw/v1/dev/raw/", "bad_topic"),
        ("vw/v1/dev/raw/x", "bad_topic"),
        ("vw/v1/dev/RAW", "bad_topic"),
        ("vw/v1/dev/cmd/raw", "bad_topic"),
        ("vw/v1/raw", "bad_topic"),
        ("vw/v1/dev/TELEMETRY", "bad_topic"),
        ("vw/v2/dev/telemetry", "bad_topic"),
        ("VW/v1/dev/telemetry", "bad_topic"),
        ("/vw/v1/dev/telemetry", "bad_topic"),
        ("$share/ingest/vw/v1/dev/telemetry", "bad_topic"),
        ("vw/v1", "bad_topic"),
        ("", "bad_topic"),
    ],
)
def test_parse_topic_rejects(topic: str | None, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(topic, "vw/v1/")
    assert info.value.reason == reason


def test_topic_detail_shows_the_value_truncated() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic("vw/v1/" + "x" * 500 + "/telemetry", "vw/v1/")
    assert "'xxxx" in info.value.detail
    assert len(info.value.detail) < 200
    with pytest.raises(ProtocolError) as info:
        parse_topic("vw/v1/dev\x00/telemetry", "vw/v1/")
    assert "'dev\\x00'" in info.value.detail


def test_topic_for_refuses_bad_ids_and_prefixes() -> None:
    for device in ("", "a/b", "+", "#", "a" * 65, "dé"):
        with pytest.raises(ProtocolError) as info:
            topic_for(DEFAULT_PREFIX, device, Kind.CMD)
        assert info.value.reason == "bad_device_id"
    for prefix in ("vw/v1", "vw/+/", "vw/#/", "vw/\x00/"):
        with pytest.raises(ConfigError):
            topic_for(prefix, DEVICE, Kind.CMD)
        with pytest.raises(ConfigError):
            subscription_filters(prefix, [Kind.TELEMETRY])


def test_prefix_for_the_broker_is_refused() -> None:
    # Topics starting with "$" belong to the broker ($SYS, $share).
    for prefix in ("$SYS/", "$share/ingest/"):
        assert prefix_problem(prefix) is not None
        with pytest.raises(ConfigError, match=r'must not start with "\$"'):
            topic_for(prefix, DEVICE, Kind.CMD)
        with pytest.raises(ConfigError):
            subscription_filters(prefix, [Kind.TELEMETRY])
    assert prefix_problem("vw/$/") is None


@pytest.mark.parametrize("kind", [Kind.EVENT, Kind.STATUS, Kind.OTA_JOB], ids=doc_name)
def test_model_version_is_the_firmware_uint32(kind: Kind) -> None:
    # The device holds model versions in a uint32_t: its largest value is valid.
    doc = example(kind)
    doc["model_version"] = MODEL_VERSION_MAX
    assert MODEL_VERSION_MAX == 2**32 - 1
    message = decode_message(kind, DEVICE, dumps(doc), now_ms=NOW, limits=BIG)
    assert getattr(message, "model_version") == MODEL_VERSION_MAX  # noqa: B009
    assert validator(kind).is_valid(doc)
    doc["model_version"] = MODEL_VERSION_MAX + 1
    assert reject(kind, dumps(doc), BIG).reason == "out_of_range"
    assert not validator(kind).is_valid(doc)


def test_subscription_filters() -> None:
    assert subscription_filters("vw/v1/", [Kind.TELEMETRY, Kind.OTA_REQ]) == [
        "vw/v1/+/telemetry",
        "vw/v1/+/ota/req",
    ]
    uplink = subscription_filters(DEFAULT_PREFIX, [kind for kind in Kind if kind.uplink])
    assert len(uplink) == 7
    assert all(f.startswith("vw/v1/+/") for f in uplink)
    assert subscription_filters("", [Kind.CMD_REPLY]) == ["+/cmd/reply"]


@pytest.mark.parametrize("prefix", [DEFAULT_PREFIX, ""])
def test_each_filter_receives_its_own_kind_only(prefix: str) -> None:
    # MQTT matches level by level: {prefix}+/cmd receives no cmd/reply, so a service that
    # subscribes to other kinds (ingest: telemetry, event, features, status) never gets a
    # reply, and a device subscribed to its cmd topic never gets its own replies.
    for sub in Kind:
        (pattern,) = subscription_filters(prefix, [sub])
        for kind in Kind:
            topic = topic_for(prefix, DEVICE, kind)
            assert topic_matches_sub(pattern, topic) is (kind is sub), (pattern, topic)
            assert topic_matches_sub(topic_for(prefix, DEVICE, sub), topic) is (kind is sub)
    # The README's warning: a multi-level wildcard under cmd takes in the replies too.
    reply = topic_for(prefix, DEVICE, Kind.CMD_REPLY)
    assert topic_matches_sub(f"{topic_for(prefix, DEVICE, Kind.CMD)}/#", reply)


# --- property: any valid telemetry round-trips ------------------------------------------


def bounded(hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=0.0, max_value=hi, allow_nan=False, allow_infinity=False)


readings = st.builds(
    Reading,
    seq=st.integers(0, 2**63 - 1),
    t=st.integers(LIMITS.min_time_ms, NOW + LIMITS.max_future_ms),
    score=bounded(1e12),
    rms=bounded(1e6),
    peak=bounded(1e6),
    crest=bounded(1e6),
    kurtosis=bounded(1e9),
)


@settings(deadline=None)  # the schema check is slow on loaded machines
@given(
    device=st.from_regex(DEVICE_ID_PATTERN, fullmatch=True),
    items=st.lists(readings, min_size=1, max_size=40),
)
def test_telemetry_round_trips(device: str, items: list[Reading]) -> None:
    message = Telemetry(device, tuple(items))
    payload = message.encode()
    decoded = Telemetry.decode(payload, device, now_ms=NOW, limits=LIMITS)
    assert decoded == message
    assert decoded.encode() == payload
    assert validator(Kind.TELEMETRY).is_valid(json.loads(payload))


# --- property: any valid command reply round-trips ----------------------------------------


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


replies = st.builds(
    CommandReply,
    device=st.from_regex(DEVICE_ID_PATTERN, fullmatch=True),
    id=st.from_regex(ID_PATTERN, fullmatch=True),
    t=st.integers(LIMITS.min_time_ms, NOW + LIMITS.max_future_ms),
    outcome=st.sampled_from(CommandOutcome),
    cmd=optional(st.sampled_from(CommandName)),
    # Any Unicode text but lone surrogates, which the receiver refuses.
    detail=optional(st.text(st.characters(exclude_categories=("Cs",)), max_size=256)),
    threshold=optional(st.floats(min_value=0.0, max_value=1e12, exclude_min=True, allow_nan=False)),
)


@settings(deadline=None)  # the schema check is slow on loaded machines
@given(message=replies)
def test_command_reply_round_trips(message: CommandReply) -> None:
    payload = message.encode()
    decoded = decode_message(Kind.CMD_REPLY, message.device, payload, now_ms=NOW, limits=LIMITS)
    assert decoded == message
    assert decoded.encode() == payload
    doc = json.loads(payload)
    assert validator(Kind.CMD_REPLY).is_valid(doc)
    order = ["id", "t", "cmd", "outcome", "detail", "threshold"]
    assert list(doc) == [key for key in order if key in doc]
