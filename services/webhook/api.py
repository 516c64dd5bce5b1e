"""Internal HTTP API, called by campaign-api after it has authenticated the caller; the tenant
arrives in the ``X-Outbound-Org-Id`` / ``X-Outbound-Workspace-Id`` headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from outbound_core.clock import Clock
from outbound_core.ids import new_id
from webhook.domain import normalize_filters
from webhook.handlers import WebhookHandlers
from webhook.repository import Doc, WebhookRepository
from webhook.sender import Sender
from webhook.settings import WebhookSettings
from webhook.signing import new_secret
from webhook.urlsafety import UnsafeURL, check_url

DeliveryStatus = Literal["pending", "succeeded", "failed", "dead"]


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2048, examples=["https://example.com/hooks/outbound"])
    events: list[str] | None = Field(
        None,
        description="Event types, '*' or 'prefix.*'; default all.",
        examples=[["campaign.lead.updated", "call.*"]],
    )
    enabled: bool = True
    description: str = Field("", max_length=500)


class WebhookUpdate(BaseModel):
    url: str | None = Field(None, max_length=2048)
    events: list[str] | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    description: str
    status: str = Field(
        description="active; disabled (by you); disabled_gone (the subscriber answered 410); "
        "disabled_failing (deliveries failed for longer than the configured limit). PATCH "
        '{"enabled": true} re-activates it.'
    )
    failing_since: datetime | None = Field(
        None, description="Start of the current run of failed deliveries, if any."
    )
    previous_secret_expires_at: datetime | None = Field(
        None, description="Until then, deliveries also carry a signature with the previous secret."
    )
    created_at: datetime
    updated_at: datetime | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Standard Webhooks signing secret; shown only once.")


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret; shown only once.")
    previous_secret_expires_at: datetime = Field(
        description="Until then every delivery carries two signatures (new and previous secret)."
    )


class ResendOut(BaseModel):
    resent: int
    delivery_ids: list[str]


class AttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    response: str | None = None


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event_type: str
    event_id: str
    msg_id: str
    order_key: str
    seq: int
    status: str = Field(
        description="pending, succeeded, failed (the endpoint answered 410) or dead (retries "
        "exhausted, or the endpoint disabled or deleted); dead ones can be re-sent."
    )
    attempt_count: int = 0
    resend_count: int = 0
    attempts: list[AttemptOut] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Tenant:
    org_id: str
    workspace_id: str


def tenant(request: Request) -> Tenant:
    org = request.headers.get("x-outbound-org-id", "").strip()
    ws = request.headers.get("x-outbound-workspace-id", "").strip()
    if not org:
        raise HTTPException(400, "missing X-Outbound-Org-Id header")
    if not ws:
        raise HTTPException(400, "missing X-Outbound-Workspace-Id header")
    return Tenant(org, ws)


TenantDep = Annotated[Tenant, Depends(tenant)]


def webhook_out(doc: Doc) -> WebhookOut:
    return WebhookOut(
        id=doc["_id"],
        **{
            k: doc.get(k)
            for k in (
                "url",
                "events",
                "enabled",
                "description",
                "status",
                "failing_since",
                "previous_secret_expires_at",
                "created_at",
                "updated_at",
            )
        },
    )


def delivery_out(doc: Doc) -> DeliveryOut:
    fields = {k: v for k, v in doc.items() if k in DeliveryOut.model_fields}
    return DeliveryOut(id=doc["_id"], webhook_id=doc["subscription_id"], **fields)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Validation errors as one readable ``detail`` string, like every other 4xx here."""
    errors: list[Any] = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    msg = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
        for e in errors
    )
    return JSONResponse({"detail": msg or "invalid request"}, status_code=422)


