"""``/v1/suppressions``: the org's opt-out / do-not-call list. Authenticated here, served by the
disposition service, which owns the list (campaign-api never stores it)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from campaign_api.auth import Auth
from campaign_api.problems import Problem

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])


class SuppressionsIn(BaseModel):
    phones: list[str] = Field(
        min_length=1, max_length=10_000, examples=[["+12125550123", "+442071838750"]]
    )
    reason: str = Field("api", max_length=200, description="Kept with each number added.")


async def _forward(
    request: Request, who: Auth, method: str, path: str, body: dict[str, Any] | None = None
) -> Response:
    return await forward(request, who, method, f"/internal/v1/suppressions{path}", body)


async def forward(
    request: Request, who: Auth, method: str, path: str, body: dict[str, Any] | None = None
) -> Response:
    """Pass an authenticated request on to the disposition service's internal API."""
    client: httpx.AsyncClient = request.app.state.disposition_client
    try:
        upstream = await client.request(
            method,
            path,
            json=body,
            headers={
                "X-Outbound-Org-Id": who.org_id,
                "X-Outbound-Workspace-Id": who.workspace_id,
            },
        )
    except httpx.HTTPError as exc:
        raise Problem(
            503, "Service unavailable", f"disposition service unreachable: {exc}"
        ) from exc
    if upstream.status_code >= 400:
        try:
            detail = upstream.json().get("detail", upstream.text)
        except ValueError:
            detail = upstream.text
        raise Problem(upstream.status_code, "Request rejected", str(detail))
    return Response(
        upstream.content, status_code=upstream.status_code, media_type="application/json"
    )


@router.get("/{phone}", summary="Is this number on the org's suppression list, and why")
async def get_one(phone: str, request: Request, who: Auth) -> Response:
    return await _forward(request, who, "GET", f"/{phone}")


@router.post("", summary="Add numbers to the org's suppression list (never dialled again)")
async def add(body: SuppressionsIn, request: Request, who: Auth) -> Response:
    return await _forward(request, who, "POST", "", body.model_dump())


@router.delete("", summary="Remove numbers from the org's suppression list")
async def remove(body: SuppressionsIn, request: Request, who: Auth) -> Response:
    return await _forward(request, who, "DELETE", "", body.model_dump())
