"""Message value types of the wire contract, with their pure codecs.

Every payload is a UTF-8 JSON object, except the two binary ones: ``ota/chunk``, a
header and raw bytes (:class:`OtaChunk`), and ``raw``, a header and float32 samples
(:class:`RawWindow`). Fields of a JSON payload not named here are ignored, so a
newer sender can add fields without breaking an older receiver. Times ``t`` are
integer milliseconds since the Unix epoch (UTC), taken from the device clock.

``decode`` checks a payload completely and builds a value, or raises
:class:`~vibewatch.errors.ProtocolError` whose ``reason`` is one of
:data:`REJECT_REASONS` and whose detail names the field path and the offending
value. It does no I/O and reads no clock: the caller passes ``now_ms`` and the
:class:`Limits`. The ``device`` argument is stored as given; it comes from
:func:`~vibewatch.protocol.parse_topic`, which has checked it.

``encode`` writes compact UTF-8 JSON without NaN or infinities and omits absent
optional fields (:class:`OtaChunk` and :class:`RawWindow` write their binary forms);
for every value that ``decode`` accepts, ``decode(encode(m)) == m``. ``encode`` does
not re-check ranges: to check a message built in code, decode its encoding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, Protocol, Self

from vibewatch.errors import ConfigError, ProtocolError
from vibewatch.protocol._validate import (
    array,
    base64_bytes,
    choice,
    flag,
    integer,
    load_object,
    mapping,
    number,
    show,
    text,
    timestamp,
)
from vibewatch.protocol.topics import Kind

ID_MAX_LEN = 64
"""Longest id matched by :data:`ID_PATTERN` (``VW_MODEL_MAX_ID`` of the firmware)."""
ID_PATTERN = rf"[A-Za-z0-9._-]{{1,{ID_MAX_LEN}}}"
"""Model ids, feature-spec ids, job ids, command ids and capability names.

The one statement of the rule in Python: the ``.vwm`` writer, the OTA manifest, the
model registry and the training source import it. The firmware checks the same in
``vw_model.c`` (``is_id_char``, ``VW_MODEL_MAX_ID``); ``tests/unit/test_shared_bounds.py``
holds the two together.
"""
ID_RE = re.compile(ID_PATTERN, re.ASCII)
""":data:`ID_PATTERN`, compiled (ASCII only); use ``fullmatch``."""

MODEL_VERSION_MAX = 2**32 - 1
"""Largest model version: the firmware holds versions in a ``uint32_t`` (the ``.vwm``
header, ``vw_ota_manifest_t``, the slot metadata), so every value it can hold is valid."""

MAX_MODEL_BYTES = 16 * 1024 * 1024
"""Largest model blob an OTA job may carry (16 MiB)."""
MAX_CHUNK_BYTES = 65536
"""Largest OTA chunk, and largest chunk request."""
MIN_CHUNK_SIZE = 64
"""Smallest chunk size an OTA job may announce."""

_INT64_MAX = 2**63 - 1
_SCORE_MAX = 1e12
_SIGNAL_MAX = 1e6
_KURTOSIS_MAX = 1e9
_FEATURE_MAX = 1e12
_MAX_CAPABILITIES = 16
_MAX_DETAIL = 256
_SIGNATURE_BYTES = 64

# The length of a text is checked before its pattern, so an id of the right
# characters but too long is out_of_range and one with a wrong character bad_value.
_SHA256 = re.compile(r"[0-9a-f]+", re.ASCII)
_FIRMWARE = re.compile(r"[!-~]+", re.ASCII)  # printable ASCII without space


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds that ``decode`` enforces beyond the fixed ranges of each field.

    Attributes:
        max_payload_bytes: Larger payloads are ``too_large``, checked before parsing.
        max_future_ms: How far ahead of ``now_ms`` a device time may be
            (clock skew allowance); later is ``time_in_future``.
        min_time_ms: Earlier device times are ``time_too_old`` (default
            2020-01-01T00:00:00Z, which also catches an unset device clock).
        max_readings: Most readings in one telemetry message.
        max_vectors: Most vectors in one features message.
        max_vector_len: Most values in one feature vector.
    """

    max_payload_bytes: int = 65536
    max_future_ms: int = 300_000
    min_time_ms: int = 1_577_836_800_000
    max_readings: int = 1000
    max_vectors: int = 100
    max_vector_len: int = 256

    def __post_init__(self) -> None:
        """Refuse limits that would reject every message.

        Raises:
            ConfigError: A limit is out of its sensible range.
        """
        for name in ("max_payload_bytes", "max_readings", "max_vectors", "max_vector_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Limits.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_future_ms", "min_time_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Limits.{name} must not be negative, got {getattr(self, name)}")


class EventKind(StrEnum):
    """Whether an anomaly event opens or closes an anomaly."""

    START = "start"
    END = "end"


class DeviceState(StrEnum):
    """Connection state in a status message."""

    ONLINE = "online"
    OFFLINE = "offline"


class SlotState(StrEnum):
    """State of one of the two model slots (A/B) on a device."""

    ACTIVE = "active"
    STANDBY = "standby"
    EMPTY = "empty"
    INVALID = "invalid"


class OtaRequestKind(StrEnum):
    """What an ``ota/req`` message asks or reports."""

    CHUNK = "chunk"
    STATE = "state"


