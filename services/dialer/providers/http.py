"""The generic voice-gateway provider.

Outbound POSTs one JSON document per call to the gateway (``Idempotency-Key: <call_id>``); the
gateway places the call, runs the conversation and reports ``call.started`` / ``call.ended``
to ``POST /v1/provider/callbacks`` on the dialer, signed with the Standard Webhooks scheme
(HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}``). See docs/providers.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import httpx
import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dialer.providers.base import DialOrder, ProviderError, VoiceProvider
from dialer.settings import DialerSettings
from outbound_core.phones import mask_phone
from outbound_core.service import Runtime

log = structlog.get_logger(__name__)


class GatewayCallback(BaseModel):
    """What the gateway reports about one call."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["call.started", "call.ended"]
    call_id: str
    status: Literal["completed", "no_answer", "busy", "failed", "voicemail"] | None = None
    outcome: str | None = Field(None, description="The agent's outcome label, if any.")
    duration_seconds: float = Field(0.0, ge=0)
    turns: int = Field(0, ge=0)
    transcript: list[dict[str, str]] = Field(default_factory=list)
    recording_url: str | None = None
    cost: float = Field(0.0, ge=0)
    callback_at: datetime | None = None
    provider_call_id: str | None = None


# (callback) -> "recorded" | "duplicate" | "late"; None when the call is unknown
CallbackSink = Callable[[GatewayCallback], Awaitable[str | None]]


def dial_payload(order: DialOrder, *, callback_url: str, max_seconds: int) -> dict[str, Any]:
    return {
        "call_id": order.call_id,
        "task_id": order.task_id,
        "attempt": order.attempt,
        "to": order.to,
        "from": order.from_number,
        "agent": {
            "name": order.agent_name,
            "greeting": order.greeting,
            "system_prompt": order.system_prompt,
            "voicemail_message": order.voicemail_message,
        },
        "language": order.language,
        "context": dict(order.context),
        "voicemail_action": order.voicemail_action,
        "max_duration_seconds": max_seconds,
        "callback_url": callback_url,
    }


class HttpProvider(VoiceProvider):
    name = "http"

    def __init__(
        self, *, settings: DialerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__()
        if not settings.http_gateway_url or not settings.http_callback_secret:
            raise ValueError("the http provider needs http_gateway_url and http_callback_secret")
        self.settings = settings
        self.url = settings.http_gateway_url
        self.verifier = Webhook(settings.http_callback_secret)
        headers = {"User-Agent": "outbound-dialer"}
        if settings.http_gateway_token:
            headers["Authorization"] = f"Bearer {settings.http_gateway_token}"
        self.client = httpx.AsyncClient(
            timeout=settings.http_timeout_seconds, headers=headers, transport=transport
        )
        self.sink: CallbackSink | None = None

    def install(self, rt: Runtime) -> None:
        rt.shutdown.append(self.client.aclose)

    def on_callback(self, sink: CallbackSink) -> None:
        self.sink = sink

    async def dial(self, order: DialOrder) -> None:
        body = dial_payload(
            order,
            callback_url=self.settings.callback_url(),
            max_seconds=self.settings.max_call_seconds,
        )
        try:
            r = await self.client.post(
                self.url, json=body, headers={"Idempotency-Key": order.call_id}
            )
        except httpx.TimeoutException as exc:
            raise ProviderError("gateway_timeout", repr(exc)) from exc
        except httpx.HTTPError as exc:
            raise ProviderError("gateway_unreachable", repr(exc)) from exc
        if r.status_code == 409:
            return  # the gateway already has this call (idempotency key): one call
        if r.status_code >= 500:
            raise ProviderError("gateway_5xx", f"HTTP {r.status_code}")
        if r.status_code >= 400:
            raise ProviderError("gateway_rejected", f"HTTP {r.status_code}: {r.text[:200]}")
        log.info("gateway accepted call", call_id=order.call_id, to=mask_phone(order.to))

    def routers(self) -> list[APIRouter]:
        router = APIRouter(tags=["provider"])

        @router.post("/v1/provider/callbacks", summary="Signed call events from the gateway")
        async def callback(request: Request) -> dict[str, str]:
            body = await request.body()
            try:
                self.verifier.verify(body, dict(request.headers.items()))
            except WebhookVerificationError as exc:
                log.warning(
                    "gateway callback refused",
                    reason=str(exc),
                    webhook_id=request.headers.get("webhook-id"),
                )
                raise HTTPException(401, f"callback refused: {exc}") from exc
            try:
                cb = GatewayCallback.model_validate_json(body)
            except ValidationError as exc:
                log.warning("gateway callback invalid", error=str(exc)[:300])
                raise HTTPException(422, "invalid callback body") from exc
            if cb.type == "call.ended" and cb.status is None:
                raise HTTPException(422, "call.ended needs a status")
            if self.sink is None:
                raise HTTPException(503, "dialer not ready")
            result = await self.sink(cb)
            if result is None:
                log.warning("gateway callback for an unknown call", call_id=cb.call_id)
                raise HTTPException(404, f"unknown call {cb.call_id}")
            return {"status": result}

        return [router]
