"""campaign-api's read models, kept up to date from other services' events: the lead
projection (planner lead updates), one document per call attempt (calls + dispositions) and the
campaign counters with a per-day series, so reading a campaign never counts anything.

Each event adds to the counters exactly once, even when this service is killed between two
writes: the increment and its guard (the event's key, in the campaign's short ``counting``
list) are one write; the call then records the lasting marker (``counted``), and the key
leaves the list a moment later. A redelivered event finds either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from campaign_api.repository import ApiRepository, Doc
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
    def __init__(
        self,
        *,
        repo: ApiRepository,
        on_counted: Callable[[str, Doc], Awaitable[None]] | None = None,
    ) -> None:
        self.repo = repo
        # told of a campaign's counters after each disposition counted (completion waits on it)
        self.on_counted = on_counted
        self._settled: dict[str, list[str]] = {}  # campaign -> keys to drop from ``counting``

    async def _count(
        self, call: Doc, *, what: str, campaign_id: str, inc: dict[str, float]
    ) -> Doc | None:
        """Add ``inc`` once for this call's ``what`` (started, ended, disposition)."""
        key = f"{what}:{call['_id']}"
        if what in (call.get("counted") or ()):
            self._settled.setdefault(campaign_id, []).append(key)
            return None
        after = await self.repo.count_once(campaign_id=campaign_id, key=key, inc=inc)
        await self.repo.mark_counted(call_id=call["_id"], what=what)
        self._settled.setdefault(campaign_id, []).append(key)
        return after

    async def forget_settled(self) -> None:
        """Now and then: the keys whose calls carry their marker leave the short lists."""
        settled, self._settled = self._settled, {}
        if settled:
            await self.repo.forget_counting(settled)

    async def on_lead_updated(self, env: Envelope, ev: LeadUpdated) -> None:
        fields = ev.model_dump(mode="python", exclude={"task_id", "seq"})
        fields["workspace_id"] = env.workspace_id
        await self.repo.apply_lead(lead_id=ev.task_id, seq=ev.seq, fields=fields)

    async def on_call_started(self, env: Envelope, ev: CallStarted) -> None:
        call = await self.repo.upsert_call(
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
        if "started" in (call.get("counted") or ()):
            return  # told again: counted before
        day = day_key(ev.started_at)
        inc: dict[str, float] = {"calls_made": 1, f"daily.{day}.calls": 1}
        # a retry is any call after the lead's first (attempt numbers also count attempts
        # that were queued but never dialled)
        if await self.repo.has_earlier_call(task_id=ev.task_id, call_id=ev.call_id):
            inc["retry_calls"] = 1
        await self._count(call, what="started", campaign_id=ev.campaign_id, inc=inc)

    async def on_call_ended(self, env: Envelope, ev: CallEnded) -> None:
        call = await self.repo.upsert_call(
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
        day = day_key(ev.ended_at)
        inc = {
            "call_seconds": ev.duration_seconds,
            "cost": ev.cost,
            f"daily.{day}.seconds": ev.duration_seconds,
        }
        await self._count(call, what="ended", campaign_id=ev.campaign_id, inc=inc)

    async def on_disposition(self, env: Envelope, ev: DispositionRecorded) -> None:
        call = await self.repo.upsert_call(
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
        after = await self._count(call, what="disposition", campaign_id=ev.campaign_id, inc=inc)
        if after is not None and after.get("completion_pending") and self.on_counted is not None:
            await self.on_counted(ev.campaign_id, after)
