"""Event intake: internal events → one pending delivery per matching subscription."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from outbound_core.events import (
    CallEnded,
    CampaignStatusChanged,
    DispositionRecorded,
    Envelope,
    LeadUpdated,
)
from outbound_core.ids import stable_id
from webhook.domain import (
    PING,
    WebhookEvent,
    envelope_body,
    from_call_ended,
    from_campaign_status_changed,
    from_disposition_recorded,
    from_lead_updated,
    matches,
)
from webhook.repository import Doc, WebhookRepository

log = structlog.get_logger(__name__)


def new_delivery(
    *,
    sub: Doc,
    event: WebhookEvent,
    event_id: str,
    timestamp: datetime,
    seq: int,
    now: datetime,
    delivery_id: str,
    max_attempts: int | None = None,
) -> Doc:
    return {
        "_id": delivery_id,
        "subscription_id": sub["_id"],
        "org_id": sub["org_id"],
        "workspace_id": sub["workspace_id"],
        "event_type": event.type,
        "event_id": event_id,
        "msg_id": stable_id("msg", sub["_id"], event_id, event.type),
        "order_key": event.order_key,
        "seq": seq,
        "body": envelope_body(event_type=event.type, timestamp=timestamp, data=event.data),
        "status": "pending",
        "attempts": [],
        "attempt_count": 0,
        "max_attempts": max_attempts,
        "version": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


CONVERTERS: dict[str, Callable[[Any], list[WebhookEvent]]] = {
    LeadUpdated.TYPE: from_lead_updated,
    CampaignStatusChanged.TYPE: from_campaign_status_changed,
    CallEnded.TYPE: from_call_ended,
    DispositionRecorded.TYPE: from_disposition_recorded,
}


class WebhookHandlers:
    def __init__(
        self, *, repo: WebhookRepository, now: Callable[[], datetime], kick: Callable[[], None]
    ) -> None:
        self.repo = repo
        self.now = now
        self.kick = kick
        self._last_seq = 0

    async def on_batch(self, items: list[tuple[Envelope, Any]]) -> None:
        """Every event of one fetch: one subscription read per workspace (cached) and one
        write for all their deliveries, however many events and endpoints."""
        pairs: list[tuple[Envelope, list[WebhookEvent]]] = []
        for env, p in items:
            convert = CONVERTERS.get(env.type)
            if convert is not None:
                pairs.append((env, convert(p)))
        await self.intake_many(pairs)

    async def on_lead_updated(self, env: Envelope, p: LeadUpdated) -> None:
        await self.intake(env, from_lead_updated(p))

    async def on_campaign_status_changed(self, env: Envelope, p: CampaignStatusChanged) -> None:
        await self.intake(env, from_campaign_status_changed(p))

    async def on_call_ended(self, env: Envelope, p: CallEnded) -> None:
        await self.intake(env, from_call_ended(p))

    async def on_disposition_recorded(self, env: Envelope, p: DispositionRecorded) -> None:
        await self.intake(env, from_disposition_recorded(p))

    def next_seq(self) -> int:
        """Creation order of deliveries: nanoseconds of the wall clock, kept strictly increasing
        in this process. Events of one order key are consumed from one partition in order, so
        their deliveries get increasing values without a database counter per delivery."""
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return self._last_seq

    async def intake(self, env: Envelope, events: list[WebhookEvent]) -> int:
        return await self.intake_many([(env, events)])

    async def intake_many(self, pairs: list[tuple[Envelope, list[WebhookEvent]]]) -> int:
        subs_of: dict[str, list[Doc]] = {}
        docs: list[Doc] = []
        now = self.now()
        for env, events in pairs:
            if env.workspace_id not in subs_of:
                subs_of[env.workspace_id] = await self.repo.enabled_subscriptions(
                    workspace_id=env.workspace_id
                )
            subs = subs_of[env.workspace_id]
            for i, event in enumerate(events):
                for sub in subs:
                    if not matches(sub.get("events", ["*"]), event.type):
                        continue
                    # The first event of a message keeps the plain (subscription, event) id; a
                    # second webhook event from the same message (call.escalated) adds its type.
                    parts: tuple[Any, ...] = (
                        (sub["_id"], env.id) if i == 0 else (sub["_id"], env.id, event.type)
                    )
                    docs.append(
                        new_delivery(
                            sub=sub,
                            event=event,
                            event_id=env.id,
                            timestamp=env.occurred_at,
                            seq=self.next_seq(),
                            now=now,
                            delivery_id=stable_id("dlv", *parts),
                        )
                    )
        # One write for the whole batch whatever the number of endpoints; a redelivered
        # event's deliveries already exist and are skipped by their stable ids.
        created = await self.repo.insert_deliveries(docs=docs) if docs else 0
        if created:
            log.debug("deliveries created", count=created, events=len(pairs))
            self.kick()
        return created

    async def create_ping(self, *, sub: Doc, ping_id: str) -> Doc:
        """A ``ping`` delivery for the test endpoint: its own order key, one attempt only."""
        now = self.now()
        event = WebhookEvent(PING, ping_id, {"webhook_id": sub["_id"], "message": "ping"})
        seq = self.next_seq()
        doc = new_delivery(
            sub=sub,
            event=event,
            event_id=ping_id,
            timestamp=now,
            seq=seq,
            now=now,
            delivery_id=stable_id("dlv", sub["_id"], ping_id),
            max_attempts=1,
        )
        # Sent inline by the test endpoint, so it is never due for the background sender.
        doc["next_attempt_at"] = None
        await self.repo.insert_delivery(doc=doc)
        return doc
