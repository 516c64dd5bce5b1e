"""``/v1/dispositions/labels``: the workspace's custom disposition labels, each terminal (the
contact is done) or retryable (tried again like no_answer). Authenticated here, served by the
disposition service, which applies them to every call of the workspace's campaigns."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from campaign_api.auth import Auth
from campaign_api.proxy import forward

router = APIRouter(prefix="/v1/dispositions/labels", tags=["dispositions"])


class LabelsIn(BaseModel):
    labels: dict[str, Literal["terminal", "retryable"]] = Field(
        max_length=200,
        examples=[{"appointment_booked": "terminal", "call_me_later": "retryable"}],
        description="The workspace's complete set of custom labels (replaces the previous one).",
    )


async def _forward(
    request: Request, who: Auth, method: str, body: dict[str, Any] | None = None
) -> Response:
    return await forward(
        request.app.state.disposition_client,
        method,
        "/internal/v1/labels",
        who=who,
        service="disposition",
        rejected="Label request rejected",
        json=body,
    )


@router.get("", summary="The workspace's custom disposition labels")
async def get_labels(request: Request, who: Auth) -> Response:
    return await _forward(request, who, "GET")


@router.put("", summary="Define the workspace's custom disposition labels")
async def put_labels(body: LabelsIn, request: Request, who: Auth) -> Response:
    return await _forward(request, who, "PUT", body.model_dump())