class OtaState(StrEnum):
    """Progress of an OTA job on a device."""

    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    INSTALLED = "installed"
    ACTIVATED = "activated"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class ThresholdSource(StrEnum):
    """Where a device's threshold in force comes from (``status``)."""

    MODEL = "model"
    """The active model's own."""
    CALIBRATION = "calibration"
    """The device's own, from its healthy windows (the ``calibrate`` command)."""
    COMMAND = "command"
    """A ``set_threshold`` command."""


class CommandName(StrEnum):
    """Commands the back end can send to a device."""

    CALIBRATE = "calibrate"
    UPLOAD_RAW = "upload_raw"
    SET_THRESHOLD = "set_threshold"
    ROLLBACK = "rollback"


class CommandOutcome(StrEnum):
    """What became of a command, as its reply says."""

    DONE = "done"
    """Carried out."""
    REFUSED = "refused"
    """Not carried out: malformed, out of range, not supported by this firmware, or not
    allowed in the device's current state."""
    FAILED = "failed"
    """Tried and failed, such as on a storage error."""


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Reading(NamedTuple):
    """The features and anomaly score of one analysis window.

    A named tuple rather than a dataclass: telemetry carries many readings and
    a tuple is built three times faster, which the ingestion rate feels.

    Attributes:
        seq: Window sequence number, ``[0, 2**63-1]``; with ``t`` it identifies
            the window, so a redelivered message rewrites the same points.
        t: Device time of the start of the window, ms since the epoch.
        score: Anomaly score (reconstruction error), ``[0, 1e12]``.
        rms: RMS acceleration in g, ``[0, 1e6]``.
        peak: Peak absolute acceleration in g, ``[0, 1e6]``.
        crest: Crest factor, peak / rms (a ratio), ``[0, 1e6]``.
        kurtosis: Pearson kurtosis (3 for Gaussian noise), ``[0, 1e9]``.
    """

    seq: int
    t: int
    score: float
    rms: float
    peak: float
    crest: float
    kurtosis: float

    @classmethod
    def _decode(cls, items: list[Any], i: int, earliest: int, latest: int) -> Self:
        # Fast path for the common, valid reading: one look at every field, no
        # per-field calls. Anything unusual (a missing key, an int where a float
        # is allowed, a value out of range) takes the checkers below, which
        # accept or reject it with the exact reason.
        obj = items[i]
        if type(obj) is dict:
            seq = obj.get("seq")
            t = obj.get("t")
            score = obj.get("score")
            rms = obj.get("rms")
            peak = obj.get("peak")
            crest = obj.get("crest")
            kurtosis = obj.get("kurtosis")
            if (
                type(seq) is int
                and type(t) is int
                and type(score) is float
                and type(rms) is float
                and type(peak) is float
                and type(crest) is float
                and type(kurtosis) is float
                and 0 <= seq <= _INT64_MAX
                and earliest <= t <= latest
                and 0.0 <= score <= _SCORE_MAX
                and 0.0 <= rms <= _SIGNAL_MAX
                and 0.0 <= peak <= _SIGNAL_MAX
                and 0.0 <= crest <= _SIGNAL_MAX
                and 0.0 <= kurtosis <= _KURTOSIS_MAX
            ):
                return cls(seq, t, score, rms, peak, crest, kurtosis)
        obj = mapping(items, i, "readings")
        where = f"readings[{i}]"
        # Positional: this runs for every reading, and keywords cost a third more.
        return cls(
            integer(obj, "seq", where, 0, _INT64_MAX),
            timestamp(obj, "t", where, earliest, latest),
            number(obj, "score", where, 0.0, _SCORE_MAX),
            number(obj, "rms", where, 0.0, _SIGNAL_MAX),
            number(obj, "peak", where, 0.0, _SIGNAL_MAX),
            number(obj, "crest", where, 0.0, _SIGNAL_MAX),
            number(obj, "kurtosis", where, 0.0, _KURTOSIS_MAX),
        )

    def _json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t": self.t,
            "score": self.score,
            "rms": self.rms,
            "peak": self.peak,
            "crest": self.crest,
            "kurtosis": self.kurtosis,
        }


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A batch of readings (``telemetry``, uplink).

    Attributes:
        device: Device id, from the topic.
        readings: ``1..limits.max_readings`` readings, in the order sent.
    """

    KIND: ClassVar[Kind] = Kind.TELEMETRY

    device: str
    readings: tuple[Reading, ...]

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload.

        Args:
            payload: The raw MQTT payload.
            device: Device id from the topic.
            now_ms: Receive time, ms since the epoch, for the time checks.
            limits: Size and time bounds.

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        items = array(obj, "readings", "", 1, limits.max_readings)
        earliest, latest = limits.min_time_ms, now_ms + limits.max_future_ms
        return cls(
            device, tuple([Reading._decode(items, i, earliest, latest) for i in range(len(items))])
        )

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload.

        Raises:
            ValueError: A float is NaN or infinite.
        """
        return _dumps({"readings": [reading._json() for reading in self.readings]})


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """The start or end of an anomaly (``event``, uplink).

    Attributes:
        device: Device id, from the topic.
        seq: Sequence number of the window that triggered the event, ``[0, 2**63-1]``.
        t: Device time of that window, ms since the epoch.
        kind: ``start`` when the score rose above the threshold, ``end`` when it fell back.
        score: Anomaly score of that window, ``[0, 1e12]``.
        threshold: Threshold in force, ``(0, 1e12]``.
        model_id: Id of the model that scored the window.
        model_version: Version of that model, ``[0, 2**32-1]`` (:data:`MODEL_VERSION_MAX`).
    """

    KIND: ClassVar[Kind] = Kind.EVENT

    device: str
    seq: int
    t: int
    kind: EventKind
    score: float
    threshold: float
    model_id: str
    model_version: int

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        return cls(
            device=device,
            seq=integer(obj, "seq", "", 0, _INT64_MAX),
            t=timestamp(obj, "t", "", limits.min_time_ms, now_ms + limits.max_future_ms),
            kind=choice(obj, "kind", "", EventKind),
            score=number(obj, "score", "", 0.0, _SCORE_MAX),
            threshold=number(obj, "threshold", "", 0.0, _SCORE_MAX, above=True),
            model_id=text(obj, "model_id", "", 1, ID_MAX_LEN, ID_RE),
            model_version=integer(obj, "model_version", "", 0, MODEL_VERSION_MAX),
        )

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload.

        Raises:
            ValueError: A float is NaN or infinite.
        """
        return _dumps(
            {
                "seq": self.seq,
                "t": self.t,
                "kind": self.kind.value,
                "score": self.score,
                "threshold": self.threshold,
                "model_id": self.model_id,
                "model_version": self.model_version,
            }
        )


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """One sampled feature vector, as the model sees it before normalisation.

    Attributes:
        seq: Window sequence number, ``[0, 2**63-1]``.
        t: Device time of the start of the window, ms since the epoch.
        x: ``1..limits.max_vector_len`` finite values with ``|x| <= 1e12``, laid
            out as the feature spec says.
    """

    seq: int
    t: int
    x: tuple[float, ...]

    @classmethod
    def _decode(cls, items: list[Any], i: int, earliest: int, latest: int, max_len: int) -> Self:
        obj = mapping(items, i, "vectors")
        where = f"vectors[{i}]"
        seq = integer(obj, "seq", where, 0, _INT64_MAX)
        t = timestamp(obj, "t", where, earliest, latest)
        values = array(obj, "x", where, 1, max_len)
        x_where = f"{where}.x"
        x = [number(values, j, x_where, -_FEATURE_MAX, _FEATURE_MAX) for j in range(len(values))]
        return cls(seq, t, tuple(x))


@dataclass(frozen=True, slots=True)
class Features:
    """Sampled feature vectors, the retraining data (``features``, uplink).

    Attributes:
        device: Device id, from the topic.
        spec: Id of the feature spec that defines the layout of ``x``.
        vectors: ``1..limits.max_vectors`` vectors, all of the same length.
    """

    KIND: ClassVar[Kind] = Kind.FEATURES

    device: str
    spec: str
    vectors: tuple[FeatureVector, ...]

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        spec = text(obj, "spec", "", 1, ID_MAX_LEN, ID_RE)
        items = array(obj, "vectors", "", 1, limits.max_vectors)
        earliest, latest = limits.min_time_ms, now_ms + limits.max_future_ms
        vectors = tuple(
            [
                FeatureVector._decode(items, i, earliest, latest, limits.max_vector_len)
                for i in range(len(items))
            ]
        )
        width = len(vectors[0].x)
        for i, vector in enumerate(vectors):
            if len(vector.x) != width:
                raise ProtocolError(
                    "out_of_range",
                    f"vectors[{i}].x: length {len(vector.x)} differs from vectors[0].x ({width})",
                )
        return cls(device, spec, vectors)

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload.

        Raises:
            ValueError: A float is NaN or infinite.
        """
        vectors = [{"seq": v.seq, "t": v.t, "x": list(v.x)} for v in self.vectors]
        return _dumps({"spec": self.spec, "vectors": vectors})


