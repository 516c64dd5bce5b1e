from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhook.domain import envelope_body
from webhook.signing import new_secret, signed_headers


def test_secret_format() -> None:
    s = new_secret()
    assert s.startswith("whsec_")
    assert len(base64.b64decode(s.removeprefix("whsec_"))) == 24
    assert new_secret() != s


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    body = envelope_body(event_type="ping", timestamp=now, data={"message": "ping", "x": "ü"})
    headers = signed_headers(secret=secret, msg_id="msg_abc", body=body, at=now)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body.encode(), headers)["data"]["x"] == "ü"


def test_tampered_body_or_other_secret_fails() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    body = '{"type":"ping"}'
    headers = signed_headers(secret=secret, msg_id="msg_abc", body=body, at=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"type":"pong"}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
