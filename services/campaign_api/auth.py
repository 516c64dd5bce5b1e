"""API keys: shown once, stored as SHA-256 hashes, scoped to a workspace."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    org_id: str
    workspace_id: str
    role: str


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or not creds.credentials:
        raise Problem(401, "Unauthorized", "missing API key: send Authorization: Bearer <key>")
    repo: ApiRepository = request.app.state.repo
    doc = await repo.key_by_hash(hash_key(creds.credentials))
    if doc is None or doc.get("revoked"):
        raise Problem(401, "Unauthorized", "the API key is not valid")
    return Principal(
        key_id=doc["_id"],
        org_id=doc["org_id"],
        workspace_id=doc["workspace_id"],
        role=doc.get("role", "workspace"),
    )


Auth = Annotated[Principal, Depends(principal)]


def new_api_key() -> str:
    """A fresh key; only its hash is stored, the key itself is shown once."""
    return f"ob_{secrets.token_urlsafe(24)}"


def require_org_admin(who: Principal) -> None:
    if who.role != "org_admin":
        raise Problem(403, "Forbidden", "this needs an org-admin API key")
