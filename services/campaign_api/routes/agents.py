from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from campaign_api.auth import Auth
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository
from campaign_api.schemas import AgentIn
from outbound_core.ids import new_id

router = APIRouter(tags=["agents"])


def _view(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "name": d["name"],
        "language": d["language"],
        "greeting": d["greeting"],
        "system_prompt": d["system_prompt"],
        "voicemail_message": d["voicemail_message"],
        "created_at": d["created_at"].isoformat().replace("+00:00", "Z"),
    }


@router.post("/v1/agents", status_code=201, summary="Create a voice agent (script)")
@router.post("/v1/scripts", status_code=201, include_in_schema=False)
async def create_agent(body: AgentIn, who: Auth, request: Request) -> dict[str, Any]:
    repo: ApiRepository = request.app.state.repo
    doc = {
        "_id": new_id("agt"),
        "workspace_id": who.workspace_id,
        "org_id": who.org_id,
        **body.model_dump(),
        "created_at": request.app.state.runtime.clock.now(),
    }
    await repo.insert_agent(doc)
    return _view(doc)


@router.get("/v1/agents", summary="List voice agents")
@router.get("/v1/scripts", include_in_schema=False)
async def list_agents(who: Auth, request: Request) -> dict[str, Any]:
    repo: ApiRepository = request.app.state.repo
    return {"data": [_view(d) for d in await repo.agents_of(workspace_id=who.workspace_id)]}


@router.get("/v1/agents/{agent_id}", summary="Get a voice agent")
@router.get("/v1/scripts/{agent_id}", include_in_schema=False)
async def get_agent(agent_id: str, who: Auth, request: Request) -> dict[str, Any]:
    repo: ApiRepository = request.app.state.repo
    doc = await repo.agent(workspace_id=who.workspace_id, agent_id=agent_id)
    if doc is None:
        raise Problem(404, "Not found", f"agent {agent_id} not found")
    return _view(doc)
