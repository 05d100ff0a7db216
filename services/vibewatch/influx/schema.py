"""The InfluxDB schema: every measurement, tag and field name, and how points are keyed.

One module names what ingest writes and what training, dashboards and alert rules read;
``docs/influxdb-schema.md`` describes it for people. Nothing here does I/O.

Keying: a point is identified by measurement, tag set and timestamp. Timestamps are
written in nanoseconds: the device time ``t`` (milliseconds) times 10^6, plus the
reading's sequence number modulo 10^6 in the sub-millisecond part (:func:`point_time_ns`).
A redelivered message therefore rewrites its own points, while two readings of one
device with the same ``t`` and different sequence numbers (a clock that stepped back,
two windows in one millisecond) stay two points. Only two readings with the same ``t``
whose sequence numbers differ by a multiple of 10^6 would share a timestamp.
"""

from __future__ import annotations

import re
from typing import Final

NS_PER_MS: Final = 1_000_000
"""Nanoseconds per millisecond: the room below each device millisecond for the sequence."""

# ------------------------------------------------------------------- measurements
READING: Final = "reading"
"""One point per telemetry reading (per analysis window)."""
ANOMALY: Final = "anomaly"
"""One point per anomaly event (start or end)."""
FEATURES: Final = "features"
"""One point per sampled feature vector (the retraining data)."""
DEVICE_STATUS: Final = "device_status"
"""One point per status message (birth message or last will)."""
INGEST_STATS: Final = "vibewatch_ingest"
"""The ingestion service's own counters, one point per snapshot."""
ROLLOUT: Final = "ota_rollout"
"""One point per OTA rollout: its phase and its targets per state (the controller's)."""
ROLLOUT_WAVE: Final = "ota_wave"
"""One point per wave of an OTA rollout: its targets per state."""
ROLLOUT_FAILURE: Final = "ota_failure"
"""One point per target that failed in an OTA rollout, with the reason."""
ALERT: Final = "alert"
"""One point per change of an alert: it fired or it resolved (the alerts service's)."""
ALERTS_FIRING: Final = "alerts_firing"
"""One point per alert rule and snapshot: how many of its alerts fire."""

# ----------------------------------------------------------------------------- tags
DEVICE: Final = "device"
"""Tag of every device point: the device id from the topic."""
SITE: Final = "site"
"""Tag of every point when ``ingest.site`` is set."""
KIND: Final = "kind"
"""Tag of ``anomaly``: ``start`` or ``end``."""
MODEL_ID: Final = "model_id"
"""Tag of ``anomaly``: id of the model that scored the window."""
SPEC: Final = "spec"
"""Tag of ``features``: the feature-spec id that defines the layout of ``f0``…"""
INSTANCE: Final = "instance"
"""Tag of ``vibewatch_ingest`` and of ``alert`` (an ingestion alert's): an ingest process."""
ROLLOUT_ID: Final = "rollout"
"""Tag of ``ota_rollout``, ``ota_wave``, ``ota_failure`` and ``alert`` (a rollout alert's):
the rollout's id."""
WAVE: Final = "wave"
"""Tag of ``ota_wave`` and ``ota_failure`` (0 for the canaries); integer field of
``ota_rollout``: the wave that started last (-1 before the first)."""
OUTCOME: Final = "outcome"
"""Tag of ``ota_failure``: the failed target's state (``failed``, ``rolled_back``,
``timed_out``)."""
REASON: Final = "reason"
"""Tag of ``ota_failure``: why the target failed, in a few words (see the schema doc)."""
ALERTNAME: Final = "alertname"
"""Tag of ``alert`` and ``alerts_firing``: the alert rule's name."""
SEVERITY: Final = "severity"
"""Tag of ``alert`` and ``alerts_firing``, when the rule has that label."""
ALERT_TAGS: Final = (ALERTNAME, SEVERITY, DEVICE, ROLLOUT_ID, INSTANCE)
"""The labels of an alert written as tags of ``alert``, each when the alert has it."""

