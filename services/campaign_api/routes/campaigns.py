from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from campaign_api.auth import Auth
from campaign_api.campaigns import CampaignService
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository
from campaign_api.routes import examples
from campaign_api.schemas import CampaignIn, CampaignPatch
from campaign_api.views import attempt_view, campaign_view, lead_view

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
IDEMPOTENCY_TTL = timedelta(hours=24)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _svc(request: Request) -> CampaignService:
    svc: CampaignService = request.app.state.campaigns
    return svc


def _repo(request: Request) -> ApiRepository:
    repo: ApiRepository = request.app.state.repo
    return repo


OnError = Annotated[
    Literal["reject", "skip"],
    Query(
        description="`reject`: any bad contact rejects the request (422 listing every problem); "
        "`skip`: the good contacts are added and the bad ones reported in `skipped`."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description="Replays the campaign created with the same key in the last 24 hours "
        "(answered with `Idempotent-Replayed: true`) instead of creating another.",
    ),
]


async def replay(request: Request, who: Auth, key: str | None) -> JSONResponse | None:
    """The campaign an earlier request with this ``Idempotency-Key`` created (24 h)."""
    if not key:
        return None
    repo = _repo(request)
    now = request.app.state.runtime.clock.now()
    prior = await repo.idempotency.find_one(
        {"_id": f"{who.workspace_id}:{key}", "at": {"$gt": now - IDEMPOTENCY_TTL}}
    )
    if prior is None:
        return None
    doc = await repo.campaign(workspace_id=who.workspace_id, campaign_id=prior["campaign_id"])
    if doc is None:
        return None
    return JSONResponse(
        campaign_view(doc), status_code=201, headers={"Idempotent-Replayed": "true"}
    )


async def created(
    request: Request, who: Auth, key: str | None, doc: dict[str, Any]
) -> JSONResponse:
    """Remember the key (one older than 24 h now names this campaign) and answer 201."""
    if key:
        await _repo(request).idempotency.update_one(
            {"_id": f"{who.workspace_id}:{key}"},
            {"$set": {"campaign_id": doc["_id"], "at": doc["created_at"]}},
            upsert=True,
        )
    view = campaign_view(doc)
    if doc.get("skipped"):
        view["skipped"] = doc["skipped"]
    return JSONResponse(view, status_code=201)


@router.post(
    "",
    status_code=201,
    summary="Create a campaign",
    response_description="The new campaign (status `scheduled`).",
    responses={201: {"content": {"application/json": {"example": examples.CAMPAIGN_CREATED}}}},
)
async def create_campaign(
    body: CampaignIn,
    who: Auth,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    on_error: OnError = "reject",
) -> JSONResponse:
    prior = await replay(request, who, idempotency_key)
    if prior is not None:
        return prior
    doc = await _svc(request).create(who=who, body=body, skip_errors=on_error == "skip")
    return await created(request, who, idempotency_key, doc)


