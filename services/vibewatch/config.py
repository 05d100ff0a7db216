"""Configuration: one TOML file, environment overrides, validation at load.

The schema is declared once, as the frozen dataclasses below: each field's type
annotation says how a value is parsed, its default is the default, and its
metadata (built by ``_key``) holds the bounds, the extra checks and the
documentation. Loading, environment variable names, validation,
:meth:`Config.redacted` and the table in ``docs/configuration.md``
(:func:`config_reference_markdown`) are all derived from it, so adding a key is
one field declaration and nothing else.

Precedence, lowest first: the defaults, the TOML file, the environment. Every
key ``[section] key`` is overridden by ``VIBEWATCH_<SECTION>_<KEY>`` and every
top-level key by ``VIBEWATCH_<KEY>`` (upper-cased). Unknown keys, sections and
``VIBEWATCH_*`` variables are errors, so a typo cannot silently leave a default
in place. All problems are collected and raised together in one
:class:`~vibewatch.errors.ConfigError`, each naming the key, the value and
where the value came from. Only :func:`load_config` reads the environment.

Passwords and tokens are :class:`Secret` values: they print as ``********``
and are never part of an error message or of :meth:`Config.redacted`. Each may also
come from a file named by ``VIBEWATCH_<SECTION>_<KEY>_FILE`` (a container secret, a
systemd credential; its text without the final line break), so it need not sit in the
environment or the TOML file. URLs are
:data:`HttpUrl` values: wherever one is shown (:meth:`Config.redacted`, ``repr``,
error messages) its credentials are masked by :func:`vibewatch.redact.mask_url`,
although a URL that holds any is refused in the first place.
"""

from __future__ import annotations

import dataclasses
import difflib
import hmac
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NewType
from urllib.parse import urlsplit

from vibewatch.alerts.dispatch import parse_matcher
from vibewatch.alerts.rules import DEFAULT_RULES, Rule, parse_rules
from vibewatch.alerts.signing import SignatureError, secret_key
from vibewatch.errors import ConfigError, DataError, PointError
from vibewatch.influx.lineprotocol import check_tag_value
from vibewatch.protocol import DEVICE_SELECTOR_RE, prefix_problem
from vibewatch.redact import MASK, mask_url

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "AlertRules",
    "AlertsConfig",
    "Config",
    "DeviceGroups",
    "GrafanaConfig",
    "HttpUrl",
    "InfluxApi",
    "InfluxConfig",
    "IngestConfig",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "MqttConfig",
    "OtaConfig",
    "Secret",
    "TrainConfig",
    "WebhookReceiver",
    "WebhookReceivers",
    "config_reference_markdown",
    "http_url_problem",
    "load_config",
    "read_secret_file",
    "toml_type",
]

ENV_PREFIX: Final = "VIBEWATCH_"
"""Every environment variable the configuration reads starts with this."""

CONFIG_ENV: Final = "VIBEWATCH_CONFIG"
"""Path of the configuration file when no path is passed to :func:`load_config`."""

_MASK: Final = MASK
_KIB: Final = 1 << 10
_MIB: Final = 1 << 20
_GIB: Final = 1 << 30


@typing.final
class Secret:
    """A string that must never be shown: a password or a token.

    ``str()`` gives ``********`` (empty when unset) and ``repr()`` the same in
    quotes, so a Secret can sit in a dataclass repr, an f-string or a log record
    without leaking. :meth:`reveal` is the only way to the value, for the adapter
    that sends it over the wire.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str = "") -> None:
        """Wrap ``value``.

        Args:
            value: The secret text; empty means "not set".

        Raises:
            TypeError: ``value`` is not a str.
        """
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the secret text; only for the code that hands it to a server."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"'{_MASK}'" if self._value else "''"

    def __str__(self) -> str:
        return _MASK if self._value else ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so comparing a guess against a token says nothing of
        # how much of the guess was right.
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # copy.deepcopy (used by dataclasses.asdict) needs this: __setattr__ is blocked.
        return (Secret, (self._value,))


HttpUrl = NewType("HttpUrl", str)
"""An ``http://`` or ``https://`` URL without credentials, query or fragment.