def build_router(
    *,
    repo: WebhookRepository,
    handlers: WebhookHandlers,
    sender: Sender,
    settings: WebhookSettings,
    clock: Clock,
) -> APIRouter:
    router = APIRouter(prefix="/internal/v1/webhooks", tags=["webhooks"])

    async def checked_url(url: str) -> str:
        try:
            await check_url(
                url.strip(),
                allow_private=settings.allow_private_urls,
                require_https=settings.require_https,
            )
        except UnsafeURL as exc:
            raise HTTPException(422, str(exc)) from exc
        return url.strip()

    def checked_events(events: list[str] | None) -> list[str]:
        try:
            return normalize_filters(events)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    async def owned(t: Tenant, webhook_id: str) -> Doc:
        doc = await repo.get_subscription(workspace_id=t.workspace_id, subscription_id=webhook_id)
        if doc is None or doc.get("org_id") != t.org_id:
            raise HTTPException(404, "webhook not found")
        return doc

    @router.post("", status_code=201, response_model=WebhookCreated)
    async def create(body: WebhookCreate, t: TenantDep) -> WebhookCreated:
        now = clock.now()
        doc: Doc = {
            "_id": new_id("wh"),
            "org_id": t.org_id,
            "workspace_id": t.workspace_id,
            "url": await checked_url(body.url),
            "events": checked_events(body.events),
            "enabled": body.enabled,
            "description": body.description,
            "status": "active" if body.enabled else "disabled",
            "secret": new_secret(),
            "delivery_seq": 0,
            "created_at": now,
            "updated_at": now,
        }
        await repo.create_subscription(doc=doc)
        return WebhookCreated(**webhook_out(doc).model_dump(), secret=doc["secret"])

    @router.get("", response_model=list[WebhookOut])
    async def list_webhooks(t: TenantDep) -> list[WebhookOut]:
        docs = await repo.list_subscriptions(workspace_id=t.workspace_id)
        docs.sort(key=lambda d: d["created_at"])
        return [webhook_out(d) for d in docs if d.get("org_id") == t.org_id]

    @router.get("/{webhook_id}", response_model=WebhookOut)
    async def get_webhook(webhook_id: str, t: TenantDep) -> WebhookOut:
        return webhook_out(await owned(t, webhook_id))

    @router.patch("/{webhook_id}", response_model=WebhookOut)
    async def update(webhook_id: str, body: WebhookUpdate, t: TenantDep) -> WebhookOut:
        await owned(t, webhook_id)
        changes: Doc = {"updated_at": clock.now()}
        if body.url is not None:
            changes["url"] = await checked_url(body.url)
        if body.events is not None:
            changes["events"] = checked_events(body.events)
        if body.description is not None:
            changes["description"] = body.description
        if body.enabled is not None:
            changes["enabled"] = body.enabled
            changes["status"] = "active" if body.enabled else "disabled"
            if body.enabled:
                changes["failing_since"] = None
        doc = await repo.update_subscription(
            workspace_id=t.workspace_id, subscription_id=webhook_id, changes=changes
        )
        if doc is None:
            raise HTTPException(404, "webhook not found")
        return webhook_out(doc)

    @router.delete("/{webhook_id}", status_code=204)
    async def delete(webhook_id: str, t: TenantDep) -> Response:
        await owned(t, webhook_id)
        await repo.delete_subscription(workspace_id=t.workspace_id, subscription_id=webhook_id)
        return Response(status_code=204)

    @router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut])
    async def deliveries(
        webhook_id: str,
        t: TenantDep,
        limit: int | None = None,
        status: Annotated[DeliveryStatus | None, Query()] = None,
    ) -> list[DeliveryOut]:
        await owned(t, webhook_id)
        n = max(1, min(limit or settings.deliveries_page_size, 500))
        docs = await repo.list_deliveries(subscription_id=webhook_id, limit=n, status=status)
        return [delivery_out(d) for d in docs]

    @router.post("/{webhook_id}/deliveries/resend", response_model=ResendOut)
    async def resend_dead(webhook_id: str, t: TenantDep) -> ResendOut:
        """Re-send every dead delivery of the endpoint (up to 1000 per call)."""
        await owned(t, webhook_id)
        ids = await repo.dead_ids(subscription_id=webhook_id, limit=1000)
        resent = []
        for delivery_id in ids:
            doc = await repo.resend(
                subscription_id=webhook_id, delivery_id=delivery_id, now=clock.now()
            )
            if doc is not None:
                resent.append(delivery_id)
        if resent:
            sender.kick()
        return ResendOut(resent=len(resent), delivery_ids=resent)

    @router.post("/{webhook_id}/deliveries/{delivery_id}/resend", response_model=DeliveryOut)
    async def resend_one(webhook_id: str, delivery_id: str, t: TenantDep) -> DeliveryOut:
        await owned(t, webhook_id)
        doc = await repo.resend(
            subscription_id=webhook_id, delivery_id=delivery_id, now=clock.now()
        )
        if doc is None:
            found = await repo.get_delivery(delivery_id=delivery_id)
            if found is None or found.get("subscription_id") != webhook_id:
                raise HTTPException(404, "delivery not found")
            raise HTTPException(
                409, f"delivery is {found.get('status')}; only dead or failed ones can be re-sent"
            )
        sender.kick()
        return delivery_out(doc)

    @router.post("/{webhook_id}/rotate-secret", response_model=SecretRotated)
    async def rotate_secret(webhook_id: str, t: TenantDep) -> SecretRotated:
        sub = await owned(t, webhook_id)
        now = clock.now()
        expires = now + timedelta(seconds=settings.secret_rotation_grace_seconds)
        secret = new_secret()
        doc = await repo.rotate_secret(
            workspace_id=t.workspace_id,
            subscription_id=webhook_id,
            secret=secret,
            previous_secret=sub["secret"],
            previous_expires_at=expires,
            at=now,
        )
        if doc is None:
            raise HTTPException(404, "webhook not found")
        return SecretRotated(id=webhook_id, secret=secret, previous_secret_expires_at=expires)

    @router.post("/{webhook_id}/test", response_model=DeliveryOut)
    async def test(webhook_id: str, t: TenantDep) -> DeliveryOut:
        sub = await owned(t, webhook_id)
        doc = await handlers.create_ping(sub=sub, ping_id=new_id("evt"))
        sent = await sender.send_now(doc)
        return delivery_out(sent or doc)

    return router