@dataclass(frozen=True, slots=True)
class Slots:
    """States of the two model slots.

    Attributes:
        a: State of slot A.
        b: State of slot B.
    """

    a: SlotState
    b: SlotState


@dataclass(frozen=True, slots=True)
class Status:
    """Birth message or last will of a device (``status``, uplink, retained).

    A device publishes ``online`` with its identity after each connect and
    registers ``{"state": "offline"}`` as its last will at connect time; the
    broker publishes that when the connection drops, so it cannot carry the
    time it fires. Fields marked *online* are required when ``state`` is
    ``online`` and optional (``None`` when absent) when it is ``offline``.

    Attributes:
        device: Device id, from the topic.
        state: ``online`` or ``offline``.
        t: *online*: device time of the message, ms since the epoch.
        firmware: *online*: firmware version, 1..32 printable ASCII characters.
        model_id: *online*: id of the active model.
        model_version: *online*: version of the active model, ``[0, 2**32-1]``
            (:data:`MODEL_VERSION_MAX`).
        model_sha256: *online*: SHA-256 of the active model blob, 64 lowercase hex digits.
        capabilities: Optional feature names (id pattern), at most 16.
        slots: Optional states of model slots A and B.
        uptime_s: Optional seconds since boot, ``[0, 2**63-1]``.
        threshold: Optional anomaly threshold in force, ``(0, 1e12]``.
        threshold_source: Optional: where that threshold comes from.
    """

    KIND: ClassVar[Kind] = Kind.STATUS

    device: str
    state: DeviceState
    t: int | None = None
    firmware: str | None = None
    model_id: str | None = None
    model_version: int | None = None
    model_sha256: str | None = None
    capabilities: tuple[str, ...] = ()
    slots: Slots | None = None
    uptime_s: int | None = None
    threshold: float | None = None
    threshold_source: ThresholdSource | None = None

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        state = choice(obj, "state", "", DeviceState)
        online = state is DeviceState.ONLINE

        def wanted(key: str) -> bool:  # required when online, optional when offline
            return online or key in obj

        latest = now_ms + limits.max_future_ms
        t = timestamp(obj, "t", "", limits.min_time_ms, latest) if wanted("t") else None
        firmware = text(obj, "firmware", "", 1, 32, _FIRMWARE) if wanted("firmware") else None
        model_id = text(obj, "model_id", "", 1, ID_MAX_LEN, ID_RE) if wanted("model_id") else None
        model_version = None
        if wanted("model_version"):
            model_version = integer(obj, "model_version", "", 0, MODEL_VERSION_MAX)
        model_sha256 = None
        if wanted("model_sha256"):
            model_sha256 = text(obj, "model_sha256", "", 64, 64, _SHA256)
        capabilities: tuple[str, ...] = ()
        if "capabilities" in obj:
            names = array(obj, "capabilities", "", 0, _MAX_CAPABILITIES)
            capabilities = tuple(
                [text(names, i, "capabilities", 1, ID_MAX_LEN, ID_RE) for i in range(len(names))]
            )
        slots = None
        if "slots" in obj:
            states = mapping(obj, "slots", "")
            slots = Slots(
                choice(states, "a", "slots", SlotState), choice(states, "b", "slots", SlotState)
            )
        uptime_s = integer(obj, "uptime_s", "", 0, _INT64_MAX) if "uptime_s" in obj else None
        threshold = None
        if "threshold" in obj:
            threshold = number(obj, "threshold", "", 0.0, _SCORE_MAX, above=True)
        source = None
        if "threshold_source" in obj:
            source = choice(obj, "threshold_source", "", ThresholdSource)
        return cls(
            device,
            state,
            t,
            firmware,
            model_id,
            model_version,
            model_sha256,
            capabilities,
            slots,
            uptime_s,
            threshold,
            source,
        )

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload, without the absent fields."""
        obj: dict[str, Any] = {"state": self.state.value}
        optional = {
            "t": self.t,
            "firmware": self.firmware,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
        }
        obj.update((key, value) for key, value in optional.items() if value is not None)
        if self.capabilities:
            obj["capabilities"] = list(self.capabilities)
        if self.slots is not None:
            obj["slots"] = {"a": self.slots.a.value, "b": self.slots.b.value}
        if self.uptime_s is not None:
            obj["uptime_s"] = self.uptime_s
        if self.threshold is not None:
            obj["threshold"] = self.threshold
        if self.threshold_source is not None:
            obj["threshold_source"] = self.threshold_source.value
        return _dumps(obj)


_LIMIT_CAPABILITIES: dict[str, str] = {
    "rate": "sample_rate_hz",
    "window": "max_window",
    "flash": "flash_bytes",
    "ram": "ram_bytes",
}
_LIMIT_RE = re.compile(r"(rate|window|flash|ram)-([1-9][0-9]{0,9})", re.ASCII)


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """What a device can run, as the capabilities of its ``status`` name it.

    A capability ``rate-48000`` says the device samples at 48,000 Hz (a model's feature
    spec must use exactly that rate), ``window-4096`` the largest DSP window it can
    compute, ``flash-65536`` the largest model blob a slot holds, ``ram-8192`` the
    engine memory one inference may use. A limit the device does not name is ``None``
    (not known); a malformed one is not a limit.

    Attributes:
        sample_rate_hz: The accelerometer's sample rate.
        max_window: Largest DSP window, samples.
        flash_bytes: Largest model blob, bytes.
        ram_bytes: Engine working memory for one inference, bytes.
    """

    sample_rate_hz: int | None = None
    max_window: int | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None

    @classmethod
    def from_capabilities(cls, capabilities: Iterable[str]) -> DeviceLimits:
        """The limits among a status's capabilities (the first of each name counts)."""
        found: dict[str, int] = {}
        for name in capabilities:
            match = _LIMIT_RE.fullmatch(name)
            if match is not None:
                found.setdefault(_LIMIT_CAPABILITIES[match[1]], int(match[2]))
        return cls(**found)

    def capabilities(self) -> tuple[str, ...]:
        """The capabilities that name these limits (the known ones)."""
        return tuple(
            f"{short}-{value}"
            for short, name in _LIMIT_CAPABILITIES.items()
            if (value := getattr(self, name)) is not None
        )


