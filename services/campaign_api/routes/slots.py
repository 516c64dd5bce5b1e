"""Slot settings of the caller's org: the org total, each workspace's allocation (hard or soft)
and caller-number pacing. Reading needs any key of the org; changing needs an org-admin key.

Every change stores the whole configuration with a new revision and publishes it as
``slots.configured`` on allocator.v1 (keyed by org_id), which the allocator applies at once."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from campaign_api.auth import Auth, Principal
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository
from outbound_core.events import SlotsConfigured, WorkspaceSlotsConfig
from outbound_core.outbox import Outbox, Outgoing
from outbound_core.topics import ALLOCATOR

router = APIRouter(tags=["slots"])
Doc = dict[str, Any]


class OrgSlotsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_slots: int = Field(ge=0, le=100_000, description="Simultaneous calls of the org.")
    number_cps: dict[str, float] | None = Field(
        None, description="Calls-per-second limit per caller number; omitted = unchanged."
    )
    default_cps: float | None = Field(
        None, gt=0, description="Calls-per-second limit of every other caller number."
    )


class WorkspaceSlotsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allocation: int = Field(ge=0, le=100_000, description="Slots reserved for the workspace.")
    mode: Literal["hard", "soft"] = Field(
        "soft", description="hard: never exceeded; soft: may borrow slots others leave idle."
    )


def _settings(request: Request) -> AsyncCollection[Doc]:
    repo: ApiRepository = request.app.state.repo
    return repo.db["slot_settings"]


def _admin(who: Principal) -> None:
    if who.role != "org_admin":
        raise Problem(403, "Forbidden", "changing slot settings needs an org-admin API key")


def _view(doc: Doc | None) -> dict[str, Any]:
    doc = doc or {}
    return {
        "total_slots": doc.get("total_slots"),
        "workspaces": [
            {"workspace_id": ws, **conf} for ws, conf in sorted(doc.get("workspaces", {}).items())
        ],
        "number_cps": doc.get("number_cps", {}),
        "default_cps": doc.get("default_cps"),
        "revision": doc.get("revision", 0),
    }


def _check_sum(total: int | None, workspaces: dict[str, Doc]) -> None:
    allocated = sum(int(c["allocation"]) for c in workspaces.values())
    if total is not None and allocated > total:
        raise Problem(
            422,
            "Invalid request",
            f"workspace allocations sum to {allocated}, more than the org total of {total}",
            [{"field": "allocation", "message": "sum of allocations exceeds the org total"}],
        )


async def _save(request: Request, who: Principal, prior: Doc | None, new: Doc) -> Doc:
    coll = _settings(request)
    revision = (prior or {}).get("revision", 0) + 1
    doc = {**new, "_id": who.org_id, "revision": revision}
    if prior is None:
        try:
            await coll.insert_one(doc)
        except DuplicateKeyError as exc:  # a concurrent first write
            raise Problem(409, "Conflict", "slot settings changed meanwhile; retry") from exc
    else:
        res = await coll.replace_one({"_id": who.org_id, "revision": prior["revision"]}, doc)
        if res.modified_count != 1:
            raise Problem(409, "Conflict", "slot settings changed meanwhile; retry")
    event = SlotsConfigured(
        revision=revision,
        total_slots=doc.get("total_slots"),
        workspaces=[
            WorkspaceSlotsConfig(workspace_id=ws, **conf)
            for ws, conf in sorted(doc.get("workspaces", {}).items())
        ],
        number_cps=doc.get("number_cps", {}),
        default_cps=doc.get("default_cps"),
    )
    outbox: Outbox = request.app.state.outbox
    bus = request.app.state.runtime.bus
    env = bus.envelope(event, org_id=who.org_id, workspace_id=who.workspace_id)
    await outbox.publish([Outgoing(ALLOCATOR, env, who.org_id)])
    return doc


@router.get("/v1/slots", summary="The org's slot settings")
async def get_slots(who: Auth, request: Request) -> dict[str, Any]:
    return _view(await _settings(request).find_one({"_id": who.org_id}))


@router.put("/v1/slots", summary="Set the org total and caller-number pacing (org admin)")
async def put_slots(body: OrgSlotsIn, who: Auth, request: Request) -> dict[str, Any]:
    _admin(who)
    prior = await _settings(request).find_one({"_id": who.org_id})
    workspaces: dict[str, Doc] = (prior or {}).get("workspaces", {})
    _check_sum(body.total_slots, workspaces)
    new: Doc = {
        "total_slots": body.total_slots,
        "workspaces": workspaces,
        "number_cps": body.number_cps
        if body.number_cps is not None
        else (prior or {}).get("number_cps", {}),
        "default_cps": body.default_cps,
    }
    return _view(await _save(request, who, prior, new))


@router.put(
    "/v1/workspaces/{workspace_id}/slots",
    summary="Set a workspace's slot allocation, hard or soft (org admin)",
)
async def put_workspace_slots(
    workspace_id: str, body: WorkspaceSlotsIn, who: Auth, request: Request
) -> dict[str, Any]:
    _admin(who)
    repo: ApiRepository = request.app.state.repo
    ws = await repo.workspaces.find_one({"_id": workspace_id, "org_id": who.org_id})
    if ws is None:
        raise Problem(404, "Not found", f"workspace {workspace_id} not found in this org")
    prior = await _settings(request).find_one({"_id": who.org_id})
    total = (prior or {}).get("total_slots")
    if total is None:
        raise Problem(
            409, "Conflict", "set the org total first (PUT /v1/slots) before allocating slots"
        )
    workspaces = {**(prior or {}).get("workspaces", {}), workspace_id: body.model_dump()}
    _check_sum(total, workspaces)
    new = {**(prior or {}), "workspaces": workspaces}
    new.pop("_id", None)
    return _view(await _save(request, who, prior, new))
