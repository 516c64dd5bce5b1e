"""Internal HTTP API of the suppression list, reached through campaign-api (which
authenticates the caller and passes the org in ``X-Outbound-Org-Id``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, Field

from disposition.domain import CustomKind, canonical_label
from disposition.repository import DispositionRepository
from outbound_core.events import SuppressionAdded, SuppressionRemoved
from outbound_core.kafka import EventBus
from outbound_core.phones import normalize_e164
from outbound_core.topics import SUPPRESSIONS

router = APIRouter(prefix="/internal/v1/suppressions", tags=["internal"])

OrgId = Annotated[str, Header(alias="X-Outbound-Org-Id")]
WorkspaceId = Annotated[str, Header(alias="X-Outbound-Workspace-Id")]


class PhonesIn(BaseModel):
    phones: list[str] = Field(min_length=1, max_length=10_000)
    reason: str = Field("api", max_length=200)


def _normalise(phones: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    ok: list[str] = []
    bad: list[dict[str, str]] = []
    for raw in phones:
        try:
            ok.append(normalize_e164(raw))
        except ValueError as exc:
            bad.append({"phone": raw, "error": str(exc)})
    return list(dict.fromkeys(ok)), bad


def _deps(request: Request) -> tuple[DispositionRepository, EventBus]:
    return request.app.state.repo, request.app.state.runtime.bus


@router.get("/{phone}")
async def get_one(phone: str, request: Request, org_id: OrgId) -> dict[str, Any]:
    repo, _ = _deps(request)
    try:
        e164 = normalize_e164(phone)
    except ValueError as exc:
        raise HTTPException(422, f"not a phone number: {exc}") from exc
    doc = await repo.suppression(org_id=org_id, phone=e164)
    if doc is None:
        return {"phone": e164, "suppressed": False, "reason": None, "since": None}
    return {
        "phone": e164,
        "suppressed": True,
        "reason": doc.get("reason"),
        "source": doc.get("source"),
        "since": doc["at"].isoformat().replace("+00:00", "Z") if doc.get("at") else None,
    }


@router.post("")
async def add(body: PhonesIn, request: Request, org_id: OrgId, ws: WorkspaceId) -> dict[str, Any]:
    repo, bus = _deps(request)
    phones, invalid = _normalise(body.phones)
    added = 0
    for phone in phones:
        if await repo.suppress(org_id=org_id, phone=phone, reason=body.reason, at=bus.now()):
            added += 1
        # Announced even when already listed: the planner and dialer converge either way.
        await bus.emit(
            SUPPRESSIONS,
            SuppressionAdded(phone=phone, reason=body.reason),
            key=org_id,
            org_id=org_id,
            workspace_id=ws,
        )
    return {"added": added, "already_suppressed": len(phones) - added, "invalid": invalid}


@router.delete("")
async def remove(
    body: PhonesIn, request: Request, org_id: OrgId, ws: WorkspaceId
) -> dict[str, Any]:
    repo, bus = _deps(request)
    phones, invalid = _normalise(body.phones)
    removed = 0
    for phone in phones:
        if await repo.unsuppress(org_id=org_id, phone=phone):
            removed += 1
        await bus.emit(
            SUPPRESSIONS,
            SuppressionRemoved(phone=phone),
            key=org_id,
            org_id=org_id,
            workspace_id=ws,
        )
    return {"removed": removed, "not_found": len(phones) - removed, "invalid": invalid}


labels_router = APIRouter(prefix="/internal/v1/labels", tags=["internal"])


class LabelsIn(BaseModel):
    labels: dict[str, CustomKind] = Field(max_length=200)


@labels_router.get("")
async def get_labels(request: Request, ws: WorkspaceId) -> dict[str, Any]:
    repo, _ = _deps(request)
    return {"labels": await repo.labels_of(workspace_id=ws)}


@labels_router.put("")
async def put_labels(
    body: LabelsIn, request: Request, org_id: OrgId, ws: WorkspaceId
) -> dict[str, Any]:
    repo, _ = _deps(request)
    labels: dict[str, str] = {}
    for raw, kind in body.labels.items():
        label, custom = canonical_label(raw)
        if label is None:
            raise HTTPException(422, f"labels: {raw!r} is empty")
        if not custom:
            raise HTTPException(
                422, f"labels: {raw!r} is the canonical label {label!r}; pick another name"
            )
        labels[label] = kind
    await repo.set_labels(org_id=org_id, workspace_id=ws, labels=labels)
    return {"labels": labels}
