"""The dialer's view of campaigns: a MongoDB projection plus an in-memory cache.

The cache holds what never changes after creation (agent, hours, numbers). The status is read
from the database at every dispatch, because with several dialer instances a status change may
be consumed by another instance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialer.repository import CampaignRepository
from outbound_core.events import CampaignCreated, CampaignUpdated, Envelope


def campaign_doc(env: Envelope, c: CampaignCreated) -> dict[str, Any]:
    return {
        "campaign_id": c.campaign_id,
        "org_id": env.org_id,
        "workspace_id": env.workspace_id,
        "name": c.name,
        "status": c.status,
        "agent": c.agent.model_dump(),
        "language": c.language,
        "voicemail_action": c.voicemail_action,
        "from_number": c.from_number,
        "calling_hours": c.calling_hours.model_dump(),
        "schedule": c.schedule.model_dump() if c.schedule else None,
    }


class CampaignProjection:
    def __init__(self, repo: CampaignRepository) -> None:
        self.repo = repo
        self._cache: dict[str, dict[str, Any]] = {}

    async def created(self, env: Envelope, c: CampaignCreated) -> None:
        doc = campaign_doc(env, c)
        await self.repo.upsert_created(campaign_id=c.campaign_id, doc=doc)
        self._cache.pop(c.campaign_id, None)  # reloaded with the stored status on next use

    async def updated(self, c: CampaignUpdated) -> None:
        fields = {
            "calling_hours": c.calling_hours.model_dump(),
            "schedule": c.schedule.model_dump() if c.schedule else None,
        }
        await self.repo.update_settings(campaign_id=c.campaign_id, fields=fields)
        self._cache.pop(c.campaign_id, None)

    async def status_changed(self, *, campaign_id: str, status: str, at: datetime) -> None:
        await self.repo.set_status(campaign_id=campaign_id, status=status, at=at)
        if campaign_id in self._cache:
            self._cache[campaign_id]["status"] = status

    async def current(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign with its status as stored now; None if the dialer never heard of it."""
        cached = self._cache.get(campaign_id)
        if cached is None:
            doc = await self.repo.get(campaign_id=campaign_id)
            if doc is None or "agent" not in doc:
                return None  # unknown, or only a status change seen so far
            self._cache[campaign_id] = doc
            return dict(doc)
        status = await self.repo.get_status(campaign_id=campaign_id)
        cached["status"] = status
        return dict(cached)
