"""Point building: wire messages to InfluxDB points (pure).

The InfluxDB schema is documented in ``docs/influxdb-schema.md``; this module is
its single implementation. Every point carries the ``device`` tag and, when the
service is configured with a site name, a ``site`` tag. Points take the
device's timestamp, so a redelivered message rewrites the same points.
"""

from __future__ import annotations

import orjson

from vibewatch.influx.lineprotocol import FieldValue, Point, encode_point, series_key
from vibewatch.protocol import AnomalyEvent, Features, Message, Status, Telemetry

READING = "reading"
ANOMALY = "anomaly"
FEATURES = "features"
DEVICE_STATUS = "device_status"


def _tags(device: str, site: str, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    tags = [("device", device), *extra]
    if site:
        tags.append(("site", site))
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
        # the protocol guarantees the floats are finite and seq fits in 63 bits.
        key = series_key(READING, _tags(message.device, site))
        rows = orjson.dumps(message.readings, default=tuple)[2:-2].decode().split("],[")
        return [
            f"{key} score={score},rms={rms},peak={peak},crest={crest},kurtosis={kurtosis},"
            f"seq={seq}i {t}"
            for seq, t, score, rms, peak, crest, kurtosis in (row.split(",") for row in rows)
        ]
    return [encode_point(p) for p in _points(message, site=site, received_ms=received_ms)]


def _points(message: Message, *, site: str, received_ms: int) -> list[Point]:
    if isinstance(message, AnomalyEvent):
        tags = _tags(
            message.device, site, ("kind", message.kind.value), ("model_id", message.model_id)
        )
        fields: tuple[tuple[str, FieldValue], ...] = (
            ("score", float(message.score)),
            ("threshold", float(message.threshold)),
            ("model_version", message.model_version),
            ("seq", message.seq),
        )
        return [Point(ANOMALY, tags, fields, message.t)]
    if isinstance(message, Features):
        tags = _tags(message.device, site, ("spec", message.spec))
        return [
            Point(
                FEATURES,
                tags,
                (("seq", v.seq), *((f"f{i}", float(x)) for i, x in enumerate(v.x))),
                v.t,
            )
            for v in message.vectors
        ]
    if isinstance(message, Status):
        return [
            Point(
                DEVICE_STATUS,
                _tags(message.device, site),
                _status_fields(message),
                message.t or received_ms,
            )
        ]
    raise TypeError(f"{type(message).__name__} messages are not stored by ingest")


def _status_fields(status: Status) -> tuple[tuple[str, FieldValue], ...]:
    optional: list[tuple[str, FieldValue | None]] = [
        ("firmware", status.firmware),
        ("model_id", status.model_id),
        ("model_version", status.model_version),
        ("model_sha256", status.model_sha256),
        ("capabilities", ",".join(status.capabilities) if status.capabilities else None),
        ("slot_a", status.slots.a.value if status.slots else None),
        ("slot_b", status.slots.b.value if status.slots else None),
        ("uptime_s", status.uptime_s),
    ]
    fields: list[tuple[str, FieldValue]] = [
        ("state", status.state.value),
        ("online", status.state.value == "online"),
    ]
    fields.extend((key, value) for key, value in optional if value is not None)
    return tuple(fields)