The type of every URL-valued key: it is what makes a key checked by the URL rule and
shown masked (:func:`vibewatch.redact.mask_url`) in :meth:`Config.redacted`, ``repr``
and error messages, so a new URL key needs nothing but this annotation.
"""

DeviceGroups = NewType("DeviceGroups", tuple[tuple[str, tuple[str, ...]], ...])
"""Named groups of devices: ``(name, members)`` pairs, each member a device id or a glob
(:data:`vibewatch.protocol.DEVICE_SELECTOR_RE`)."""


@dataclass(frozen=True, slots=True)
class WebhookReceiver:
    """One webhook receiver of ``[alerts.receivers.NAME]``.

    Attributes:
        name: Its name (the table's).
        url: Where notifications are POSTed (``http://`` or ``https://``).
        secrets: Standard Webhooks secrets (``whsec_...``) each notification is signed
            with; more than one during a rotation.
        timeout: Seconds an attempt may take.
        concurrency: Notifications in flight to it at once.
        matchers: Label matchers (``severity="critical"``) an alert must all match to go
            to it; none: every alert.
        send_resolved: Whether it is told when alerts resolve.
    """

    name: str
    url: str
    secrets: tuple[Secret, ...]
    timeout: float = 10.0
    concurrency: int = 2
    matchers: tuple[str, ...] = ()
    send_resolved: bool = True


WebhookReceivers = NewType("WebhookReceivers", tuple[WebhookReceiver, ...])
"""The receivers of ``[alerts.receivers]``, in the order of the file."""

AlertRules = NewType("AlertRules", tuple[Rule, ...])
"""The alert rules: :data:`vibewatch.alerts.rules.DEFAULT_RULES` changed and added to by
the tables of ``[alerts.rules]``."""

InfluxApi = Literal["v1", "v2"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


# --- the declaration helpers ------------------------------------------------

_SPEC: Final = "vibewatch.config"
_Check = Callable[[Any], str | None]
"""A per-key check: returns what is wrong with a (well-typed) value, or None."""


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a field's annotation cannot say: documentation and constraints."""

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    ge_key: str | None = None  # another key of the same section
    check: _Check | None = None
    required_when: tuple[str, str] | None = None  # (key of the same section, value)
    shown_default: str | None = None  # for the docs, when the literal would mislead


def _key(doc: str, **constraints: Any) -> dict[str, _Spec]:
    """Declare one key's documentation and constraints, as dataclass field metadata.

    Args:
        doc: One or two sentences for the reference table.
        **constraints: Fields of :class:`_Spec` (``ge``, ``le``, ``check``, ...).

    Returns:
        The ``metadata`` argument of :func:`dataclasses.field`.
    """
    return {_SPEC: _Spec(doc, **constraints)}


# --- per-key checks ---------------------------------------------------------

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _non_empty(value: str) -> str | None:
    return "must not be empty" if value == "" else None


def _name(value: str) -> str | None:
    if _NAME_RE.fullmatch(value) is None:
        return "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"
    return None


def _name_or_empty(value: str) -> str | None:
    return None if value == "" else _name(value)


def _label_names(value: str) -> str | None:
    names = [name.strip() for name in value.split(",")]
    if names == ["..."]:
        return None
    bad = [n for n in names if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) is None]
    return f"must be label names, comma separated, or ..., not {bad[0]!r}" if bad else None


def http_url_problem(value: str) -> str | None:
    """What keeps ``value`` from being an :data:`HttpUrl`, or None.

    The value is shown next to the message with its credentials masked, so the
    message itself never repeats a part of the URL that could be a secret (a
    malformed port may be the start of a password).
    """
    if value != value.strip():
        return "must not start or end with white space"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "must not contain white space or control characters"
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced "[" or "]" of an IPv6 address
        return "must be an http:// or https:// URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    if port and not (port.isascii() and port.isdigit()):
        return "must be an http:// or https:// URL: the port is not a number"
    if port and not 1 <= int(port) <= 65535:
        return f"port {int(port)} is out of range (1 to 65535)"
    if mask_url(value) != value:
        return (
            "must not hold credentials: give them in their own keys (influx.username and "
            "influx.password, or influx.token; grafana.token)"
        )
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


def _http_url_or_empty(value: str) -> str | None:
    return None if value == "" else http_url_problem(value)


def _basic_auth_user(value: str) -> str | None:
    # HTTP basic auth joins user and password with ":"; a ":" in the user breaks it.
    return 'must not contain ":"' if ":" in value else None


def _site_tag(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 256:
        return f"must be at most 256 characters, has {len(value)}"
    if "\n" in value or "\r" in value:
        return "must not contain line breaks"
    try:
        check_tag_value(value)
    except PointError:
        # What is left after the checks above: a backslash, which InfluxDB 1.x
        # stores doubled, so the tag could not be read back as written.
        return "cannot be written exactly as an InfluxDB tag value (no backslashes)"
    return None


def _existing_file_or_none(value: Path | None) -> str | None:
    if value is not None and not value.is_file():
        return "must be an existing file"
    return None


# --- the schema ---------------------------------------------------------------


class _MaskedRepr:
    """``repr`` of a configuration object: the dataclass one, with every URL masked."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(typing.cast(Any, self)):
            value = getattr(self, f.name)
            if (type(self), f.name) in _URL_FIELDS:
                value = mask_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


_DATA_HOME: Final = Path("<data_home>")
"""Stands for ``data_home`` at the start of a path; :class:`Config` resolves it."""


def _default_data_home() -> Path:
    return Path("~/.local/share/vibewatch").expanduser()


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class MqttConfig(_MaskedRepr):
    """``[mqtt]``: the connection to the broker and the subscription."""

    host: str = field(
        default="127.0.0.1",
        metadata=_key("Host name or IP address of the broker.", check=_non_empty),
    )
    port: int = field(
        default=1883,
        metadata=_key("TCP port of the broker (8883 is usual for TLS).", ge=1, le=65535),
    )
    username: str = field(
        default="", metadata=_key("User name at the broker; empty: connect without one.")
    )
    password: Secret = field(default=Secret(), metadata=_key("Password at the broker."))
    client_id: str = field(
        default="vibewatch-ingest",
        metadata=_key(
            "Client identifier: the identity of the persistent session, so no two "
            "instances may share it. 1 to 64 characters from `A-Z a-z 0-9 _ -`.",
            check=_name,
        ),
    )
    topic_prefix: str = field(
        default="vw/v1/",
        metadata=_key(
            "Prefix of every topic the service subscribes to: empty, or ends with `/`; "
            "no `+`, `#` or NUL; does not start with `$` (the wire contract's rule).",
            check=prefix_problem,
        ),
    )
    keepalive: int = field(
        default=30,
        metadata=_key(
            "Seconds between keep-alive pings; the broker drops a connection that stays "
            "silent for 1.5 times this.",
            ge=5,
            le=3600,
        ),
    )
    session_expiry: int = field(
        default=86400,
        metadata=_key(
            "Seconds the broker keeps the session and its queued messages while the "
            "service is away (MQTT 5 session expiry interval).",
            ge=0,
            le=4294967295,
        ),
    )
    receive_maximum: int = field(
        default=2000,
        metadata=_key(
            "MQTT 5 flow control: at most this many unacknowledged messages in flight "
            "from the broker to the service.",
            ge=1,
            le=65535,
        ),
    )
    group: str = field(
        default="",
        metadata=_key(
            "Shared subscription group: when set, the service subscribes through "
            "`$share/<group>/` so several instances split the messages. Empty: a plain "
            "subscription. 1 to 64 characters from `A-Z a-z 0-9 _ -`.",
            check=_name_or_empty,
        ),
    )
    tls_ca_file: Path | None = field(
        default=None,
        metadata=_key(
            "PEM file of the CA that signed the broker's certificate; when set, the "
            "connection uses TLS. Empty: plain TCP.",
            check=_existing_file_or_none,
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class InfluxConfig(_MaskedRepr):
    """``[influx]``: where and how points are written."""

    api: InfluxApi = field(
        default="v1",
        metadata=_key(
            "Write API: `v1` (`/write`; database, retention policy, basic auth) or `v2` "
            "(`/api/v2/write`; org, bucket, token)."
        ),
    )
    url: HttpUrl = field(
        default=HttpUrl("http://127.0.0.1:8086"),
        metadata=_key(
            "Base URL of InfluxDB, `http://` or `https://`, without credentials, query or fragment."
        ),
    )
    database: str = field(
        default="vibewatch",
        metadata=_key("v1: database to write to.", required_when=("api", "v1")),
    )
    retention_policy: str = field(
        default="", metadata=_key("v1: retention policy; empty: the database's default.")
    )
    username: str = field(
        default="",
        metadata=_key(
            "v1: user name for basic auth; empty: no authentication.", check=_basic_auth_user
        ),
    )
    password: Secret = field(default=Secret(), metadata=_key("v1: password for basic auth."))
    org: str = field(
        default="",
        metadata=_key("v2: organization name or ID.", required_when=("api", "v2")),
    )
    bucket: str = field(
        default="", metadata=_key("v2: bucket to write to.", required_when=("api", "v2"))
    )
    token: Secret = field(
        default=Secret(),
        metadata=_key(
            "v2: API token with write access to the bucket.", required_when=("api", "v2")
        ),
    )
    timeout: float = field(
        default=10.0,
        metadata=_key(
            "Seconds one write request may take before it counts as failed.", gt=0, le=300
        ),
    )
    gzip: bool = field(default=True, metadata=_key("Compress write bodies with gzip."))
    gzip_level: int = field(
        default=1,
        metadata=_key(
            "gzip level of v1 writes (the v2 client picks its own); 1 is the fastest, "
            "and line protocol compresses well even so.",
            ge=1,
            le=9,
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class IngestConfig(_MaskedRepr):
    """``[ingest]``: batching, limits, the spool, the dead-letter log and retries.

    The defaults of ``spool_dir`` and ``deadletter_path`` start with the
    placeholder ``<data_home>``; a :class:`Config` replaces it with its
    ``data_home``, so on a Config they are always real paths.
    """

    batch_max_points: int = field(
        default=5000,
        metadata=_key("A batch is written once it holds this many points...", ge=1, le=100_000),
    )
    batch_max_age: float = field(
        default=1.0,
        metadata=_key("...or once its oldest point has waited this many seconds.", ge=0.01, le=60),
    )
    buffer_max_points: int = field(
        default=50_000,
        metadata=_key(
            "Points held in memory waiting for InfluxDB; beyond this, batches spill to the spool.",
            ge_key="batch_max_points",
        ),
    )
    max_payload_bytes: int = field(
        default=64 * _KIB,
        metadata=_key(
            "Larger MQTT payloads are rejected to the dead-letter log.", ge=64, le=16 * _MIB
        ),
    )
    max_future_seconds: int = field(
        default=300,
        metadata=_key(
            "Points time-stamped more than this many seconds ahead of the service's clock "
            "are rejected.",
            ge=0,
            le=86400,
        ),
    )
    site: str = field(
        default="",
        metadata=_key(
            "Value of the `site` tag written on every point; empty: no site tag. Up to 256 "
            "characters, no line breaks or backslashes.",
            check=_site_tag,
        ),
    )
    spool_dir: Path = field(
        default=_DATA_HOME / "spool",
        metadata=_key(
            "Directory of the on-disk spool that holds batches while InfluxDB cannot take them."
        ),
    )
    spool_max_bytes: int = field(
        default=_GIB, metadata=_key("Size limit of the spool (default 1 GiB).", ge=_MIB)
    )
    deadletter_path: Path = field(
        default=_DATA_HOME / "deadletter.jsonl",
        metadata=_key(
            "JSON-lines log of rejected messages with the reason; rotated to `<name>.1`."
        ),
    )
    deadletter_max_bytes: int = field(
        default=64 * _MIB,
        metadata=_key("Size at which the dead-letter log rotates (default 64 MiB).", ge=64 * _KIB),
    )
    retry_initial: float = field(
        default=0.2,
        metadata=_key(
            "Seconds before the first retry of a failed write; the delay doubles per "
            "attempt, with jitter.",
            gt=0,
        ),
    )
    retry_max: float = field(
        default=10.0,
        metadata=_key(
            "Upper limit of the delay between retries, in seconds.",
            ge_key="retry_initial",
        ),
    )
    retry_budget: float = field(
        default=5.0,
        metadata=_key(
            "Seconds a batch is retried before it goes to the spool; 0: spool at the "
            "first failure.",
            ge=0,
        ),
    )
    write_concurrency: int = field(
        default=2, metadata=_key("Writes to InfluxDB in flight at once.", ge=1, le=16)
    )
    stats_interval: float = field(
        default=10.0,
        metadata=_key(
            "Seconds between two snapshots of the service's counters; also between two "
            "InfluxDB points of a rollout in progress that did not change, and two counts "
            "of the firing alerts.",
            ge=1,
            le=3600,
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class TrainConfig(_MaskedRepr):
    """``[train]``: the retraining job, model signing and the model registry."""

    signing_key: Path = field(
        default=_DATA_HOME / "keys" / "model-signing.key",
        metadata=_key(
            "Ed25519 private key (PEM, mode 0600) that signs model packages; made by "
            "`vibewatch keys generate`."
        ),
    )
    verify_key: Path = field(
        default=_DATA_HOME / "keys" / "model-signing.pub",
        metadata=_key("Ed25519 public key (PEM) the registry checks package signatures with."),
    )
    registry_dir: Path = field(
        default=_DATA_HOME / "models",
        metadata=_key("Directory of the model registry: one package directory per version."),
    )
    min_healthy_windows: int = field(
        default=256,
        metadata=_key(
            "Training is refused when fewer healthy feature vectors than this are available.",
            ge=16,
        ),
    )
    false_alarm_rate: float = field(
        default=0.001,
        metadata=_key(
            "Target share of healthy windows above the threshold; the threshold is "
            "calibrated on held-out healthy windows for it. 0.1 % keeps a device's "
            "debounced anomaly events under one per 100 device-days at one window a second.",
            gt=0,
            le=0.5,
        ),
    )
    auc_margin: float = field(
        default=0.005,
        metadata=_key(
            "Quality gate: a candidate is promoted only if its int8 AUC is at most this much "
            "below the champion's on the same held-out data.",
            ge=0,
            le=1,
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class OtaConfig(_MaskedRepr):
    """``[ota]``: the rollout controller and the device groups rollouts target."""

    groups: DeviceGroups = field(
        default=DeviceGroups(()),
        metadata=_key(
            "Named groups of devices for `vibewatch ota deploy --group NAME`: a table of "
            '`name = ["pump-01", "line-a-*"]`, each member a device id or a glob '
            "(`*`, `?`). In the environment: `name=pump-01,line-a-*;name2=...` or the "
            "table as JSON."
        ),
    )
    chunk_rate: float = field(
        default=2000.0,
        metadata=_key(
            "Model chunks the controller serves per second at most, over all devices; a "
            "request beyond is dropped and counted (the device asks again).",
            gt=0,
            le=1_000_000,
        ),
    )
    device_chunk_rate: float = field(
        default=20.0,
        metadata=_key(
            "Model chunks the controller serves one device per second at most (a burst "
            "of as many is allowed); a request beyond is dropped and counted.",
            gt=0,
            le=10_000,
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class AlertsConfig(_MaskedRepr):
    """``[alerts]``: webhook receivers and how notifications reach them."""

    receivers: WebhookReceivers = field(
        default=WebhookReceivers(()),
        metadata=_key(
            "Webhook receivers, one table each: `[alerts.receivers.NAME]` with `url`, "
            "`secrets` (Standard Webhooks `whsec_...` secrets: each notification is signed "
            "with each), `timeout` (seconds, default 10), `concurrency` (default 2) and "
            '`matchers` (label matchers like `severity="critical"` an alert must all match '
            "to go to it; default: every alert) and `send_resolved` (default true). In the "
            "environment: the tables as JSON."
        ),
    )
    rules: AlertRules = field(
        default=AlertRules(DEFAULT_RULES),
        metadata=_key(
            "Alert rules, one table each: `[alerts.rules.NAME]` (NAME is the `alertname`) "
            "with `kind` (anomaly, sustained_score, offline, rollout_aborted, ingestion), "
            "its parameters, `labels`, `annotations` (templates such as `{device}`), "
            "`inhibited_by` and `enabled`. A table named as a default rule changes it: "
            "DeviceAnomaly, AnomalyScoreSustained, DeviceOffline, RolloutAborted, "
            "IngestionTrouble (docs/alerts.md). In the environment: the tables as JSON."
        ),
    )
    group_by: str = field(
        default="alertname",
        metadata=_key(
            "Labels that group alerts into one notification, comma separated; `...`: all labels.",
            check=_label_names,
        ),
    )
    group_wait: float = field(
        default=30.0,
        metadata=_key("Seconds a new group waits for more alerts before it notifies.", ge=0),
    )
    group_interval: float = field(
        default=300.0,
        metadata=_key("Seconds between two looks at a group (new or resolved alerts).", gt=0),
    )
    repeat_interval: float = field(
        default=14400.0,
        metadata=_key("Seconds before an unchanged notification goes out again.", gt=0),
    )
    external_url: str = field(
        default="",
        metadata=_key("The `externalURL` of the notifications: where people see the alerts."),
    )
    alertmanager_url: str = field(
        default="",
        metadata=_key(
            "Base URL of a Prometheus Alertmanager the site runs: when set, alerts are posted "
            "to its `/api/v2/alerts` (again every minute while they fire, as Prometheus "
            "does) instead of grouped and sent by vibewatch. Empty: vibewatch notifies.",
            check=_http_url_or_empty,
        ),
    )
    retry_budget: float = field(
        default=86400.0,
        metadata=_key(
            "Seconds a notification is retried before it is dead-lettered.", ge=1, le=604800
        ),
    )
    retry_initial: float = field(
        default=1.0,
        metadata=_key("First delay before a notification is sent again (seconds).", gt=0),
    )
    retry_max: float = field(
        default=300.0,
        metadata=_key(
            "Longest delay between two attempts (seconds).", gt=0, ge_key="retry_initial"
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class GrafanaConfig(_MaskedRepr):
    """``[grafana]``: where ``vibewatch dashboards push`` uploads the dashboards."""

    url: HttpUrl = field(
        default=HttpUrl("http://127.0.0.1:3000"),
        metadata=_key("Base URL of Grafana, `http://` or `https://`, without credentials."),
    )
    token: Secret = field(
        default=Secret(),
        metadata=_key(
            "Service account token (Editor role) sent as `Authorization: Bearer`; empty: "
            "no authentication."
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class LogConfig(_MaskedRepr):
    """``[log]``: the service's own log."""

    level: LogLevel = field(default="info", metadata=_key("Lowest level that is logged."))
    format: LogFormat = field(
        default="text",
        metadata=_key("`text` for people, `json` (one object per line) for collectors."),
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class Config(_MaskedRepr):
    """The whole configuration: top-level keys, then one object per section.

    Build it with :func:`load_config`, which validates every value; constructing
    it directly (in tests) trusts the arguments. Either way, a section path that
    starts with ``<data_home>`` (the defaults of ``ingest.spool_dir`` and
    ``ingest.deadletter_path``) is resolved against :attr:`data_home`.
    """

    data_home: Path = field(
        default_factory=_default_data_home,
        metadata=_key(
            "Directory of the state that must survive restarts: the spool, the dead-letter "
            "log, the signing keys and the model registry live here unless set on their "
            "own, and the state database `state.db` always.",
            shown_default="~/.local/share/vibewatch",
        ),
    )
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influx: InfluxConfig = field(default_factory=InfluxConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ota: OtaConfig = field(default_factory=OtaConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    grafana: GrafanaConfig = field(default_factory=GrafanaConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        for section, keys in _keys_by_section().items():
            if not section:
                continue
            obj = getattr(self, section)
            resolved = {
                key.name: self.data_home.joinpath(*value.parts[1:])
                for key in keys
                if isinstance(value := getattr(obj, key.name), Path)
                and value.parts[:1] == _DATA_HOME.parts
            }
            if resolved:
                object.__setattr__(self, section, dataclasses.replace(obj, **resolved))

    @property
    def state_db(self) -> Path:
        """The SQLite database of the control-plane state (models, later devices and rollouts)."""
        return self.data_home / "state.db"

    def redacted(self) -> dict[str, dict[str, object]]:
        """Return every key's value as plain data, with secrets masked.

        For ``vibewatch config show`` and the startup log. Top-level keys are under
        the section name ``""``; paths are strings; a set secret is ``"********"``
        and an unset one ``""``.

        Returns:
            ``{section: {key: value}}`` in declaration order, ready for ``json.dumps``.
        """
        out: dict[str, dict[str, object]] = {}
        for key in _KEYS:
            out.setdefault(key.section, {})[key.name] = key.kind.plain(key.get(self))
        return out


# --- value kinds: how a type is parsed, shown and dumped ---------------------


class _BadValueError(Exception):
    """A value cannot be converted to its key's type; the message says why."""


def toml_type(value: object) -> str:
    """How a TOML value's type reads in an error message (``an integer``, ``a table``)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date/time"


def _quote(text: str) -> str:
    if len(text) > 80:
        text = text[:77] + "..."
    # backslashreplace: an environment value may carry undecodable bytes as surrogates.
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(value: object) -> str:
    """Render a raw or parsed value for a message, TOML-like."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Path):
        return _quote(str(value))
    if value is None:
        return '""'
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    return repr(value)


def _check_utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadValueError("is not valid UTF-8") from None
    return text


class _Kind:
    """How values of one Python type are read from TOML and env and written out."""

    name = ""
    secret = False

    def from_env(self, text: str) -> object:
        return self.from_toml(text)

    def from_toml(self, value: object) -> object:
        raise NotImplementedError

    def plain(self, value: object) -> object:
        return value

    def shown(self, value: object) -> object:
        """The value as an error message may show it (raw or parsed)."""
        return value

    def literal(self, value: object) -> str:
        return _show(value)


class _StrKind(_Kind):
    name = "string"

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str):
            raise _BadValueError(f"expected a string, got {toml_type(value)}")
        return _check_utf8(value)


class _IntKind(_Kind):
    name = "integer"

    def from_env(self, text: str) -> object:
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise _BadValueError("expected an integer") from None

    def from_toml(self, value: object) -> object:
        # bool is a subclass of int in Python, but `port = true` is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadValueError(f"expected an integer, got {toml_type(value)}")
        return value


class _FloatKind(_Kind):
    name = "float"

    def from_env(self, text: str) -> object:
        try:
            number = float(text.strip())
        except ValueError:
            raise _BadValueError("expected a number") from None
        return self._finite(number)

    def from_toml(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadValueError(f"expected a number, got {toml_type(value)}")
        return self._finite(float(value))

    @staticmethod
    def _finite(number: float) -> float:
        if not math.isfinite(number):
            raise _BadValueError("expected a finite number")
        return number


class _BoolKind(_Kind):
    name = "boolean"
    _WORDS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def from_env(self, text: str) -> object:
        try:
            return self._WORDS[text.strip().lower()]
        except KeyError:
            raise _BadValueError("expected a boolean: true/false, 1/0 or yes/no") from None

    def from_toml(self, value: object) -> object:
        if not isinstance(value, bool):
            raise _BadValueError(f"expected a boolean, got {toml_type(value)}")
        return value


class _PathKind(_Kind):
    REQUIRED: Final = object()

    def __init__(self, *, empty: object) -> None:
        """Set what an empty string means.

        Args:
            empty: The value of ``""``, or ``REQUIRED`` to refuse it.
        """
        self.empty = empty
        self.name = "path" if empty is self.REQUIRED else "path or empty"

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str):
            raise _BadValueError(f"expected a path string, got {toml_type(value)}")
        if value == "":
            if self.empty is self.REQUIRED:
                raise _BadValueError("must not be empty")
            return self.empty
        return Path(value).expanduser()

    def plain(self, value: object) -> object:
        return "" if value is None else str(value)


class _SecretKind(_Kind):
    name = "secret string"
    secret = True

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str):
            raise _BadValueError(f"expected a string, got {toml_type(value)}")
        return Secret(_check_utf8(value))

    def plain(self, value: object) -> object:
        return str(value)

    def literal(self, value: object) -> str:
        return _quote(str(value))


class _UrlKind(_StrKind):
    name = "URL"

    def from_toml(self, value: object) -> object:
        text = typing.cast(str, super().from_toml(value))
        problem = http_url_problem(text)
        if problem is not None:
            raise _BadValueError(problem)
        return HttpUrl(text)

    def plain(self, value: object) -> object:
        return mask_url(str(value))

    def shown(self, value: object) -> object:
        return mask_url(value) if isinstance(value, str) else value


class _ChoiceKind(_Kind):
    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices
        self.name = " or ".join(f"`{c}`" for c in choices)

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str):
            raise _BadValueError(f"expected a string, got {toml_type(value)}")
        if value not in self.choices:
            raise _BadValueError("must be one of " + ", ".join(_quote(c) for c in self.choices))
        return value


class _GroupsKind(_Kind):
    name = "table of device lists"

    def from_env(self, text: str) -> object:
        if text.strip().startswith("{"):
            try:
                return self.from_toml(json.loads(text))
            except json.JSONDecodeError as exc:
                raise _BadValueError(f"not a JSON object: {exc}") from None
        groups: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, equals, members = part.partition("=")
            if not equals:
                raise _BadValueError(f"expected name=member,member;..., not {_quote(part)}")
            groups[name.strip()] = [m.strip() for m in members.split(",") if m.strip()]
        return self.from_toml(groups)

    def from_toml(self, value: object) -> object:
        if not isinstance(value, dict):
            raise _BadValueError(f"expected a table of arrays, got {toml_type(value)}")
        out: list[tuple[str, tuple[str, ...]]] = []
        for name, members in value.items():
            problem = _name(name)
            if problem is not None:
                raise _BadValueError(f"group name {_quote(name)} {problem}")
            if not isinstance(members, list) or not members:
                raise _BadValueError(f"group {name}: expected a non-empty array of devices")
            for member in members:
                if not isinstance(member, str) or DEVICE_SELECTOR_RE.fullmatch(member) is None:
                    raise _BadValueError(
                        f"group {name}: {_show(member)} is not a device id or glob (1 to 64 "
                        "characters from A-Z a-z 0-9 _ - and the wildcards * and ?)"
                    )
            out.append((name, tuple(dict.fromkeys(members))))
        return DeviceGroups(tuple(out))

    def plain(self, value: object) -> object:
        return {name: list(members) for name, members in typing.cast(DeviceGroups, value)}

    def literal(self, value: object) -> str:
        groups = typing.cast(DeviceGroups, value)
        return "{" + ", ".join(f"{n} = [...]" for n, _ in groups) + "}" if groups else "{}"


class _TablesKind(_Kind):
    """A table of named tables in the file, the same as a JSON object in the environment."""

    def from_env(self, text: str) -> object:
        try:
            return self.from_toml(json.loads(text) if text.strip() else {})
        except json.JSONDecodeError as exc:
            raise _BadValueError(f"not a JSON object: {exc.msg}") from None

    def from_toml(self, value: object) -> object:
        if not isinstance(value, dict):
            raise _BadValueError(f"expected a {self.name}, got {toml_type(value)}")
        return self.tables(value)

    def tables(self, value: dict[str, object]) -> object:
        """The value of the named tables."""
        raise NotImplementedError


class _ReceiversKind(_TablesKind):
    name = "table of receivers"
    secret = True  # the tables hold secrets: an error message never shows them
    _FIELDS: Final = ("url", "secrets", "timeout", "concurrency", "matchers", "send_resolved")

    def tables(self, value: dict[str, object]) -> object:
        return WebhookReceivers(tuple(self._receiver(n, t) for n, t in value.items()))

    def _receiver(self, name: str, table: object) -> WebhookReceiver:
        if (problem := _name(name)) is not None:
            raise _BadValueError(f"receiver name {_quote(name)} {problem}")
        if not isinstance(table, dict):
            raise _BadValueError(f"receiver {name}: expected a table, got {toml_type(table)}")
        unknown = sorted(set(table) - set(self._FIELDS))
        if unknown:
            raise _BadValueError(f"receiver {name}: unknown key {unknown[0]}")
        url = table.get("url")
        if not isinstance(url, str) or (problem := _webhook_url(url)) is not None:
            raise _BadValueError(f"receiver {name}: url {problem or 'is required'}")
        secrets = table.get("secrets", [])
        if not isinstance(secrets, list) or not secrets:
            raise _BadValueError(f"receiver {name}: secrets must be a non-empty array")
        for index, secret in enumerate(secrets):
            try:
                secret_key(secret if isinstance(secret, str) else "")
            except SignatureError as exc:
                raise _BadValueError(f"receiver {name}: secrets[{index}]: {exc}") from None
        timeout = table.get("timeout", 10.0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 300
        ):
            raise _BadValueError(f"receiver {name}: timeout must be a number in (0, 300]")
        concurrency = table.get("concurrency", 2)
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= 64
        ):
            raise _BadValueError(f"receiver {name}: concurrency must be an integer in [1, 64]")
        matchers = table.get("matchers", [])
        if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
            raise _BadValueError(f"receiver {name}: matchers must be an array of strings")
        for text in matchers:
            try:
                parse_matcher(text)
            except ValueError as exc:
                raise _BadValueError(f"receiver {name}: matchers: {exc}") from None
        send_resolved = table.get("send_resolved", True)
        if not isinstance(send_resolved, bool):
            raise _BadValueError(f"receiver {name}: send_resolved must be true or false")
        return WebhookReceiver(
            name,
            url,
            tuple(Secret(s) for s in secrets),
            float(timeout),
            concurrency,
            tuple(matchers),
            send_resolved,
        )

    def plain(self, value: object) -> object:
        return {
            r.name: {
                "url": _mask_path(r.url),
                "secrets": [MASK for _ in r.secrets],
                "timeout": r.timeout,
                "concurrency": r.concurrency,
                "matchers": list(r.matchers),
                "send_resolved": r.send_resolved,
            }
            for r in typing.cast(WebhookReceivers, value)
        }

    def literal(self, value: object) -> str:
        return "{}" if not value else "{...}"


class _RulesKind(_TablesKind):
    name = "table of alert rules"

    def tables(self, value: dict[str, object]) -> object:
        try:
            return AlertRules(parse_rules(value))
        except ValueError as exc:
            raise _BadValueError(str(exc)) from None

    def plain(self, value: object) -> object:
        return {r.name: r.as_json() for r in typing.cast(AlertRules, value)}

    def literal(self, value: object) -> str:
        return "{" + ", ".join(r.name for r in typing.cast(AlertRules, value)) + "}"


def _webhook_url(url: str) -> str | None:
    """What keeps ``url`` from being a webhook URL, or None (a query is allowed: some
    receivers take their token there; credentials are not)."""
    parts = urlsplit(url) if url.isprintable() and url == url.strip() else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not hold credentials"
    return None


def _mask_path(url: str) -> str:
    """A webhook URL as shown: scheme and host (a path or query may hold a token)."""
    parts = urlsplit(url)
    rest = "/" + MASK if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{rest}"


def _kind_for(annotation: object, default: object) -> _Kind:
    if typing.get_origin(annotation) is Literal:
        return _ChoiceKind(typing.get_args(annotation))
    if set(typing.get_args(annotation)) == {Path, type(None)}:
        return _PathKind(empty=None)
    if annotation is Path:
        # A path under <data_home> is a default that follows data_home; "" restores it.
        derived = isinstance(default, Path) and default.parts[:1] == _DATA_HOME.parts
        return _PathKind(empty=default if derived else _PathKind.REQUIRED)
    simple: dict[object, _Kind] = {
        HttpUrl: _UrlKind(),
        str: _StrKind(),
        int: _IntKind(),
        float: _FloatKind(),
        bool: _BoolKind(),
        Secret: _SecretKind(),
    }
    if annotation is DeviceGroups:
        return _GroupsKind()
    if annotation is WebhookReceivers:
        return _ReceiversKind()
    if annotation is AlertRules:
        return _RulesKind()
    if annotation in simple:
        return simple[annotation]
    raise TypeError(f"no configuration kind for {annotation!r}")


# --- the flattened schema -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    """One key of the schema, with everything derived from its declaration."""

    section: str  # "" for top-level keys
    name: str
    kind: _Kind
    spec: _Spec

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        parts = [self.section, self.name] if self.section else [self.name]
        return ENV_PREFIX + "_".join(parts).upper()

    @property
    def file_env(self) -> str:
        """The variable naming a file that holds a secret key's value."""
        return self.env + "_FILE"

    def get(self, config: Config) -> object:
        holder = getattr(config, self.section) if self.section else config
        return getattr(holder, self.name)

    def sibling(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name


def _field_default(f: dataclasses.Field[Any]) -> object:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _build_schema() -> tuple[dict[str, type[Any]], tuple[_Key, ...]]:
    sections: dict[str, type[Any]] = {}
    keys: list[_Key] = []
    top_hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if _SPEC in f.metadata:
            kind = _kind_for(top_hints[f.name], f.default)
            keys.append(_Key("", f.name, kind, f.metadata[_SPEC]))
        else:
            sections[f.name] = top_hints[f.name]
    for name, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = _kind_for(hints[f.name], f.default)
            keys.append(_Key(name, f.name, kind, f.metadata[_SPEC]))
    env_names = [key.env for key in keys]
    if len(set(env_names)) != len(env_names) or CONFIG_ENV in env_names:
        raise AssertionError("two configuration keys map to the same environment variable")
    return sections, tuple(keys)


_SECTIONS, _KEYS = _build_schema()
_URL_FIELDS: Final = frozenset(
    (_SECTIONS[key.section] if key.section else Config, key.name)
    for key in _KEYS
    if isinstance(key.kind, _UrlKind)
)
"""(class, field) of every :data:`HttpUrl` key, whose value ``repr`` masks."""


def _keys_by_section() -> dict[str, list[_Key]]:
    grouped: dict[str, list[_Key]] = {}
    for key in _KEYS:
        grouped.setdefault(key.section, []).append(key)
    return grouped


def _default_of(key: _Key) -> object:
    """The default of a key, computed now (``data_home`` depends on ``$HOME``)."""
    holder: type[Any] = _SECTIONS[key.section] if key.section else Config
    return _field_default(holder.__dataclass_fields__[key.name])


# --- loading --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    value: object
    source: str  # "default", "from <file>" or "from VIBEWATCH_..."


def _describe(key: _Key, value: object, source: str) -> str:
    """``key = value (source)``, without the value for secrets."""
    if key.kind.secret:
        return f"{key.dotted} ({source})"
    return f"{key.dotted} = {_show(key.kind.shown(value))} ({source})"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_toml(path: Path, via: str) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path}{via} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}{via}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not valid UTF-8 (at line {line})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends in "(at line L, column C)".
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _file_values(document: dict[str, Any], path: str, problems: list[str]) -> dict[str, object]:
    """Flatten the TOML document to ``{dotted key: raw value}``, reporting unknown names."""
    grouped = _keys_by_section()
    top_names = {key.name for key in grouped[""]}
    values: dict[str, object] = {}
    for name, raw in document.items():
        if name in top_names:
            values[name] = raw
        elif name in _SECTIONS:
            if not isinstance(raw, dict):
                problems.append(f"{name} in {path} must be a table [{name}], not {toml_type(raw)}")
                continue
            known = {key.name for key in grouped[name]}
            for key_name, key_raw in raw.items():
                dotted = f"{name}.{key_name}"
                if key_name in known:
                    values[dotted] = key_raw
                else:
                    hint = _suggest(dotted, [key.dotted for key in grouped[name]])
                    problems.append(f"unknown key {dotted} in {path}{hint}")
        elif isinstance(raw, dict):
            hint = _suggest(name, list(_SECTIONS))
            problems.append(f"unknown section [{name}] in {path}{hint}")
        else:
            hint = _suggest(name, sorted(top_names))
            problems.append(f"unknown key {name} in {path}{hint}")
    return values


def read_secret_file(path: str | os.PathLike[str]) -> str:
    """A secret kept in a file (a container secret, a systemd credential): its text without
    the line break at its end.

    Raises:
        DataError: The file cannot be read, is empty, or is not UTF-8 text.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise DataError(f"{path} is empty")
    return value


def _unknown_env(environ: Mapping[str, str]) -> list[str]:
    known = [key.env for key in _KEYS] + [CONFIG_ENV]
    known += [key.file_env for key in _KEYS if key.kind.secret]
    return [
        f"unknown environment variable {name}{_suggest(name, known)}"
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and name not in known
    ]


def _check_value(key: _Key, value: object) -> str | None:
    """The first problem of a well-typed value with its own constraints, or None."""
    spec = key.spec
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.gt is not None and not value > spec.gt:
            return f"must be > {spec.gt}"
        if spec.ge is not None and value < spec.ge:
            return f"must be >= {spec.ge}"
        if spec.le is not None and value > spec.le:
            return f"must be <= {spec.le}"
    if spec.check is not None:
        return spec.check(value)
    return None


def _check_relations(key: _Key, values: dict[str, _Value]) -> str | None:
    """The problem of a value with respect to other keys, or None.

    Skipped when the other key is itself invalid: its own error is reported.
    """
    mine = values[key.dotted].value
    if key.spec.ge_key is not None:
        other = values.get(key.sibling(key.spec.ge_key))
        if other is not None and isinstance(mine, int | float):
            bound = typing.cast(float, other.value)
            if mine < bound:
                return f"must be >= {key.sibling(key.spec.ge_key)} = {bound} ({other.source})"
    if key.spec.required_when is not None:
        name, wanted = key.spec.required_when
        other = values.get(key.sibling(name))
        if other is not None and other.value == wanted and not mine:
            return f"required when {key.sibling(name)} = {_quote(wanted)} ({other.source})"
    return None


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    Values come from the key's default, then the TOML file at ``path``, then the
    environment variable ``VIBEWATCH_<SECTION>_<KEY>`` (``VIBEWATCH_<KEY>`` for
    top-level keys); the last one present wins. With no ``path``, the file named
    by ``VIBEWATCH_CONFIG`` is read if that is set and not empty; otherwise no
    file is read at all (``./vibewatch.toml`` is not looked for).

    Args:
        path: The TOML file, e.g. from ``--config``; it must exist.
        environ: The environment to read; ``os.environ`` when omitted.

    Returns:
        The validated configuration, derived paths filled in.

    Raises:
        ConfigError: The file is missing, unreadable or not TOML; or any value is
            invalid, any key, section or ``VIBEWATCH_*`` variable unknown. All
            problems of the latter kind are listed in one error, one per line.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    via = ""
    if path is None and env.get(CONFIG_ENV):
        path, via = Path(env[CONFIG_ENV]), f" (from {CONFIG_ENV})"

    problems = _unknown_env(env)
    file_values: dict[str, object] = {}
    file_source = ""
    if path is not None:
        document = _read_toml(Path(path), via)
        file_source = f"from {path}"
        file_values = _file_values(document, str(path), problems)

    values: dict[str, _Value] = {}
    for key in _KEYS:
        raw: object
        value: object
        try:
            if key.kind.secret and key.file_env in env:
                raw, source = env[key.file_env], f"from the file {key.file_env} names"
                if key.env in env:
                    raise _BadValueError(f"set {key.env} or {key.file_env}, not both")
                try:
                    value = Secret(read_secret_file(raw))
                except DataError as exc:
                    raise _BadValueError(str(exc)) from None
            elif key.env in env:
                raw, source = env[key.env], f"from {key.env}"
                value = key.kind.from_env(raw)
            elif key.dotted in file_values:
                raw, source = file_values[key.dotted], file_source
                value = key.kind.from_toml(raw)
            else:
                raw = value = _default_of(key)
                source = "default"
        except _BadValueError as exc:
            problems.append(f"{_describe(key, raw, source)}: {exc}")
            continue
        problem = _check_value(key, value)
        if problem is not None:
            problems.append(f"{_describe(key, value, source)}: {problem}")
            continue
        values[key.dotted] = _Value(value, source)

    for key in _KEYS:
        if key.dotted in values:
            problem = _check_relations(key, values)
            if problem is not None:
                current = values[key.dotted]
                problems.append(f"{_describe(key, current.value, current.source)}: {problem}")

    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise ConfigError(f"invalid configuration ({count}):\n  " + "\n  ".join(problems))

    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key in _KEYS:
        (sections[key.section] if key.section else top)[key.name] = values[key.dotted].value
    return Config(**top, **{name: _SECTIONS[name](**kw) for name, kw in sections.items()})


# --- the reference table ------------------------------------------------------


def _bounds_text(key: _Key) -> str:
    spec = key.spec
    parts: list[str] = []
    if spec.ge is not None and spec.le is not None and spec.gt is None:
        parts.append(f"{spec.ge} to {spec.le}")
    else:
        if spec.gt is not None:
            parts.append(f"> {spec.gt}")
        if spec.ge is not None:
            parts.append(f">= {spec.ge}")
        if spec.le is not None:
            parts.append(f"<= {spec.le}")
    if spec.ge_key is not None:
        parts.append(f">= `{key.sibling(spec.ge_key)}`")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference_markdown() -> str:
    """Render the reference of every key as Markdown, one table per section.

    ``docs/configuration.md`` embeds this text between ``<!-- keys:begin -->``
    and ``<!-- keys:end -->``; a unit test keeps the two identical.

    Returns:
        Markdown text ending in a newline.
    """
    lines: list[str] = []
    for section, keys in _keys_by_section().items():
        title = f"`[{section}]`" if section else "Top level"
        lines += [
            f"### {title}",
            "",
            "| Key | Environment variable | Type | Default | Meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key in keys:
            kind = key.kind.name
            bounds = _bounds_text(key)
            if bounds:
                kind = f"{kind}, {bounds}"
            default = key.spec.shown_default
            if default is None:
                default = key.kind.literal(_default_of(key))
            meaning = key.spec.doc
            if key.spec.required_when is not None:
                name, wanted = key.spec.required_when
                meaning += f" Required when `{key.sibling(name)} = {_quote(wanted)}`."
            cells = [f"`{key.dotted}`", f"`{key.env}`", kind, f"`{default}`", meaning]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
