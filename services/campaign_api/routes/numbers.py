"""``/v1/numbers``: the caller ids a workspace owns, each with an optional calls-per-second
limit and an optional pool name; a campaign names one (`from`) or a pool (`from_pool`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from campaign_api.auth import Auth
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository, Doc
from outbound_core.ids import new_id
from outbound_core.phones import InvalidPhone, normalize_e164

router = APIRouter(prefix="/v1/numbers", tags=["numbers"])


class NumberIn(BaseModel):
    number: str = Field(examples=["+12125550100"], description="E.164 caller id.")
    calls_per_second: float | None = Field(None, gt=0, le=1000, examples=[1.0])
    pool: str | None = Field(None, min_length=1, max_length=64, examples=["us-east"])
    label: str = Field("", max_length=255)


def _repo(request: Request) -> ApiRepository:
    repo: ApiRepository = request.app.state.repo
    return repo


def _view(d: Doc) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "number": d["number"],
        "calls_per_second": d.get("calls_per_second"),
        "pool": d.get("pool"),
        "label": d.get("label", ""),
        "created_at": d["created_at"].isoformat().replace("+00:00", "Z"),
    }


@router.post("", status_code=201, summary="Register a caller id")
async def create_number(body: NumberIn, who: Auth, request: Request) -> dict[str, Any]:
    try:
        e164 = normalize_e164(body.number)
    except InvalidPhone as exc:
        raise Problem(
            422, "Invalid request", str(exc), [{"field": "number", "message": str(exc)}]
        ) from exc
    doc: Doc = {
        "_id": new_id("num"),
        "key": f"{who.workspace_id}:{e164}",
        "workspace_id": who.workspace_id,
        "org_id": who.org_id,
        "number": e164,
        "calls_per_second": body.calls_per_second,
        "pool": body.pool,
        "label": body.label,
        "created_at": request.app.state.runtime.clock.now(),
    }
    try:
        await _repo(request).numbers.insert_one(doc)
    except DuplicateKeyError as exc:
        raise Problem(409, "Conflict", f"{e164} is already registered") from exc
    return _view(doc)


@router.get("", summary="List caller ids")
async def list_numbers(who: Auth, request: Request, pool: str | None = None) -> dict[str, Any]:
    flt: Doc = {"workspace_id": who.workspace_id}
    if pool:
        flt["pool"] = pool
    docs = [d async for d in _repo(request).numbers.find(flt).sort("number", 1)]
    return {"data": [_view(d) for d in docs]}


@router.delete("/{number_id}", status_code=204, summary="Remove a caller id")
async def delete_number(number_id: str, who: Auth, request: Request) -> None:
    res = await _repo(request).numbers.delete_one(
        {"_id": number_id, "workspace_id": who.workspace_id}
    )
    if res.deleted_count == 0:
        raise Problem(404, "Not found", f"number {number_id} not found")