@dataclass(frozen=True, slots=True)
class OtaRequest:
    """A chunk request or an OTA progress report (``ota/req``, uplink).

    ``kind`` decides which optional fields are set: ``offset`` and ``length``
    for ``chunk``; ``state`` and optionally ``detail`` for ``state``. The fields
    of the other kind are ignored on decode, like any unknown field.

    Attributes:
        device: Device id, from the topic.
        t: Device time of the request, ms since the epoch.
        job: Id of the OTA job.
        kind: ``chunk`` or ``state``.
        offset: *chunk*: first byte wanted, ``[0, 16 MiB - 1]``.
        length: *chunk*: bytes wanted, ``[1, 65536]``.
        state: *state*: progress of the job.
        detail: *state*: optional free text, at most 256 characters (why it failed).
    """

    KIND: ClassVar[Kind] = Kind.OTA_REQ

    device: str
    t: int
    job: str
    kind: OtaRequestKind
    offset: int | None = None
    length: int | None = None
    state: OtaState | None = None
    detail: str | None = None

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        t = timestamp(obj, "t", "", limits.min_time_ms, now_ms + limits.max_future_ms)
        job = text(obj, "job", "", 1, ID_MAX_LEN, ID_RE)
        kind = choice(obj, "kind", "", OtaRequestKind)
        if kind is OtaRequestKind.CHUNK:
            return cls(
                device,
                t,
                job,
                kind,
                offset=integer(obj, "offset", "", 0, MAX_MODEL_BYTES - 1),
                length=integer(obj, "length", "", 1, MAX_CHUNK_BYTES),
            )
        return cls(
            device,
            t,
            job,
            kind,
            state=choice(obj, "state", "", OtaState),
            detail=text(obj, "detail", "", 0, _MAX_DETAIL) if "detail" in obj else None,
        )

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload, without the absent fields."""
        obj: dict[str, Any] = {"t": self.t, "job": self.job, "kind": self.kind.value}
        optional = {
            "offset": self.offset,
            "length": self.length,
            "state": None if self.state is None else self.state.value,
            "detail": self.detail,
        }
        obj.update((key, value) for key, value in optional.items() if value is not None)
        return _dumps(obj)


def signed_model_text(
    model_id: str, model_version: int, size: int, sha256: str, *, rollback: bool = False
) -> bytes:
    """The ASCII text an ``ota/job`` signature covers (the device builds the same bytes).

    ``vw-model-v1\\n{model_id}\\n{model_version}\\n{size}\\n{sha256}\\n``, then
    ``rollback\\n`` for a signed rollback; numbers in decimal.
    """
    lines = ("vw-model-v1", model_id, model_version, size, sha256, *(("rollback",) * rollback))
    return "".join(f"{line}\n" for line in lines).encode("ascii")


@dataclass(frozen=True, slots=True)
class OtaJob:
    """The signed manifest of a model to install (``ota/job``, downlink, retained).

    Attributes:
        device: Device id, from the topic.
        job: Id of the job; chunk requests and reports name it.
        model_id: Id of the model.
        model_version: Version of the model, ``[0, 2**32-1]`` (:data:`MODEL_VERSION_MAX`).
        size: Size of the model blob in bytes, ``[1, 16 MiB]``.
        sha256: SHA-256 of the blob, 64 lowercase hex digits.
        chunk_size: Bytes per chunk request the device should use, ``[64, 65536]``.
        signature: Ed25519 signature (64 bytes) of :meth:`signed_message`.
        rollback: Signed permission to install a version that is not higher than the
            device's (optional on the wire, ``false`` when absent).
    """

    KIND: ClassVar[Kind] = Kind.OTA_JOB

    device: str
    job: str
    model_id: str
    model_version: int
    size: int
    sha256: str
    chunk_size: int
    signature: bytes
    rollback: bool = False

    def signed_message(self) -> bytes:
        """Return the bytes the signature covers.

        The signature binds the model, not the job: the ASCII text
        ``vw-model-v1\\n{model_id}\\n{model_version}\\n{size}\\n{sha256}\\n``, followed
        by ``rollback\\n`` for a rollback, so a package can be signed once, offline, and
        shipped by any number of jobs, and a rollback cannot be forged from a normal job.
        """
        return signed_model_text(
            self.model_id, self.model_version, self.size, self.sha256, rollback=self.rollback
        )

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        The signature is decoded but not verified: that needs the public key,
        which is the OTA code's business.

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        return cls(
            device=device,
            job=text(obj, "job", "", 1, ID_MAX_LEN, ID_RE),
            model_id=text(obj, "model_id", "", 1, ID_MAX_LEN, ID_RE),
            model_version=integer(obj, "model_version", "", 0, MODEL_VERSION_MAX),
            size=integer(obj, "size", "", 1, MAX_MODEL_BYTES),
            sha256=text(obj, "sha256", "", 64, 64, _SHA256),
            chunk_size=integer(obj, "chunk_size", "", MIN_CHUNK_SIZE, MAX_CHUNK_BYTES),
            signature=base64_bytes(obj, "signature", "", _SIGNATURE_BYTES, _SIGNATURE_BYTES),
            rollback=flag(obj, "rollback", ""),
        )

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload (``rollback`` only when true)."""
        fields: dict[str, Any] = {
            "job": self.job,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "size": self.size,
            "sha256": self.sha256,
            "chunk_size": self.chunk_size,
            "signature": _b64(self.signature),
        }
        if self.rollback:
            fields["rollback"] = True
        return _dumps(fields)


