"""Orgs, workspaces and API keys: the documents and the one-time key reveal, shared by the
HTTP routes and the ``outbound-admin`` command line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaign_api.auth import hash_key, new_api_key
from campaign_api.repository import ApiRepository, Doc
from outbound_core.ids import new_id


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def workspace_view(d: Doc) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "org_id": d["org_id"],
        "name": d["name"],
        "per_minute_rate": d.get("per_minute_rate", 0.0),
        "created_at": _iso(d.get("created_at")),
    }


def key_view(d: Doc) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "workspace_id": d["workspace_id"],
        "name": d.get("name", ""),
        "role": d.get("role", "workspace"),
        "prefix": d.get("prefix", ""),
        "revoked": bool(d.get("revoked", False)),
        "created_at": _iso(d.get("created_at")),
    }


async def create_workspace(
    repo: ApiRepository, *, org_id: str, name: str, per_minute_rate: float, now: datetime
) -> Doc:
    doc: Doc = {
        "_id": new_id("ws"),
        "org_id": org_id,
        "name": name,
        "per_minute_rate": per_minute_rate,
        "created_at": now,
    }
    await repo.insert_workspace(doc)
    return doc


async def create_key(
    repo: ApiRepository, *, org_id: str, workspace_id: str, name: str, role: str, now: datetime
) -> tuple[Doc, str]:
    """The stored document and the key itself (returned to the caller once, never stored)."""
    key = new_api_key()
    doc: Doc = {
        "_id": new_id("key"),
        "hash": hash_key(key),
        "prefix": key[:7],
        "org_id": org_id,
        "workspace_id": workspace_id,
        "role": role,
        "name": name,
        "created_at": now,
    }
    await repo.insert_key(doc)
    return doc, key


async def create_org(
    repo: ApiRepository, *, name: str, workspace: str, now: datetime
) -> tuple[str, Doc, str]:
    """A new org with its first workspace and an org-admin key: (org id, workspace, key)."""
    org_id = new_id("org")
    await repo.create_org(org_id=org_id, name=name, now=now)
    ws = await create_workspace(repo, org_id=org_id, name=workspace, per_minute_rate=0.0, now=now)
    _, key = await create_key(
        repo, org_id=org_id, workspace_id=ws["_id"], name="admin", role="org_admin", now=now
    )
    return org_id, ws, key
