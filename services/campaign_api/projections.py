"""campaign-api's read models, kept up to date from other services' events: the lead
projection (planner lead updates), one document per call attempt (calls + dispositions) and the
campaign counters with a per-day series. Counters are incremented once per event (guarded by
``applied``), so reading a campaign never counts anything."""

from __future__ import annotations

from datetime import datetime

from campaign_api.repository import ApiRepository
from outbound_core.events import (
    CallEnded,
    CallStarted,
    DispositionRecorded,
    Envelope,
    LeadUpdated,
)


def day_key(at: datetime) -> str:
    return at.strftime("%Y-%m-%d")


def _label(disposition: str) -> str:
    return disposition.replace(".", "_").replace("$", "_")


class Projections:
    def __init__(self, *, repo: ApiRepository) -> None:
        self.repo = repo

    async def on_lead_updated(self, env: Envelope, ev: LeadUpdated) -> None:
        fields = ev.model_dump(mode="python", exclude={"task_id", "seq"})
        fields["workspace_id"] = env.workspace_id
        await self.repo.apply_lead(lead_id=ev.task_id, seq=ev.seq, fields=fields)

    async def on_call_started(self, env: Envelope, ev: CallStarted) -> None:
        await self.repo.upsert_call(
            call_id=ev.call_id,
            fields={
                "task_id": ev.task_id,
                "campaign_id": ev.campaign_id,
                "workspace_id": env.workspace_id,
                "attempt": ev.attempt,
                "phone_index": ev.phone_index,
                "provider": ev.provider,
                "started_at": ev.started_at,
            },
            on_insert={"status": "in_progress"},
        )
        if await self.repo.first_time(f"started:{ev.call_id}"):
            day = day_key(ev.started_at)
            inc: dict[str, float] = {"calls_made": 1, f"daily.{day}.calls": 1}
            # a retry is any call after the lead's first (attempt numbers also count attempts
            # that were queued but never dialled)
            if await self.repo.has_earlier_call(task_id=ev.task_id, call_id=ev.call_id):
                inc["retry_calls"] = 1
            await self.repo.inc_campaign(campaign_id=ev.campaign_id, inc=inc)

    async def on_call_ended(self, env: Envelope, ev: CallEnded) -> None:
        await self.repo.upsert_call(
            call_id=ev.call_id,
            fields={
                "task_id": ev.task_id,
                "campaign_id": ev.campaign_id,
                "workspace_id": env.workspace_id,
                "attempt": ev.attempt,
                "phone_index": ev.phone_index,
                "provider": ev.provider,
                "status": ev.status,
                "outcome": ev.outcome,
                "started_at": ev.started_at,
                "ended_at": ev.ended_at,
                "duration_seconds": ev.duration_seconds,
                "turns": ev.turns,
                "provider_cost": ev.cost,
                "transcript": ev.transcript,
                "recording_url": ev.recording_url,
            },
        )
        if await self.repo.first_time(f"ended:{ev.call_id}"):
            day = day_key(ev.ended_at)
            await self.repo.inc_campaign(
                campaign_id=ev.campaign_id,
                inc={
                    "call_seconds": ev.duration_seconds,
                    "cost": ev.cost,
                    f"daily.{day}.seconds": ev.duration_seconds,
                },
            )

    async def on_disposition(self, env: Envelope, ev: DispositionRecorded) -> None:
        await self.repo.upsert_call(
            call_id=ev.call_id,
            fields={
                "task_id": ev.task_id,
                "campaign_id": ev.campaign_id,
                "workspace_id": env.workspace_id,
                "attempt": ev.attempt,
                "disposition": ev.disposition,
                "analysis": {
                    "disposition": ev.disposition,
                    "raw_outcome": ev.raw_outcome,
                    "connected": ev.connected,
                    "terminal": ev.terminal,
                    "callback_at": ev.callback_at,
                    "turns": ev.turns,
                },
            },
        )
        if await self.repo.first_time(f"disposition:{ev.call_id}"):
            label = _label(ev.disposition)
            day = day_key(env.occurred_at)
            inc: dict[str, float] = {
                f"disposition_summary.{label}": 1,
                f"daily.{day}.dispositions.{label}": 1,
            }
            if ev.connected:
                inc["calls_connected"] = 1
                inc["connected_seconds"] = ev.duration_seconds
                inc[f"daily.{day}.connected"] = 1
            await self.repo.inc_campaign(campaign_id=ev.campaign_id, inc=inc)
