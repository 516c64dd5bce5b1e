"""``/v1/suppressions``: the org's opt-out / do-not-call list. Authenticated here, served by the
disposition service, which owns the list (campaign-api never stores it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from campaign_api.auth import Auth
from campaign_api.proxy import forward

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])


class SuppressionsIn(BaseModel):
    phones: list[str] = Field(
        min_length=1, max_length=10_000, examples=[["+12125550123", "+442071838750"]]
    )
    reason: str = Field("api", max_length=200, description="Kept with each number added.")


async def _forward(
    request: Request, who: Auth, method: str, path: str, body: dict[str, Any] | None = None
) -> Response:
    return await forward(
        request.app.state.disposition_client,
        method,
        f"/internal/v1/suppressions{path}",
        who=who,
        service="disposition",
        rejected="Suppression request rejected",
        json=body,
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
