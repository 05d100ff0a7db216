"""MQTT topics of the wire contract.

Every topic is ``{prefix}{device}/{suffix}``: the prefix (``vw/v1/`` by default,
configurable) names the contract version, the device id is one topic level
matching ``[A-Za-z0-9_-]{1,64}`` (ASCII only), and the suffix names the kind of
message. Uplink kinds are published by devices, downlink kinds by the back end.
All messages travel at QoS 1; ``status`` and ``ota/job`` are retained.

A topic is checked in two steps: first its structure (prefix, one device level,
a known suffix; otherwise ``bad_topic``), then the device id (``bad_device_id``).
A wildcard, an empty level or a NUL in the id position therefore fails as
``bad_device_id``, and anything else that does not fit the shape as ``bad_topic``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

from vibewatch.errors import ConfigError, ProtocolError
from vibewatch.protocol._validate import show

DEFAULT_PREFIX = "vw/v1/"
DEVICE_ID_CHARS = "A-Za-z0-9_-"
"""The characters of a device id, as the body of a regular-expression character class."""
DEVICE_ID_MAX_LEN = 64
"""Longest device id."""
DEVICE_ID_PATTERN = rf"[{DEVICE_ID_CHARS}]{{1,{DEVICE_ID_MAX_LEN}}}"
"""Device ids: the one statement of the rule (a device id is also an InfluxDB tag value,
and device selectors add ``*`` and ``?`` to these characters)."""
DEVICE_SELECTOR_RE = re.compile(rf"[*?{DEVICE_ID_CHARS}]{{1,{DEVICE_ID_MAX_LEN}}}", re.ASCII)
"""A device selector: a device id, or a glob in which ``*`` stands for any run of
characters and ``?`` for one (``pump-*``); device ids hold nothing a glob would treat
otherwise."""

# The explicit class already excludes non-ASCII letters and digits; re.ASCII
# keeps it that way should the class ever grow a shorthand such as \w.
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN, re.ASCII)
# Characters that would turn a prefix into a filter or break a topic string.
_FORBIDDEN_IN_PREFIX = ("+", "#", "\x00")


class Kind(Enum):
    """The ten kinds of message; each value is the topic suffix."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    FEATURES = "features"
    STATUS = "status"
    OTA_REQ = "ota/req"
    OTA_JOB = "ota/job"
    OTA_CHUNK = "ota/chunk"
    CMD = "cmd"
    CMD_REPLY = "cmd/reply"
    RAW = "raw"

    @property
    def suffix(self) -> str:
        """The topic suffix after ``{prefix}{device}/``."""
        return self.value

    @property
    def uplink(self) -> bool:
        """``True`` for messages published by devices, ``False`` for the back end's."""
        return self in _UPLINK

    @property
    def retained(self) -> bool:
        """Whether the message is published with the MQTT retain flag."""
        return self in _RETAINED

    @property
    def qos(self) -> int:
        """The MQTT QoS level: 1 (at least once) for every kind."""
        return 1


_UPLINK = frozenset(
    {Kind.TELEMETRY, Kind.EVENT, Kind.FEATURES, Kind.STATUS, Kind.OTA_REQ, Kind.CMD_REPLY, Kind.RAW}
)
_RETAINED = frozenset({Kind.STATUS, Kind.OTA_JOB})
_BY_SUFFIX = {kind.value: kind for kind in Kind}


def prefix_problem(prefix: str) -> str | None:
    """Say what keeps ``prefix`` from starting every topic of the contract, or return None.

    The rule, stated here only (the ``mqtt.topic_prefix`` setting is checked with it
    too): the prefix is empty or ends with ``/``; it does not start with ``$``, as
    topics starting with ``$`` belong to the broker (``$SYS/``, ``$share/``); it holds
    no wildcard (``+``, ``#``) and no NUL.

    Args:
        prefix: The prefix to check.

    Returns:
        ``None`` for a usable prefix, else what is wrong, phrased to follow the value
        (``must end with "/"``).
    """
    if prefix and not prefix.endswith("/"):
        return 'must end with "/"'
    if prefix.startswith("$"):
        return 'must not start with "$" (topics starting with "$" belong to the broker)'
    if any(bad in prefix for bad in _FORBIDDEN_IN_PREFIX):
        return 'must not contain the wildcards "+" and "#" or NUL'
    return None


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start every topic of the contract (:func:`prefix_problem`).

    Raises:
        ConfigError: The prefix is unusable; the message says why.
    """
    problem = prefix_problem(prefix)
    if problem is not None:
        raise ConfigError(f"topic prefix {show(prefix)} {problem}")
    return prefix


def check_device_id(device: str) -> str:
    """Return ``device`` if it is a valid device id.

    Raises:
        ProtocolError: ``bad_device_id``, with the offending value in the detail.
    """
    if _DEVICE_ID.fullmatch(device) is None:
        raise ProtocolError(
            "bad_device_id", f"device id {show(device)} does not match {DEVICE_ID_PATTERN}"
        )
    return device


def parse_topic(topic: str | None, prefix: str) -> tuple[str, Kind]:
    """Split a received topic into its device id and message kind.

    Args:
        topic: The topic of a received message; None when it was not valid UTF-8 (as
            the MQTT adapter hands it over).
        prefix: The configured prefix (see :func:`check_prefix`).

    Returns:
        ``(device, kind)``.

    Raises:
        ProtocolError: ``bad_topic`` when the topic is not UTF-8, or not ``prefix`` + one
            level + a known suffix; ``bad_device_id`` when that level is not a valid id.
    """
    if topic is None:
        raise ProtocolError("bad_topic", "topic is not valid UTF-8")
    if not topic.startswith(prefix):
        raise ProtocolError("bad_topic", f"topic {show(topic)} does not start with {prefix!r}")
    # Device ids hold no '/', so the first '/' after the prefix ends the id level.
    device, _, suffix = topic[len(prefix) :].partition("/")
    kind = _BY_SUFFIX.get(suffix)
    if kind is None:
        raise ProtocolError("bad_topic", f"topic {show(topic)} has no known suffix")
    return check_device_id(device), kind


def topic_for(prefix: str, device: str, kind: Kind) -> str:
    """Return the topic a ``kind`` message for ``device`` is published on.

    Raises:
        ConfigError: The prefix is unusable.
        ProtocolError: ``bad_device_id``.
    """
    return f"{check_prefix(prefix)}{check_device_id(device)}/{kind.value}"


def subscription_filters(prefix: str, kinds: Iterable[Kind]) -> list[str]:
    """Return one subscription filter ``{prefix}+/{suffix}`` per kind, in order.

    Raises:
        ConfigError: The prefix is unusable.
    """
    check_prefix(prefix)
    return [f"{prefix}+/{kind.value}" for kind in kinds]
