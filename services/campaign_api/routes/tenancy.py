"""Workspaces and their API keys, managed with an org-admin key."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from campaign_api.auth import Auth, Principal, require_org_admin
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository, Doc
from campaign_api.tenancy import create_key, create_workspace, key_view, workspace_view

router = APIRouter(prefix="/v1/workspaces", tags=["workspaces and keys"])


class WorkspaceIn(BaseModel):
    name: str = Field(min_length=1, max_length=255, examples=["Collections"])
    per_minute_rate: float = Field(
        0.0, ge=0, description="Price per call minute, for campaign cost.", examples=[0.05]
    )


class KeyIn(BaseModel):
    name: str = Field("", max_length=255, examples=["ci pipeline"])
    role: Literal["workspace", "org_admin"] = "workspace"


def _repo(request: Request) -> ApiRepository:
    repo: ApiRepository = request.app.state.repo
    return repo


async def _own_workspace(request: Request, who: Principal, workspace_id: str) -> Doc:
    require_org_admin(who)
    ws = await _repo(request).workspace(org_id=who.org_id, workspace_id=workspace_id)
    if ws is None:
        raise Problem(404, "Not found", f"workspace {workspace_id} not found")
    return ws


@router.post("", status_code=201, summary="Create a workspace (org admin)")
async def post_workspace(body: WorkspaceIn, who: Auth, request: Request) -> dict[str, Any]:
    require_org_admin(who)
    doc = await create_workspace(
        _repo(request),
        org_id=who.org_id,
        name=body.name,
        per_minute_rate=body.per_minute_rate,
        now=request.app.state.runtime.clock.now(),
    )
    return workspace_view(doc)


@router.get("", summary="List the org's workspaces (org admin)")
async def get_workspaces(who: Auth, request: Request) -> dict[str, Any]:
    require_org_admin(who)
    docs = await _repo(request).workspaces_of(org_id=who.org_id)
    return {"data": [workspace_view(d) for d in docs]}


@router.post(
    "/{workspace_id}/keys",
    status_code=201,
    summary="Create an API key; the key is in this response only",
)
async def post_key(workspace_id: str, body: KeyIn, who: Auth, request: Request) -> dict[str, Any]:
    await _own_workspace(request, who, workspace_id)
    doc, key = await create_key(
        _repo(request),
        org_id=who.org_id,
        workspace_id=workspace_id,
        name=body.name,
        role=body.role,
        now=request.app.state.runtime.clock.now(),
    )
    return {**key_view(doc), "key": key}


@router.get("/{workspace_id}/keys", summary="List a workspace's keys (never the keys themselves)")
async def get_keys(workspace_id: str, who: Auth, request: Request) -> dict[str, Any]:
    await _own_workspace(request, who, workspace_id)
    docs = await _repo(request).keys_of(workspace_id=workspace_id)
    return {"data": [key_view(d) for d in docs]}


@router.delete("/{workspace_id}/keys/{key_id}", summary="Revoke a key; it answers 401 from now on")
async def delete_key(workspace_id: str, key_id: str, who: Auth, request: Request) -> dict[str, Any]:
    await _own_workspace(request, who, workspace_id)
    doc = await _repo(request).revoke_key(
        workspace_id=workspace_id, key_id=key_id, now=request.app.state.runtime.clock.now()
    )
    if doc is None:
        raise Problem(404, "Not found", f"key {key_id} not found")
    return key_view(doc)