CHUNK_MAGIC = b"VC"
"""First two bytes of every ``ota/chunk`` payload."""
CHUNK_VERSION = 1
"""The ``ota/chunk`` format version that this code writes and reads."""
CHUNK_HEADER_BYTES = 16
"""Bytes of the ``ota/chunk`` header, before the data."""
MAX_CHUNK_PAYLOAD = CHUNK_HEADER_BYTES + MAX_CHUNK_BYTES
"""Longest ``ota/chunk`` payload: the header and the largest chunk (65552 bytes)."""

# magic, version, reserved (0), job reference, offset, length; little endian, no padding.
_CHUNK_HEADER = struct.Struct("<2sBBIII")


def chunk_job_ref(job: str) -> int:
    """The reference an ``ota/chunk`` carries for the job ``job``: its id's SHA-256, cut.

    The first 4 bytes of SHA-256 of the job id (ASCII), read as a little-endian
    integer; the firmware computes the same (``vw_chunk_job_ref``). A ``raw`` window
    refers to its ``upload_raw`` command the same way, with the command id for ``job``.

    Raises:
        ValueError: ``job`` is not an id (:data:`ID_PATTERN`).
    """
    if ID_RE.fullmatch(job) is None:
        raise ValueError(f"not an id: {job!r}")
    return int.from_bytes(hashlib.sha256(job.encode("ascii")).digest()[:4], "little")


