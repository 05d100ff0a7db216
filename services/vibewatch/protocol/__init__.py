"""The MQTT wire contract: topics, message value types and their codecs.

Pure: nothing here does I/O or reads a clock. The contract is described for
people in ``docs/protocol/README.md``, with a JSON Schema and an example per
JSON message next to it, and the byte layout of the binary ``ota/chunk``.
Typical use on the receiving side::

    device, kind = parse_topic(topic, prefix)
    message = decode_message(kind, device, payload, now_ms=now_ms, limits=limits)

Both raise :class:`~vibewatch.errors.ProtocolError`, whose ``reason`` is one of
:data:`REJECT_REASONS`.
"""

from vibewatch.protocol._validate import REJECT_REASONS
from vibewatch.protocol.messages import (
    CHUNK_HEADER_BYTES,
    CHUNK_MAGIC,
    CHUNK_VERSION,
    ID_MAX_LEN,
    ID_PATTERN,
    ID_RE,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_PAYLOAD,
    MAX_MODEL_BYTES,
    MIN_CHUNK_SIZE,
    MODEL_VERSION_MAX,
    AnomalyEvent,
    Command,
    CommandName,
    DeviceState,
    EventKind,
    Features,
    FeatureVector,
    Limits,
    Message,
    OtaChunk,
    OtaJob,
    OtaRequest,
    OtaRequestKind,
    OtaState,
    Reading,
    Slots,
    SlotState,
    Status,
    Telemetry,
    chunk_job_ref,
    decode_message,
    signed_model_text,
)
from vibewatch.protocol.topics import (
    DEFAULT_PREFIX,
    DEVICE_ID_CHARS,
    DEVICE_ID_MAX_LEN,
    DEVICE_ID_PATTERN,
    Kind,
    check_device_id,
    check_prefix,
    parse_topic,
    prefix_problem,
    subscription_filters,
    topic_for,
)

__all__ = [
    "CHUNK_HEADER_BYTES",
    "CHUNK_MAGIC",
    "CHUNK_VERSION",
    "DEFAULT_PREFIX",
    "DEVICE_ID_CHARS",
    "DEVICE_ID_MAX_LEN",
    "DEVICE_ID_PATTERN",
    "ID_MAX_LEN",
    "ID_PATTERN",
    "ID_RE",
    "MAX_CHUNK_BYTES",
    "MAX_CHUNK_PAYLOAD",
    "MAX_MODEL_BYTES",
    "MIN_CHUNK_SIZE",
    "MODEL_VERSION_MAX",
    "REJECT_REASONS",
    "AnomalyEvent",
    "Command",
    "CommandName",
    "DeviceState",
    "EventKind",
    "FeatureVector",
    "Features",
    "Kind",
    "Limits",
    "Message",
    "OtaChunk",
    "OtaJob",
    "OtaRequest",
    "OtaRequestKind",
    "OtaState",
    "Reading",
    "SlotState",
    "Slots",
    "Status",
    "Telemetry",
    "check_device_id",
    "check_prefix",
    "chunk_job_ref",
    "decode_message",
    "parse_topic",
    "prefix_problem",
    "signed_model_text",
    "subscription_filters",
    "topic_for",
]