# --------------------------------------------------------------------------- fields
SEQ: Final = "seq"
"""Integer field of ``reading``, ``anomaly`` and ``features``: the window's sequence number."""
SCORE: Final = "score"
"""Float field of ``reading`` and ``anomaly``: the anomaly score."""
RMS: Final = "rms"
"""Float field of ``reading``: the window's root mean square, in g."""
PEAK: Final = "peak"
"""Float field of ``reading``: the window's largest absolute sample, in g."""
CREST: Final = "crest"
"""Float field of ``reading``: peak over RMS."""
KURTOSIS: Final = "kurtosis"
"""Float field of ``reading``: the window's kurtosis (3 for Gaussian noise)."""
READING_FIELDS: Final = (SCORE, RMS, PEAK, CREST, KURTOSIS)
"""Float fields of ``reading``, in the order of the telemetry message (then ``seq``)."""
THRESHOLD: Final = "threshold"
"""Float field of ``anomaly``: the threshold in force."""
MODEL_VERSION: Final = "model_version"
"""Integer field of ``anomaly`` and ``device_status``."""
STATE: Final = "state"
"""String field of ``device_status``: ``online`` or ``offline``."""
ONLINE: Final = "online"
"""Boolean field of ``device_status``."""
STATUS_FIELDS: Final = (
    "firmware",
    "model_id",
    "model_version",
    "model_sha256",
    "capabilities",
    "slot_a",
    "slot_b",
    "uptime_s",
)
"""Optional fields of ``device_status``, written when the message carries them."""


# ---------------------------------- fields of ota_rollout, ota_wave, ota_failure
PHASE: Final = "phase"
"""String field of ``ota_rollout``: ``running``, ``paused``, ``completed`` or ``aborted``."""
IN_PROGRESS: Final = "in_progress"
"""Integer field of ``ota_rollout``: 1 while the rollout runs or is paused, else 0 (a sum
over rollouts is the number in progress)."""
WAVES: Final = "waves"
"""Integer field of ``ota_rollout``: how many waves the rollout has."""
DEVICES: Final = "devices"
"""Integer field of ``ota_rollout`` and ``ota_wave``: the targets; ``devices_<state>``
counts those in one state."""
DETAIL: Final = "detail"
"""String field of ``ota_failure``: the target's detail, as ``vibewatch ota status``
shows it."""


def devices_field(state: str) -> str:
    """The field of ``ota_rollout`` and ``ota_wave`` that counts the targets in ``state``
    (a :class:`vibewatch.ota.rollout.DeviceState` value)."""
    return f"{DEVICES}_{state}"


# ----------------------------------------------- fields of alert, alerts_firing
FIRING: Final = "firing"
"""Boolean field of ``alert``: true when it fired, false when it resolved."""
SUMMARY: Final = "summary"
"""String field of ``alert``: its ``summary`` annotation (empty when it has none)."""
ALERTS: Final = "alerts"
"""Integer field of ``alerts_firing``: the rule's alerts firing (silenced ones too)."""


# ------------------------------------------------- fields of vibewatch_ingest
MESSAGES_IN: Final = "messages_in"
"""Counter: MQTT messages received (redeliveries included)."""
MESSAGES_OK: Final = "messages_ok"
"""Counter: messages decoded and turned into points."""
POINTS_WRITTEN: Final = "points_written"
"""Counter: points InfluxDB accepted (directly or from the spool)."""
POINTS_SPOOLED: Final = "points_spooled"
"""Counter: points appended to the on-disk spool."""
REJECTED: Final = "rejected"
"""Counter: messages rejected, all reasons; ``rejected_<reason>`` counts one reason."""
SPOOL_RECORDS: Final = "spool_records"
"""Gauge: batches waiting in the spool."""
BUFFER_POINTS: Final = "buffer_points"
"""Gauge: points held in memory."""
BATCH_LATENCY_MS_AVG: Final = "batch_latency_ms_avg"
"""Gauge: mean time from a batch's first line to durable over the last interval, in ms."""
BATCH_LATENCY_MS_MAX: Final = "batch_latency_ms_max"
"""Gauge: the longest such time over the last interval, in ms."""


def rejected_field(reason: str) -> str:
    """The counter of ``vibewatch_ingest`` of rejections with one reason."""
    return f"{REJECTED}_{reason}"


FEATURE_FIELD_RE: Final = re.compile(r"f(0|[1-9][0-9]*)", re.ASCII)
"""Matches a field of ``features`` that holds a vector element; group 1 is its index."""


def feature_field(index: int) -> str:
    """The field of ``features`` that holds element ``index`` of the vector: ``f{index}``."""
    return f"f{index}"


def point_time_ns(t_ms: int, seq: int) -> int:
    """The timestamp of the point of a reading, event or vector: device time and sequence.

    Args:
        t_ms: Device time, milliseconds since the epoch.
        seq: Sequence number of the window, non-negative.
    """
    return t_ms * NS_PER_MS + seq % NS_PER_MS


def time_ns(t_ms: int) -> int:
    """The timestamp of a point that has no sequence number (status, statistics)."""
    return t_ms * NS_PER_MS
