"""The http provider against a mocked transport, and its callback endpoint with real
Standard Webhooks signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from dialer.providers.base import DialOrder, ProviderError
from dialer.providers.http import GatewayCallback, HttpProvider
from dialer.settings import DialerSettings

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
ORDER = DialOrder(
    call_id="call_1",
    task_id="tsk_1",
    attempt=2,
    to="+12125550123",
    from_number="+12125550100",
    language="en-US",
    greeting="Hi Ada",
    system_prompt="Be brief",
    voicemail_action="leave_message",
    voicemail_message="Call us",
    agent_name="Renewals",
    context={"NAME": "Ada", "PLAN": "gold"},
)


def settings() -> DialerSettings:
    return DialerSettings(
        provider="http",
        http_gateway_url="http://gateway.test/calls",
        http_callback_secret=SECRET,
        http_callback_url="http://dialer.test/v1/provider/callbacks",
        http_timeout_seconds=0.5,
    )


def provider(handler: httpx.MockTransport) -> HttpProvider:
    return HttpProvider(settings=settings(), transport=handler)


async def test_dial_posts_the_call_with_its_id_as_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"accepted": True})

    await provider(httpx.MockTransport(handle)).dial(ORDER)
    (req,) = seen
    assert req.headers["Idempotency-Key"] == "call_1"
    body = json.loads(req.content)
    assert body["call_id"] == "call_1"
    assert (body["to"], body["from"], body["language"]) == ("+12125550123", "+12125550100", "en-US")
    assert body["agent"]["greeting"] == "Hi Ada"
    assert body["agent"]["system_prompt"] == "Be brief"
    assert body["context"] == {"NAME": "Ada", "PLAN": "gold"}
    assert body["voicemail_action"] == "leave_message"
    assert body["max_duration_seconds"] == 1800
    assert body["callback_url"] == "http://dialer.test/v1/provider/callbacks"


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "gateway_5xx"), (503, "gateway_5xx"), (400, "gateway_rejected")]
)
async def test_gateway_errors_raise_provider_error(status: int, reason: str) -> None:
    p = provider(httpx.MockTransport(lambda r: httpx.Response(status)))
    with pytest.raises(ProviderError) as err:
        await p.dial(ORDER)
    assert err.value.reason == reason


async def test_gateway_timeout_and_unreachable_raise_provider_error() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderError) as err:
        await provider(httpx.MockTransport(timeout)).dial(ORDER)
    assert err.value.reason == "gateway_timeout"
    with pytest.raises(ProviderError) as err:
        await provider(httpx.MockTransport(refused)).dial(ORDER)
    assert err.value.reason == "gateway_unreachable"


async def test_conflict_means_the_gateway_already_has_the_call() -> None:
    await provider(httpx.MockTransport(lambda r: httpx.Response(409))).dial(ORDER)


def _client(got: list[GatewayCallback]) -> TestClient:
    p = provider(httpx.MockTransport(lambda r: httpx.Response(200)))

    async def sink(cb: GatewayCallback) -> str | None:
        if cb.call_id == "call_unknown":
            return None
        got.append(cb)
        return "recorded"

    p.on_callback(sink)
    app = FastAPI()
    for router in p.routers():
        app.include_router(router)
    return TestClient(app)


def _signed(body: str, *, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", at, body),
        "content-type": "application/json",
    }


ENDED = json.dumps(
    {
        "type": "call.ended",
        "call_id": "call_1",
        "status": "completed",
        "outcome": "interested",
        "duration_seconds": 42.5,
        "turns": 6,
        "transcript": [{"role": "user", "text": "yes"}],
        "recording_url": "https://rec.test/1.wav",
        "cost": 0.07,
    }
)


def test_signed_callback_is_accepted() -> None:
    got: list[GatewayCallback] = []
    r = _client(got).post("/v1/provider/callbacks", content=ENDED, headers=_signed(ENDED))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "recorded"}
    (cb,) = got
    assert (cb.status, cb.outcome, cb.turns, cb.recording_url) == (
        "completed",
        "interested",
        6,
        "https://rec.test/1.wav",
    )


def test_unsigned_badly_signed_and_stale_callbacks_are_refused() -> None:
    got: list[GatewayCallback] = []
    client = _client(got)
    r = client.post(
        "/v1/provider/callbacks", content=ENDED, headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    other = "whsec_" + "b3RoZXItb3RoZXItb3RoZXItb3RoZXI="
    r = client.post("/v1/provider/callbacks", content=ENDED, headers=_signed(ENDED, secret=other))
    assert r.status_code == 401
    old = datetime.now(UTC) - timedelta(minutes=30)
    r = client.post("/v1/provider/callbacks", content=ENDED, headers=_signed(ENDED, at=old))
    assert r.status_code == 401
    tampered = ENDED.replace("interested", "opt_out")
    r = client.post("/v1/provider/callbacks", content=tampered, headers=_signed(ENDED))
    assert r.status_code == 401
    assert got == []


def test_unknown_call_and_bad_body_are_rejected() -> None:
    client = _client([])
    body = ENDED.replace("call_1", "call_unknown")
    r = client.post("/v1/provider/callbacks", content=body, headers=_signed(body))
    assert r.status_code == 404
    body = json.dumps({"type": "call.ended", "call_id": "call_1"})
    r = client.post("/v1/provider/callbacks", content=body, headers=_signed(body))
    assert r.status_code == 422


def test_http_provider_settings_need_gateway_and_secret() -> None:
    with pytest.raises(ValueError, match="http_gateway_url"):
        DialerSettings(provider="http")