@dataclass(frozen=True, slots=True)
class OtaChunk:
    """A piece of a model blob (``ota/chunk``, downlink): binary, not JSON.

    The payload is a 16-byte header, then the bytes; all integers little endian::

        0  magic "VC"      2  version (1)     3  reserved (0)
        4  job_ref (u32)   8  offset (u32)   12  length (u32)   16  data

    A chunk names its job by a 32-bit reference (:func:`chunk_job_ref`) rather
    than by the id: the receiver, which knows its current job, compares
    ``job_ref`` with that job's reference (:meth:`belongs_to`) and drops a chunk
    of any other job. ``docs/protocol/README.md`` says why each field is there.

    Attributes:
        device: Device id, from the topic.
        job_ref: Reference of the job, ``[0, 2**32-1]``.
        offset: Position of ``data`` in the blob, ``[0, 16 MiB - 1]``.
        data: ``1..65536`` bytes, raw; ``offset + len(data)`` is at most 16 MiB.
    """

    KIND: ClassVar[Kind] = Kind.OTA_CHUNK

    device: str
    job_ref: int
    offset: int
    data: bytes

    @classmethod
    def for_job(cls, device: str, job: str, offset: int, data: bytes) -> Self:
        """The chunk of ``data`` at ``offset`` of the blob of the job with id ``job``.

        Raises:
            ValueError: ``job`` is not an id.
        """
        return cls(device, chunk_job_ref(job), offset, data)

    def belongs_to(self, job: str) -> bool:
        """Whether this chunk carries the reference of the job with id ``job``."""
        return self.job_ref == chunk_job_ref(job)

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        The size bound is the format's own, :data:`MAX_CHUNK_PAYLOAD`, not
        ``limits.max_payload_bytes``, so that every chunk size a job may announce
        fits; the payload has no time, so ``now_ms`` is not used. The checks run in
        the order of the firmware's ``vw_chunk_parse``, and the first failure wins.

        Raises:
            ProtocolError: ``too_large`` (longer than :data:`MAX_CHUNK_PAYLOAD`);
                ``bad_binary`` (shorter than the header, wrong magic, unknown version,
                reserved byte not 0, length field not the number of bytes that follow);
                ``out_of_range`` (no data, offset at or past 16 MiB, end past 16 MiB).
        """
        size = len(payload)
        if size > MAX_CHUNK_PAYLOAD:
            raise ProtocolError("too_large", f"payload of {size} bytes exceeds {MAX_CHUNK_PAYLOAD}")
        if size < CHUNK_HEADER_BYTES:
            why = f"payload of {size} bytes, shorter than the {CHUNK_HEADER_BYTES}-byte header"
            raise ProtocolError("bad_binary", f"{why} ({show(payload)})")
        magic, version, reserved, job_ref, offset, length = _CHUNK_HEADER.unpack_from(payload)
        if magic != CHUNK_MAGIC:
            raise ProtocolError("bad_binary", f"magic: expected {CHUNK_MAGIC!r} ({show(magic)})")
        if version != CHUNK_VERSION:
            raise ProtocolError("bad_binary", f"version: expected {CHUNK_VERSION} ({version})")
        if reserved != 0:
            raise ProtocolError("bad_binary", f"reserved: expected 0 ({reserved})")
        follows = size - CHUNK_HEADER_BYTES
        if length != follows:
            raise ProtocolError("bad_binary", f"length: {length}, but {follows} bytes follow")
        if length == 0:
            raise ProtocolError("out_of_range", "length: no data (0)")
        if offset >= MAX_MODEL_BYTES:
            raise ProtocolError(
                "out_of_range", f"offset: {offset} is outside [0, {MAX_MODEL_BYTES - 1}]"
            )
        if offset + length > MAX_MODEL_BYTES:
            raise ProtocolError(
                "out_of_range",
                f"offset: {offset} + length {length} ends past {MAX_MODEL_BYTES} bytes",
            )
        return cls(device, job_ref, offset, bytes(payload[CHUNK_HEADER_BYTES:]))

    def encode(self) -> bytes:
        """Return the binary payload: the 16-byte header, then ``data``.

        Raises:
            struct.error: ``job_ref``, ``offset`` or the length does not fit 32 bits.
        """
        fields = (CHUNK_MAGIC, CHUNK_VERSION, 0, self.job_ref, self.offset, len(self.data))
        return _CHUNK_HEADER.pack(*fields) + self.data


RAW_MAGIC = b"VR"
"""First two bytes of every ``raw`` payload."""
RAW_VERSION = 1
"""The ``raw`` format version that this code writes and reads."""
RAW_HEADER_BYTES = 32
"""Bytes of the ``raw`` header, before the samples."""
RAW_MIN_SAMPLES = 256
"""Fewest samples in a ``raw`` window (the shortest DSP window, ``VW_DSP_MIN_WINDOW``)."""
RAW_MAX_SAMPLES = 4096
"""Most samples in a ``raw`` window (the longest DSP window, ``VW_DSP_MAX_WINDOW``)."""
RAW_MAX_SAMPLE_RATE_HZ = 1_000_000
"""Highest sample rate a ``raw`` window may state (``VW_DSP_MAX_RATE_HZ``)."""
MAX_RAW_PAYLOAD = RAW_HEADER_BYTES + 4 * RAW_MAX_SAMPLES
"""Longest ``raw`` payload: the header and the most samples (16416 bytes)."""

# magic, version, reserved (0), command reference, sample rate, count, seq, t;
# little endian, no padding.
_RAW_HEADER = struct.Struct("<2sBBIIIQQ")


@dataclass(frozen=True, slots=True)
class RawWindow:
    """The raw samples of one analysis window (``raw``, uplink): binary, not JSON.

    A device sends one in answer to an ``upload_raw`` command: it replies ``done`` on
    ``cmd/reply`` and publishes the next window's samples. The payload is a 32-byte
    header, then the samples as float32; all integers little endian::

        0  magic "VR"             2  version (1)        3  reserved (0)
        4  command_ref (u32)      8  sample rate (u32) 12  count (u32)
       16  seq (u64)             24  t (u64)           32  samples (4 x count)

    Like :class:`OtaChunk`, it names its command by a 32-bit reference
    (:func:`chunk_job_ref` of the command id) rather than by the id; the back end,
    which knows the ids it sent, matches with :meth:`belongs_to`.

    Attributes:
        device: Device id, from the topic.
        command_ref: Reference of the ``upload_raw`` command, ``[0, 2**32-1]``.
        sample_rate_hz: Sample rate of the window in Hz, ``[1, 1e6]``.
        seq: Window sequence number, ``[0, 2**63-1]``, as in telemetry.
        t: Device time of the start of the window, ms since the epoch.
        samples: ``256..4096`` finite acceleration values in g, float32 on the wire
            (so values read back are those a float32 can hold).
    """

    KIND: ClassVar[Kind] = Kind.RAW

    device: str
    command_ref: int
    sample_rate_hz: int
    seq: int
    t: int
    samples: tuple[float, ...]

    @classmethod
    def for_command(
        cls,
        device: str,
        command_id: str,
        sample_rate_hz: int,
        seq: int,
        t: int,
        samples: tuple[float, ...],
    ) -> Self:
        """The window sent in answer to the ``upload_raw`` command with id ``command_id``.

        Raises:
            ValueError: ``command_id`` is not an id.
        """
        return cls(device, chunk_job_ref(command_id), sample_rate_hz, seq, t, samples)

    def belongs_to(self, command_id: str) -> bool:
        """Whether this window carries the reference of the command with id ``command_id``."""
        return self.command_ref == chunk_job_ref(command_id)

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        The size bound is the format's own, :data:`MAX_RAW_PAYLOAD`, not
        ``limits.max_payload_bytes``, so that the longest window fits whatever that
        limit says. The checks run in the order of the README's table, and the first
        failure wins.

        Raises:
            ProtocolError: ``too_large`` (longer than :data:`MAX_RAW_PAYLOAD`);
                ``bad_binary`` (shorter than the header, wrong magic, unknown version,
                reserved byte not 0, size not 32 + 4 x count); ``out_of_range`` (sample
                rate, count or seq outside its range); ``time_too_old``,
                ``time_in_future``; ``non_finite`` (a NaN or infinite sample).
        """
        size = len(payload)
        if size > MAX_RAW_PAYLOAD:
            raise ProtocolError("too_large", f"payload of {size} bytes exceeds {MAX_RAW_PAYLOAD}")
        if size < RAW_HEADER_BYTES:
            why = f"payload of {size} bytes, shorter than the {RAW_HEADER_BYTES}-byte header"
            raise ProtocolError("bad_binary", f"{why} ({show(payload)})")
        magic, version, reserved, ref, rate, count, seq, t = _RAW_HEADER.unpack_from(payload)
        if magic != RAW_MAGIC:
            raise ProtocolError("bad_binary", f"magic: expected {RAW_MAGIC!r} ({show(magic)})")
        if version != RAW_VERSION:
            raise ProtocolError("bad_binary", f"version: expected {RAW_VERSION} ({version})")
        if reserved != 0:
            raise ProtocolError("bad_binary", f"reserved: expected 0 ({reserved})")
        follows = size - RAW_HEADER_BYTES
        if 4 * count != follows:
            raise ProtocolError("bad_binary", f"count: {count}, but {follows} bytes follow")
        if not 1 <= rate <= RAW_MAX_SAMPLE_RATE_HZ:
            raise ProtocolError(
                "out_of_range", f"sample_rate: {rate} is outside [1, {RAW_MAX_SAMPLE_RATE_HZ}]"
            )
        if not RAW_MIN_SAMPLES <= count <= RAW_MAX_SAMPLES:
            raise ProtocolError(
                "out_of_range", f"count: {count} is outside [{RAW_MIN_SAMPLES}, {RAW_MAX_SAMPLES}]"
            )
        if seq > _INT64_MAX:
            raise ProtocolError("out_of_range", f"seq: {seq} is outside [0, {_INT64_MAX}]")
        # The one statement of the time rules, with the same detail as a JSON ``t``.
        timestamp({"t": t}, "t", "", limits.min_time_ms, now_ms + limits.max_future_ms)
        samples = struct.unpack_from(f"<{count}f", payload, RAW_HEADER_BYTES)
        if not all(map(math.isfinite, samples)):
            i = next(i for i, x in enumerate(samples) if not math.isfinite(x))
            raise ProtocolError("non_finite", f"samples[{i}]: not finite ({samples[i]})")
        return cls(device, ref, rate, seq, t, samples)

    def encode(self) -> bytes:
        """Return the binary payload: the 32-byte header, then the samples as float32.

        Raises:
            struct.error: An integer field does not fit its width.
            OverflowError: A sample is too large for a float32.
        """
        count = len(self.samples)
        fields = (RAW_MAGIC, RAW_VERSION, 0, self.command_ref, self.sample_rate_hz, count)
        header = _RAW_HEADER.pack(*fields, self.seq, self.t)
        return header + struct.pack(f"<{count}f", *self.samples)


