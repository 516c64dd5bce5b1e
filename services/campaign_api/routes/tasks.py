"""Realtime campaigns and their tasks over HTTP: ``POST /v1/campaigns/realtime``,
``POST /v1/tasks`` (one task, or up to 1,000), ``GET``/``PATCH /v1/tasks/{id}``,
``GET /v1/campaigns/{id}/tasks`` and ``POST /v1/producer-tokens`` (credentials for Kafka
producers)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campaign_api.auth import Auth, hash_key
from campaign_api.problems import Problem
from campaign_api.realtime import (
    HTTP_STATUS,
    MAX_BATCH,
    PUBLIC_STATUS,
    RejectedTask,
    effective_config,
    parse_lenient,
    public_status,
)
from campaign_api.realtime_repo import Doc, RealtimeRepository
from campaign_api.realtime_service import RealtimeService, Submitted
from campaign_api.views import attempt_view, campaign_view, iso
from outbound_core.events import SAMPLE_TASK, TasksControlled
from outbound_core.ids import new_id
from outbound_core.outbox import Outgoing
from outbound_core.phones import InvalidPhone, normalize_e164
from outbound_core.topics import CAMPAIGNS

router = APIRouter(tags=["realtime"])

TASK_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "object", "description": "One task."},
        {"type": "array", "maxItems": MAX_BATCH, "items": {"type": "object"}},
        {
            "type": "object",
            "properties": {"tasks": {"type": "array", "maxItems": MAX_BATCH}},
            "required": ["tasks"],
        },
    ],
    "example": SAMPLE_TASK,
}


class RealtimeCampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=255, examples=["Website leads"])
    agent: str = Field(description="Default agent id (/v1/agents); a task may name another.")
    max_slots: int | None = Field(None, ge=1, description="Slot limit of the campaign.")
    priority: Literal["low", "normal", "high"] = "normal"
    from_number: str | None = Field(None, alias="from", description="Default caller id.")


class TaskPatch(BaseModel):
    action: Literal["pause", "resume", "archive"]


def _svc(request: Request) -> RealtimeService:
    svc: RealtimeService = request.app.state.realtime
    return svc


def _rt(request: Request) -> RealtimeRepository:
    return _svc(request).rt


@router.post(
    "/v1/campaigns/realtime",
    status_code=201,
    summary="Create a realtime campaign (name, default agent, slot limits)",
)
async def create_realtime_campaign(
    body: RealtimeCampaignIn, who: Auth, request: Request
) -> dict[str, Any]:
    agent = await _svc(request).repo.agent(workspace_id=who.workspace_id, agent_id=body.agent)
    if agent is None:
        raise Problem(
            422,
            "Invalid request",
            f"agent {body.agent!r} does not exist in this workspace",
            [{"field": "agent", "message": "not found"}],
        )
    from_number = None
    if body.from_number:
        try:
            from_number = normalize_e164(body.from_number)
        except InvalidPhone as exc:
            raise Problem(422, "Invalid request", str(exc), [{"field": "from"}]) from exc
        if not await _rt(request).numbers_of(workspace_id=who.workspace_id, numbers=[from_number]):
            msg = f"{from_number} is not a number of this workspace (see /v1/numbers)"
            raise Problem(422, "Invalid request", msg, [{"field": "from", "message": msg}])
    doc = await _svc(request).create_campaign(
        org_id=who.org_id,
        workspace_id=who.workspace_id,
        name=body.name,
        agent=agent,
        max_slots=body.max_slots,
        priority=body.priority,
        from_number=from_number,
    )
    sample = {**SAMPLE_TASK, "agent": agent["_id"], "campaign": doc["_id"]}
    return {**campaign_view(doc), "type": "realtime", "sample_task": sample}


def _result(s: Submitted) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": s.index,
        "status": s.verdict,
        "task_id": s.task_id,
        "task_ref": s.task_ref,
    }
    if s.rejection is not None:
        out["reason"] = s.rejection.reason
        out["errors"] = [s.rejection.problem_error()]
    return out


@router.post(
    "/v1/tasks",
    summary="Submit realtime tasks: one (201) or a batch of up to 1,000 (200, one result each)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": TASK_SCHEMA}}}
    },
    responses={201: {"description": "The task"}, 200: {"description": "Per-task results"}},
)
async def submit_tasks(who: Auth, request: Request) -> JSONResponse:
    try:
        body = parse_lenient(await request.body())
    except RejectedTask as exc:
        r = exc.rejection
        raise Problem(400, "Invalid request", r.message, [r.problem_error()]) from exc
    batch: list[Any] | None = None
    if isinstance(body, list):
        batch = body
    elif isinstance(body, dict) and "tasks" in body:
        if not isinstance(body["tasks"], list):
            raise Problem(422, "Invalid request", "tasks is a list", [{"field": "tasks"}])
        batch = body["tasks"]
    if batch is not None and len(batch) > MAX_BATCH:
        raise Problem(
            413, "Too large", f"{len(batch)} tasks exceed the limit of {MAX_BATCH} per request"
        )
    svc = _svc(request)
    if batch is None:
        [s] = await svc.submit(org_id=who.org_id, workspace_id=who.workspace_id, items=[body])
        if s.rejection is not None:
            r = s.rejection
            raise Problem(
                HTTP_STATUS.get(r.reason, 422),
                "Invalid task",
                f"{r.field}: {r.message}",
                [r.problem_error()],
            )
        assert s.task_id is not None
        view = await _task_view(request, who.workspace_id, s.task_id)
        headers = {"Idempotent-Replayed": "true"} if s.verdict == "duplicate" else {}
        return JSONResponse(view, status_code=200 if headers else 201, headers=headers)
    results = await svc.submit(org_id=who.org_id, workspace_id=who.workspace_id, items=batch)
    counts = {v: sum(1 for s in results if s.verdict == v) for v in ("accepted", "duplicate")}
    return JSONResponse(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": len(results) - counts["accepted"] - counts["duplicate"],
            "results": [_result(s) for s in results],
        }
    )


async def _task_view(
    request: Request, workspace_id: str, task_id: str, *, with_calls: bool = True
) -> dict[str, Any]:
    rt = _rt(request)
    doc = await rt.task(workspace_id=workspace_id, task_id=task_id)
    if doc is None:
        raise Problem(404, "Not found", f"task {task_id} not found")
    leads = await rt.leads_by_id([task_id])
    campaigns = await rt.campaigns_by_id([doc["campaign_id"]])
    view = task_view(doc, leads.get(task_id), campaigns.get(doc["campaign_id"]))
    if with_calls:
        repo = _svc(request).repo
        rate = await repo.rate_of(workspace_id=workspace_id)
        view["calls"] = [attempt_view(c, rate=rate) for c in await repo.calls_of(task_id=task_id)]
    return view


def task_view(doc: Doc, lead: Doc | None, campaign: Doc | None) -> dict[str, Any]:
    lead = lead or {}
    state = lead.get("status") or "pending"
    return {
        "id": doc["_id"],
        "task_ref": doc.get("task_ref"),
        "campaign": doc["campaign_id"],
        "phone": doc["phone"],
        "status": public_status(state, campaign_status=(campaign or {}).get("status")),
        "state": state,
        "reason": lead.get("reason"),
        "attempts": lead.get("attempt", 0),
        "last_disposition": lead.get("last_disposition"),
        "next_attempt_at": iso(lead.get("next_attempt_at")),
        "created_at": iso(doc.get("created_at")),
        "context": doc.get("variables", {}),
        "config": effective_config(doc["config"]),
    }


@router.get("/v1/tasks/{task_id}", summary="A task with its calls and effective configuration")
async def get_task(task_id: str, who: Auth, request: Request) -> dict[str, Any]:
    return await _task_view(request, who.workspace_id, task_id)


@router.patch("/v1/tasks/{task_id}", summary="Pause, resume or archive a task")
async def patch_task(task_id: str, body: TaskPatch, who: Auth, request: Request) -> dict[str, Any]:
    view = await _task_view(request, who.workspace_id, task_id, with_calls=False)
    if view["status"] in ("completed", "archived"):
        raise Problem(409, "Conflict", f"the task is {view['status']}; it cannot be changed")
    if body.action == "resume" and view["state"] != "paused":
        raise Problem(409, "Conflict", "only a paused task can be resumed")
    svc = _svc(request)
    event = TasksControlled(campaign_id=view["campaign"], task_ids=[task_id], action=body.action)
    env = svc.bus.envelope(event, org_id=who.org_id, workspace_id=who.workspace_id)
    await svc.outbox.publish([Outgoing(CAMPAIGNS, env, view["campaign"])])
    return {**view, "requested": body.action}


@router.get("/v1/campaigns/{campaign_id}/tasks", summary="A realtime campaign's tasks")
async def list_tasks(
    campaign_id: str,
    who: Auth,
    request: Request,
    status: Annotated[
        str | None,
        Query(description="queued, in_progress, completed, paused, archived (or a finer state)"),
    ] = None,
    disposition: Annotated[str | None, Query(description="Last disposition.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    rt = _rt(request)
    campaign = (await rt.campaigns_by_id([campaign_id])).get(campaign_id)
    if campaign is None or campaign["workspace_id"] != who.workspace_id:
        raise Problem(404, "Not found", f"campaign {campaign_id} not found")
    statuses = None
    if status:
        statuses = [k for k, v in PUBLIC_STATUS.items() if v == status] or [status]
    leads, total = await rt.lead_page(
        campaign_id=campaign_id,
        statuses=statuses,
        disposition=disposition,
        limit=limit,
        offset=offset,
    )
    docs = await rt.tasks_by_id([d["_id"] for d in leads])
    data = [task_view(docs[d["_id"]], d, campaign) for d in leads if d["_id"] in docs]
    return {"data": data, "total": total, "limit": limit, "offset": offset}


class TokenIn(BaseModel):
    name: str = Field("producer", max_length=255)


@router.post(
    "/v1/producer-tokens",
    status_code=201,
    summary="A credential for a Kafka producer of this workspace (shown once)",
)
async def create_producer_token(body: TokenIn, who: Auth, request: Request) -> dict[str, Any]:
    token = f"obp_{secrets.token_urlsafe(24)}"
    doc = {
        "_id": new_id("key"),
        "hash": hash_key(token),
        "org_id": who.org_id,
        "workspace_id": who.workspace_id,
        "name": body.name,
        "role": "producer",
        "created_at": request.app.state.runtime.clock.now(),
    }
    await _rt(request).insert_token(doc)
    return {"id": doc["_id"], "workspace_id": who.workspace_id, "name": body.name, "token": token}