@router.get(
    "",
    summary="List campaigns, newest first",
    responses={200: {"content": {"application/json": {"example": examples.CAMPAIGN_LIST}}}},
)
async def list_campaigns(
    who: Auth,
    request: Request,
    status: str | None = None,
    created_from: Annotated[
        str | None,
        Query(alias="from", description="ISO 8601 date or time: created on or after it."),
    ] = None,
    created_to: Annotated[
        str | None,
        Query(alias="to", description="ISO 8601 date or time: created on or before it."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    docs, total = await _repo(request).list_campaigns(
        workspace_id=who.workspace_id,
        status=status,
        created_from=_instant(created_from, "from", end_of_day=False),
        created_to=_instant(created_to, "to", end_of_day=True),
        limit=limit,
        offset=offset,
    )
    rate = await _repo(request).rate_of(workspace_id=who.workspace_id)
    return {
        "data": [campaign_view(d, rate=rate) for d in docs],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/{campaign_id}",
    summary="Get a campaign with its counters",
    description="Every figure comes from counters kept as events arrive; nothing is counted "
    "on request.",
    responses={200: {"content": {"application/json": {"example": examples.CAMPAIGN_DETAIL}}}},
)
async def get_campaign(campaign_id: str, who: Auth, request: Request) -> dict[str, Any]:
    doc = await _campaign(request, who, campaign_id)
    rate = await _repo(request).rate_of(workspace_id=who.workspace_id)
    return campaign_view(doc, rate=rate, today=request.app.state.runtime.clock.now())


@router.patch(
    "/{campaign_id}",
    summary="Start, pause, resume, stop or restart a campaign, or change its settings",
    responses={200: {"content": {"application/json": {"example": examples.CAMPAIGN_CREATED}}}},
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


@router.get(
    "/{campaign_id}/leads",
    summary="The campaign's leads and their state",
    responses={200: {"content": {"application/json": {"example": examples.LEADS}}}},
)
async def list_leads(
    campaign_id: str,
    who: Auth,
    request: Request,
    status: str | None = None,
    disposition: Annotated[str | None, Query(description="Last disposition.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    await _campaign(request, who, campaign_id)
    docs, total = await _repo(request).leads_of(
        campaign_id=campaign_id,
        status=status,
        disposition=disposition,
        limit=limit,
        offset=offset,
    )
    return {"data": [lead_view(d) for d in docs], "total": total, "limit": limit, "offset": offset}


@router.get(
    "/{campaign_id}/leads/{lead_id}",
    summary="A lead with every call attempt",
    responses={200: {"content": {"application/json": {"example": examples.LEAD_DETAIL}}}},
)
async def get_lead(campaign_id: str, lead_id: str, who: Auth, request: Request) -> dict[str, Any]:
    await _campaign(request, who, campaign_id)
    repo = _repo(request)
    lead = await repo.lead(campaign_id=campaign_id, lead_id=lead_id)
    if lead is None:
        raise Problem(404, "Not found", f"lead {lead_id} not found")
    rate = await repo.rate_of(workspace_id=who.workspace_id)
    calls = await repo.calls_of(task_id=lead_id)
    return {**lead_view(lead), "calls": [attempt_view(c, rate=rate) for c in calls]}


def escape_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


EXPORT_COLUMNS = [
    "lead_id",
    "name",
    "status",
    "last_disposition",
    "current_phone",
    "phones",
    "attempts",
    "pass",
    "next_attempt_at",
    "reason",
]


@router.get(
    "/{campaign_id}/export.csv",
    summary="Stream the campaign's results as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_csv(campaign_id: str, who: Auth, request: Request) -> StreamingResponse:
    await _campaign(request, who, campaign_id)
    repo = _repo(request)
    # variables become columns; their names come from the first leads
    first, _ = await repo.leads_of(campaign_id=campaign_id, status=None, limit=50, offset=0)
    var_names = sorted({k for d in first for k in d.get("variables", {})})

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*EXPORT_COLUMNS, *var_names])
        n = 0
        async for d in repo.all_leads(campaign_id=campaign_id):
            v = lead_view(d)
            cells = [
                v["id"],
                v["name"],
                v["status"],
                v["last_disposition"],
                v["current_phone"],
                " ".join(v["phones"]),
                v["attempts"],
                v["pass"],
                v["next_attempt_at"],
                v["reason"],
                *(v["variables"].get(k, "") for k in var_names),
            ]
            writer.writerow([escape_cell(c) for c in cells])
            n += 1
            if n % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}.csv"'},
    )


def _instant(value: str | None, name: str, *, end_of_day: bool) -> datetime | None:
    """``2027-01-31`` is a whole day (``to`` includes it); a time is taken as given (UTC if
    naive)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Problem(
            422,
            "Invalid request",
            f"{name}: {value!r} is not an ISO 8601 date or time",
            [{"field": name, "message": "not an ISO 8601 date or time"}],
        ) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _campaign(request: Request, who: Auth, campaign_id: str) -> dict[str, Any]:
    doc = await _repo(request).campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
    if doc is None:
        raise Problem(404, "Not found", f"campaign {campaign_id} not found")
    return doc
