"""Point building: wire messages to InfluxDB points (pure).

The names come from :mod:`vibewatch.influx.schema` and the schema is documented in
``docs/influxdb-schema.md``; this module is the single implementation of how a message
becomes points. Every point carries the ``device`` tag and, when the service is
configured with a site name, a ``site`` tag. Points are keyed by the device's time and
the window's sequence number (:func:`~vibewatch.influx.schema.point_time_ns`), so a
redelivered message rewrites the same points and two readings never collapse into one.
"""

from __future__ import annotations

import orjson

from vibewatch.influx import schema
from vibewatch.influx.lineprotocol import FieldValue, Point, encode_point, series_key
from vibewatch.protocol import AnomalyEvent, Features, Message, Status, Telemetry

# Sub-millisecond digits of a point's timestamp: the sequence number modulo 10^6.
_SEQ_DIGITS = len(str(schema.NS_PER_MS)) - 1


def _tags(device: str, site: str, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    tags = [(schema.DEVICE, device), *extra]
    if site:
        tags.append((schema.SITE, site))
    return tuple(sorted(tags))


def lines_for(message: Message, *, site: str, received_ms: int) -> list[str]:
    """Return the encoded line-protocol lines one ingested message becomes.

    Args:
        message: A decoded up-link message (telemetry, event, features or status).
        site: Value of the ``site`` tag; empty for none.
        received_ms: Receive time, used only for a status without a device time
            (the last will, which the broker publishes later than it was made).

    Raises:
        TypeError: ``message`` is not one the ingestion service stores.
        PointError: A value cannot be written exactly.
    """
    if isinstance(message, Telemetry):
        # The hot path: most traffic is readings. orjson formats all their numbers
        # in one call, with the same shortest round-trip text as encode_point;
        # the protocol guarantees the floats are finite and seq fits in 63 bits. The
        # timestamp is point_time_ns spelled in text: t, then the last six digits of seq.
        key = series_key(schema.READING, _tags(message.device, site))
        rows = orjson.dumps(message.readings, default=tuple)[2:-2].decode().split("],[")
        return [
            f"{key} score={score},rms={rms},peak={peak},crest={crest},kurtosis={kurtosis},"
            f"seq={seq}i {t}{seq[-_SEQ_DIGITS:].zfill(_SEQ_DIGITS)}"
            for seq, t, score, rms, peak, crest, kurtosis in (row.split(",") for row in rows)
        ]
    return [encode_point(p) for p in _points(message, site=site, received_ms=received_ms)]


def _points(message: Message, *, site: str, received_ms: int) -> list[Point]:
    if isinstance(message, AnomalyEvent):
        tags = _tags(
            message.device,
            site,
            (schema.KIND, message.kind.value),
            (schema.MODEL_ID, message.model_id),
        )
        fields: tuple[tuple[str, FieldValue], ...] = (
            (schema.SCORE, float(message.score)),
            (schema.THRESHOLD, float(message.threshold)),
            (schema.MODEL_VERSION, message.model_version),
            (schema.SEQ, message.seq),
        )
        return [Point(schema.ANOMALY, tags, fields, schema.point_time_ns(message.t, message.seq))]
    if isinstance(message, Features):
        tags = _tags(message.device, site, (schema.SPEC, message.spec))
        return [
            Point(
                schema.FEATURES,
                tags,
                (
                    (schema.SEQ, v.seq),
                    *((schema.feature_field(i), float(x)) for i, x in enumerate(v.x)),
                ),
                schema.point_time_ns(v.t, v.seq),
            )
            for v in message.vectors
        ]
    if isinstance(message, Status):
        return [
            Point(
                schema.DEVICE_STATUS,
                _tags(message.device, site),
                _status_fields(message),
                schema.time_ns(message.t or received_ms),
            )
        ]
    raise TypeError(f"{type(message).__name__} messages are not stored by ingest")


def _status_fields(status: Status) -> tuple[tuple[str, FieldValue], ...]:
    values: tuple[FieldValue | None, ...] = (
        status.firmware,
        status.model_id,
        status.model_version,
        status.model_sha256,
        ",".join(status.capabilities) if status.capabilities else None,
        status.slots.a.value if status.slots else None,
        status.slots.b.value if status.slots else None,
        status.uptime_s,
    )
    optional = zip(schema.STATUS_FIELDS, values, strict=True)
    fields: list[tuple[str, FieldValue]] = [
        (schema.STATE, status.state.value),
        (schema.ONLINE, status.state.value == "online"),
    ]
    fields.extend((key, value) for key, value in optional if value is not None)
    return tuple(fields)
