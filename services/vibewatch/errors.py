"""The exception tree of vibewatch.

Every error raised on purpose by the package derives from :class:`VibewatchError`;
foreign errors (socket, HTTP, paho) are mapped to these at the adapter boundary
and chained with ``from``::

    VibewatchError
    ├── ConfigError          invalid configuration key or value
    ├── ProtocolError        a message or topic that breaks the wire contract
    │                        (``reason`` is a short stable code used in counters)
    ├── MqttError            the broker refused a connection or a subscription
    │                        (``reason_code``: the MQTT 5 reason code)
    ├── PointError           a value that cannot be written as line protocol
    ├── WriteError           InfluxDB refused or could not take a write
    │   ├── RetryableWriteError   connection errors and 5xx: try again later
    │   └── RejectedWriteError    4xx: the data itself is refused
    ├── SpoolError           the on-disk spool is unusable (corrupt beyond repair, full)
    │   └── SpoolFullError        (vibewatch.ingest.spool) appending would pass the size limit
    ├── LocalServerError     (vibewatch.testing.servers) a local mosquitto/influxd failed to run
    │   └── ExecutableNotFoundError   its binary is not installed
    ├── EdgeError            the firmware core refused something (a model blob, a window,
    │   │                    an OTA step); ``reason`` is the C status name
    │   └── ConversionError       a .tflite model that cannot become a .vwm blob
    ├── DataError            a recording, dataset or training set that cannot be used
    │                        (unreadable file, unknown channel, too few healthy windows)
    ├── QueryError           (vibewatch.influx.query) an InfluxQL query failed
    ├── StateError           (vibewatch.state) the state database cannot be opened or has
    │                        a newer schema
    ├── KeyFileError         a signing key that is missing, unreadable or not Ed25519
    ├── PackageError         a model package that fails verification; ``problems`` lists
    │                        every file, hash or signature that does not match
    └── RegistryError        the model registry refuses an operation (unknown model,
                             duplicate version, a package that fails verification)
"""

from __future__ import annotations


class VibewatchError(Exception):
    """Base class of every error vibewatch raises on purpose."""


class ConfigError(VibewatchError):
    """A configuration key has an invalid value; the message names key and value."""


class ProtocolError(VibewatchError):
    """A message or topic breaks the wire contract.

    Attributes:
        reason: Short stable code (``bad_json``, ``missing_field``, ...) used as the
            counter name and in the dead-letter log.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class MqttError(VibewatchError):
    """The broker refused something: a connection (CONNACK) or a subscription (SUBACK).

    Attributes:
        reason_code: The MQTT 5 reason code (``0x87`` Not authorized, ...).
        reason: Its name, as the specification gives it.
    """

    def __init__(self, message: str, reason_code: int, reason: str) -> None:
        super().__init__(f"{message}: {reason} (reason code {reason_code:#04x})")
        self.reason_code = reason_code
        self.reason = reason


class PointError(VibewatchError):
    """A measurement, tag or field cannot be represented exactly in line protocol."""


class WriteError(VibewatchError):
    """A write to InfluxDB failed.

    Attributes:
        status: HTTP status code, or ``None`` for connection-level failures.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableWriteError(WriteError):
    """A transient failure (connection refused, timeout, 5xx): retry later."""


class RejectedWriteError(WriteError):
    """InfluxDB refused the data itself (4xx): retrying the same batch will not help."""


class SpoolError(VibewatchError):
    """The on-disk spool cannot be used."""


class EdgeError(VibewatchError):
    """The firmware core (``vibewatch.edge``) returned an error status.

    Attributes:
        reason: The C status name (``crc``, ``truncated``, ``golden``, ``signature`` ...),
            one per ``vw_status_t`` value, stable for counters and tests.
        detail: What was being done, with the offending value.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConversionError(EdgeError):
    """A ``.tflite`` model cannot be converted to ``.vwm``; the message names what."""

    def __init__(self, detail: str) -> None:
        super().__init__("unsupported", detail)


class DataError(VibewatchError):
    """A recording, dataset or training set cannot be used; the message says why."""


class KeyFileError(VibewatchError):
    """A signing key is missing, unreadable, not Ed25519 or readable by others."""


class PackageError(VibewatchError):
    """A model package fails verification.

    Attributes:
        problems: One line per file, hash or signature that does not match.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"model package {path} fails verification: " + "; ".join(problems))
        self.path = path
        self.problems = problems


class RegistryError(VibewatchError):
    """The model registry refuses an operation; the message names model and version."""
