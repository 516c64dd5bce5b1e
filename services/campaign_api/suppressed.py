"""campaign-api's projection of ``suppressions.v1``: the org's opt-out / do-not-call list as the
disposition service (its owner) announces it. Contact ingestion reads it to leave those numbers
out of new campaigns and to count them in the response.

Each number keeps its latest state with the instant of the event that set it, so a redelivered
or late event never undoes a newer one (an opt-out, a removal, then the opt-out redelivered
leaves the number callable)."""

from __future__ import annotations

import structlog

from campaign_api.repository import ApiRepository
from outbound_core.events import Envelope, SuppressionAdded, SuppressionRemoved
from outbound_core.phones import mask_phone

log = structlog.get_logger(__name__)


class SuppressedProjection:
    def __init__(self, *, repo: ApiRepository) -> None:
        self.repo = repo

    async def on_added(self, env: Envelope, ev: SuppressionAdded) -> None:
        applied = await self.repo.apply_suppression(
            org_id=env.org_id, phone=ev.phone, active=True, at=env.occurred_at, reason=ev.reason
        )
        log.info("number suppressed", phone=mask_phone(ev.phone), applied=applied)

    async def on_removed(self, env: Envelope, ev: SuppressionRemoved) -> None:
        applied = await self.repo.apply_suppression(
            org_id=env.org_id, phone=ev.phone, active=False, at=env.occurred_at, reason=None
        )
        log.info("number unsuppressed", phone=mask_phone(ev.phone), applied=applied)
