"""Webhook signatures: checked by the Standard Webhooks reference library, not only by
vibewatch's own verifier."""

from __future__ import annotations

import base64
import time

import pytest
import standardwebhooks

from vibewatch.alerts.signing import SignatureError, new_secret, secret_key, sign, verify

BODY = b'{"version":"4","status":"firing"}'


def test_the_reference_library_verifies_a_signature() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = sign([secret], "msg_2Kx", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "version": "4",
        "status": "firing",
    }
    assert verify(secret, headers, BODY, now) == "msg_2Kx"


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())
    headers = sign([new, old], "msg_1", now, BODY)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        assert verify(secret, headers, BODY, now) == "msg_1"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)


def test_a_known_vector() -> None:
    # the specification's example: secret, id, timestamp, body and signature
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = sign([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": "v1,AAAA"}, "no signature verifies"),
        ({"webhook-timestamp": "1"}, "more than 300 s away"),
        ({"webhook-id": None}, "missing or malformed"),
    ],
)
def test_a_changed_notification_does_not_verify(
    change: dict[str, str | None], message: str
) -> None:
    secret = new_secret()
    now = int(time.time())
    headers = sign([secret], "msg_1", now, BODY)
    changed = {k: v for k, v in (headers | change).items() if v is not None}
    with pytest.raises(SignatureError, match=message):
        verify(secret, changed, BODY, now)
    with pytest.raises(SignatureError, match="no signature verifies"):
        verify(secret, headers, BODY + b" ", now)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_not base64!", "standard base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 key bytes, not 5"),
    ],
)
def test_a_bad_secret_is_refused_without_showing_it(secret: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message) as caught:
        secret_key(secret)
    assert secret[6:] not in str(caught.value)
    with pytest.raises(SignatureError, match="no webhook secret"):
        sign([], "msg", 1, BODY)