@dataclass(frozen=True, slots=True)
class Command:
    """A command to a device (``cmd``, downlink).

    Attributes:
        device: Device id, from the topic.
        id: Id of the command, echoed in what the device does about it.
        t: Back-end time of the command, ms since the epoch.
        cmd: What to do.
        threshold: ``set_threshold`` only (required there): the new anomaly
            threshold, ``(0, 1e12]``; ``None`` for the other commands.
    """

    KIND: ClassVar[Kind] = Kind.CMD

    device: str
    id: str
    t: int
    cmd: CommandName
    threshold: float | None = None

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        command_id = text(obj, "id", "", 1, ID_MAX_LEN, ID_RE)
        t = timestamp(obj, "t", "", limits.min_time_ms, now_ms + limits.max_future_ms)
        cmd = choice(obj, "cmd", "", CommandName)
        threshold = None
        if cmd is CommandName.SET_THRESHOLD:
            threshold = number(obj, "threshold", "", 0.0, _SCORE_MAX, above=True)
        return cls(device, command_id, t, cmd, threshold)

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload.

        Raises:
            ValueError: The threshold is NaN or infinite.
        """
        obj: dict[str, Any] = {"id": self.id, "t": self.t, "cmd": self.cmd.value}
        if self.threshold is not None:
            obj["threshold"] = self.threshold
        return _dumps(obj)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The outcome of a command (``cmd/reply``, uplink).

    A device answers every command whose ``id`` it could read, once it has carried
    the command out or given up on it; a command without a readable id cannot be
    answered and is dropped. The reply to a command that QoS 1 delivered twice may
    come twice: a receiver matches replies to commands by device and ``id``.

    Attributes:
        device: Device id, from the topic.
        id: Id of the command answered.
        t: Device time of the reply, ms since the epoch.
        outcome: ``done``, ``refused`` or ``failed``.
        cmd: Name of the command, when the device could read it; ``None`` for a
            command refused because its ``cmd`` was missing or unknown.
        detail: Optional free text, at most 256 characters: why a command was
            refused or failed.
        threshold: Optional anomaly threshold in force after the command,
            ``(0, 1e12]``; sent by ``set_threshold`` and ``calibrate`` when done.
    """

    KIND: ClassVar[Kind] = Kind.CMD_REPLY

    device: str
    id: str
    t: int
    outcome: CommandOutcome
    cmd: CommandName | None = None
    detail: str | None = None
    threshold: float | None = None

    @classmethod
    def decode(cls, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Self:
        """Check and decode a payload (arguments as for :meth:`Telemetry.decode`).

        Raises:
            ProtocolError: The payload breaks the contract; ``reason`` says how.
        """
        obj = load_object(payload, limits.max_payload_bytes)
        command_id = text(obj, "id", "", 1, ID_MAX_LEN, ID_RE)
        t = timestamp(obj, "t", "", limits.min_time_ms, now_ms + limits.max_future_ms)
        cmd = choice(obj, "cmd", "", CommandName) if "cmd" in obj else None
        outcome = choice(obj, "outcome", "", CommandOutcome)
        detail = text(obj, "detail", "", 0, _MAX_DETAIL) if "detail" in obj else None
        threshold = None
        if "threshold" in obj:
            threshold = number(obj, "threshold", "", 0.0, _SCORE_MAX, above=True)
        return cls(device, command_id, t, outcome, cmd, detail, threshold)

    def encode(self) -> bytes:
        """Return the compact UTF-8 JSON payload, without the absent fields.

        Raises:
            ValueError: The threshold is NaN or infinite.
        """
        obj: dict[str, Any] = {"id": self.id, "t": self.t}
        if self.cmd is not None:
            obj["cmd"] = self.cmd.value
        obj["outcome"] = self.outcome.value
        if self.detail is not None:
            obj["detail"] = self.detail
        if self.threshold is not None:
            obj["threshold"] = self.threshold
        return _dumps(obj)


Message = (
    Telemetry
    | AnomalyEvent
    | Features
    | Status
    | OtaRequest
    | OtaJob
    | OtaChunk
    | RawWindow
    | Command
    | CommandReply
)
"""Any decoded message."""


class _Decoder(Protocol):
    def __call__(self, payload: bytes, device: str, *, now_ms: int, limits: Limits) -> Message: ...


_DECODERS: dict[Kind, _Decoder] = {
    Kind.TELEMETRY: Telemetry.decode,
    Kind.EVENT: AnomalyEvent.decode,
    Kind.FEATURES: Features.decode,
    Kind.STATUS: Status.decode,
    Kind.OTA_REQ: OtaRequest.decode,
    Kind.OTA_JOB: OtaJob.decode,
    Kind.OTA_CHUNK: OtaChunk.decode,
    Kind.CMD: Command.decode,
    Kind.CMD_REPLY: CommandReply.decode,
    Kind.RAW: RawWindow.decode,
}


def decode_message(
    kind: Kind, device: str, payload: bytes, *, now_ms: int, limits: Limits
) -> Message:
    """Decode a payload received on a ``kind`` topic.

    Args:
        kind: The kind, from :func:`~vibewatch.protocol.parse_topic`.
        device: Device id, from the topic.
        payload: The raw MQTT payload.
        now_ms: Receive time, ms since the epoch, for the time checks.
        limits: Size and time bounds.

    Returns:
        The value type for ``kind``.

    Raises:
        ProtocolError: The payload breaks the contract; ``reason`` says how.
    """
    return _DECODERS[kind](payload, device, now_ms=now_ms, limits=limits)
