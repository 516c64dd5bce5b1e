"""Standard Webhooks signing (https://www.standardwebhooks.com/): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` with a ``whsec_`` base64 secret."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(
    *, secret: str, msg_id: str, body: str, at: datetime, previous_secret: str | None = None
) -> dict[str, str]:
    """Headers for one send of ``body`` (which must be sent byte for byte as signed).

    ``at`` is real wall time: receivers check the timestamp against their own clock. During a
    secret rotation ``previous_secret`` adds a second signature, space-separated as the
    Standard Webhooks scheme allows, so receivers verify with either secret."""
    signatures = [Webhook(secret).sign(msg_id, at, body)]
    if previous_secret:
        signatures.append(Webhook(previous_secret).sign(msg_id, at, body))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
