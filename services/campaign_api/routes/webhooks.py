"""``/v1/webhooks``: authenticated here, served by the webhook service, which owns
subscriptions, secrets and deliveries (campaign-api never stores them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from campaign_api.auth import Auth
from campaign_api.proxy import forward

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


async def _forward(request: Request, who: Auth, path: str) -> Response:
    return await forward(
        request.app.state.webhook_client,
        request.method,
        f"/internal/v1/webhooks{path}",
        who=who,
        service="webhook",
        rejected="Webhook request rejected",
        content=await request.body(),
        params=request.query_params,
        content_type=request.headers.get("content-type", "application/json"),
    )


@router.post("", status_code=201, summary="Create a webhook endpoint (secret shown once)")
async def create(request: Request, who: Auth) -> Response:
    return await _forward(request, who, "")


@router.get("", summary="List webhook endpoints")
async def list_(request: Request, who: Auth) -> Response:
    return await _forward(request, who, "")


@router.get("/{webhook_id}", summary="Get a webhook endpoint")
@router.patch("/{webhook_id}", summary="Update a webhook endpoint")
@router.delete("/{webhook_id}", summary="Delete a webhook endpoint")
async def one(webhook_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}")


@router.get(
    "/{webhook_id}/deliveries",
    summary="Delivery log of an endpoint (?status=dead lists dead-lettered deliveries)",
)
async def deliveries(webhook_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}/deliveries")


@router.post("/{webhook_id}/test", summary="Send a ping event")
async def test(webhook_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}/test")


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate the signing secret (new secret shown once; both signed during a grace period)",
)
async def rotate_secret(webhook_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}/rotate-secret")


@router.post("/{webhook_id}/deliveries/resend", summary="Re-send every dead delivery")
async def resend_dead(webhook_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}/deliveries/resend")


@router.post("/{webhook_id}/deliveries/{delivery_id}/resend", summary="Re-send one dead delivery")
async def resend_one(webhook_id: str, delivery_id: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, f"/{webhook_id}/deliveries/{delivery_id}/resend")
