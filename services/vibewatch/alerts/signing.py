"""Webhook signatures as the Standard Webhooks specification defines them.

A notification carries three headers: ``webhook-id`` (the notification's id, the same
on every retry, so that a receiver can drop a copy it already took),
``webhook-timestamp`` (integer seconds since the epoch, when this attempt was signed)
and ``webhook-signature``: ``v1,`` followed by the standard base64 of the HMAC-SHA256,
keyed with the secret, of ``{id}.{timestamp}.{body}``. During a secret rotation the
header holds one such signature per secret, separated by spaces, and a receiver
accepts the notification when any of them verifies with its secret.

A secret is ``whsec_`` followed by the standard base64 of the key bytes (24 to 64 bytes
here; the specification recommends at least 24). :func:`new_secret` makes one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "SECRET_PREFIX",
    "SignatureError",
    "new_secret",
    "secret_key",
    "sign",
    "verify",
]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
#: Seconds a receiver accepts a timestamp away from its own clock.
TOLERANCE_S: Final = 300
_MIN_KEY: Final = 24
_MAX_KEY: Final = 64


class SignatureError(ValueError):
    """A secret that is not one, or a notification whose signature does not verify; the
    message says which (never the secret)."""


def new_secret() -> str:
    """A new random secret (32 key bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The key bytes of a secret.

    Raises:
        SignatureError: It is not ``whsec_`` and the base64 of 24 to 64 bytes.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise SignatureError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("a webhook secret is whsec_ and standard base64") from None
    if not _MIN_KEY <= len(key) <= _MAX_KEY:
        raise SignatureError(
            f"a webhook secret holds {_MIN_KEY} to {_MAX_KEY} key bytes, not {len(key)}"
        )
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(with_secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a notification signed with each of ``with_secrets``.

    Raises:
        SignatureError: A secret is not one, or there is none.
    """
    keys = [secret_key(secret) for secret in with_secrets]
    if not keys:
        raise SignatureError("no webhook secret to sign with")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(_signature(k, msg_id, timestamp, body) for k in keys),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Check a notification's signature as a receiver does; returns its ``webhook-id``.

    Raises:
        SignatureError: A header is missing, the timestamp is more than five minutes
            away from ``now``, or no signature verifies with ``secret``.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        offered = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook-* headers") from None
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureError(f"timestamp {timestamp} is more than {TOLERANCE_S} s away")
    expected = _signature(secret_key(secret), msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureError("no signature verifies with the secret")
    return msg_id
