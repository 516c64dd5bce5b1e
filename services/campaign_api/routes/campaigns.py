from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from campaign_api.auth import Auth
from campaign_api.campaigns import CampaignService, _iso, campaign_view
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository
from campaign_api.schemas import CampaignIn, CampaignPatch

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


def _svc(request: Request) -> CampaignService:
    svc: CampaignService = request.app.state.campaigns
    return svc


def _repo(request: Request) -> ApiRepository:
    repo: ApiRepository = request.app.state.repo
    return repo


@router.post("", status_code=201, summary="Create a campaign")
async def create_campaign(
    body: CampaignIn,
    who: Auth,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    repo = _repo(request)
    if idempotency_key:
        prior = await repo.db["idempotency"].find_one(
            {"_id": f"{who.workspace_id}:{idempotency_key}"}
        )
        if prior is not None:
            doc = await repo.campaign(
                workspace_id=who.workspace_id, campaign_id=prior["campaign_id"]
            )
            if doc is not None:
                return JSONResponse(
                    campaign_view(doc), status_code=201, headers={"Idempotent-Replayed": "true"}
                )
    doc = await _svc(request).create(who=who, body=body)
    if idempotency_key:
        await repo.db["idempotency"].update_one(
            {"_id": f"{who.workspace_id}:{idempotency_key}"},
            {"$setOnInsert": {"campaign_id": doc["_id"], "at": doc["created_at"]}},
            upsert=True,
        )
    return JSONResponse(campaign_view(doc), status_code=201)


@router.get("", summary="List campaigns, newest first")
async def list_campaigns(
    who: Auth,
    request: Request,
    status: str | None = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    docs, total = await _repo(request).list_campaigns(
        workspace_id=who.workspace_id,
        status=status,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        offset=offset,
    )
    return {
        "data": [campaign_view(d) for d in docs],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/{campaign_id}", summary="Get a campaign with its counters")
async def get_campaign(campaign_id: str, who: Auth, request: Request) -> dict[str, Any]:
    doc = await _repo(request).campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
    if doc is None:
        raise Problem(404, "Not found", f"campaign {campaign_id} not found")
    return campaign_view(doc)


@router.patch(
    "/{campaign_id}",
    summary="Start, pause, resume, stop or restart a campaign, or change its settings",
)
async def act_on_campaign(
    campaign_id: str, body: CampaignPatch, who: Auth, request: Request
) -> dict[str, Any]:
    settings = body.settings()
    if body.action is not None and settings:
        raise Problem(422, "Invalid request", "give either an action or settings, not both")
    if body.action is None:
        doc = await _svc(request).update_settings(
            who=who, campaign_id=campaign_id, settings=settings
        )
    else:
        doc = await _svc(request).act(
            who=who, campaign_id=campaign_id, action=body.action, reason=body.reason
        )
    return campaign_view(doc)


@router.get("/{campaign_id}/leads", summary="The campaign's leads and their state")
async def list_leads(
    campaign_id: str,
    who: Auth,
    request: Request,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    repo = _repo(request)
    if await repo.campaign(workspace_id=who.workspace_id, campaign_id=campaign_id) is None:
        raise Problem(404, "Not found", f"campaign {campaign_id} not found")
    docs, total = await repo.leads_of(
        campaign_id=campaign_id, status=status, limit=limit, offset=offset
    )
    return {"data": [_lead_view(d) for d in docs], "total": total, "limit": limit, "offset": offset}


def _lead_view(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "campaign_id": d["campaign_id"],
        "status": d.get("status"),
        "name": d.get("name", ""),
        "last_disposition": d.get("last_disposition"),
        "current_phone": d.get("current_phone"),
        "phone_index": d.get("phone_index", 0),
        "pass": d.get("pass_number", 1),
        "attempts": d.get("attempt", 0),
        "next_attempt_at": _iso(d.get("next_attempt_at")),
        "reason": d.get("reason"),
        "variables": d.get("variables", {}),
    }
