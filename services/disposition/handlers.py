from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from disposition.breaker import BreakerPolicy, cooldown_seconds, describe, judge
from disposition.domain import decide
from disposition.repository import DispositionRepository, Doc
from disposition.settings import DispositionSettings
from outbound_core.events import (
    CallEnded,
    CampaignPauseRequested,
    CampaignResumeRequested,
    CampaignStatusChanged,
    DispositionRecorded,
    Envelope,
    LeaseExpired,
    SuppressionAdded,
)
from outbound_core.ids import stable_id
from outbound_core.kafka import EventBus
from outbound_core.phones import mask_phone
from outbound_core.topics import DISPOSITIONS, SUPPRESSIONS

log = structlog.get_logger(__name__)


class DispositionHandlers:
    def __init__(
        self, *, repo: DispositionRepository, bus: EventBus, settings: DispositionSettings
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.settings = settings
        self.breaker = BreakerPolicy(
            window=settings.breaker_window,
            min_attempts=settings.breaker_min_attempts,
            threshold=settings.breaker_failure_threshold,
            probe_attempts=settings.breaker_probe_attempts,
            cooldown_seconds=settings.breaker_cooldown_seconds,
            max_cooldown_seconds=settings.breaker_max_cooldown_seconds,
        )

    async def on_call_ended(self, env: Envelope, call: CallEnded) -> None:
        existing = await self.repo.get(call.call_id)
        first = existing is None
        if existing is None:
            existing = await self._record(env, call)
        if existing["disposition"] == "opt_out" and call.phone:
            # Every delivery: a crash between the write and the publish is repaired.
            await self.repo.suppress(
                org_id=env.org_id,
                phone=call.phone,
                reason="opt_out",
                source=call.call_id,
                at=self.bus.now(),
            )
            await self.bus.emit(
                SUPPRESSIONS,
                SuppressionAdded(phone=call.phone, reason="opt_out", source_call_id=call.call_id),
                key=env.org_id,
                org_id=env.org_id,
                workspace_id=env.workspace_id,
                causation=env,
                dedupe_parts=(call.call_id,),
            )
        # Published on every delivery (stable event id): a crash after the insert but before
        # the publish is repaired by the redelivery.
        await self.bus.emit(
            DISPOSITIONS,
            DispositionRecorded(
                call_id=call.call_id,
                task_id=call.task_id,
                campaign_id=call.campaign_id,
                attempt=call.attempt,
                disposition=existing["disposition"],
                phone_index=call.phone_index,
                raw_outcome=existing["raw_outcome"],
                connected=existing["connected"],
                terminal=existing["terminal"],
                custom=bool(existing.get("custom")),
                callback_at=existing["callback_at"],
                duration_seconds=existing["duration_seconds"],
                turns=existing["turns"],
            ),
            key=call.task_id,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            dedupe_parts=(call.call_id,),
        )
        if first:
            await self._watch_failures(
                env,
                call.campaign_id,
                failed=existing["disposition"] == "failed",
                dedupe=call.call_id,
                began_at=call.started_at,
            )

    async def on_lease_expired(self, env: Envelope, ev: LeaseExpired) -> None:
        """A call that never ended (its lease expired) is a provider failure for the breaker:
        a gateway that accepts calls and never reports them must trip it too."""
        call_id = stable_id("call", ev.task_id, ev.attempt)
        if await self.repo.get(call_id) is not None:
            return  # its end did arrive (the release was late): counted as that outcome
        if not await self.repo.note_expiry(
            lease_id=ev.lease_id,
            doc={
                "task_id": ev.task_id,
                "attempt": ev.attempt,
                "campaign_id": ev.campaign_id,
                "at": self.bus.now(),
            },
        ):
            return  # counted on an earlier delivery
        log.info("lease expired without a call end", task_id=ev.task_id, attempt=ev.attempt)
        await self._watch_failures(
            env, ev.campaign_id, failed=True, dedupe=ev.lease_id, began_at=ev.granted_at
        )

    async def _record(self, env: Envelope, call: CallEnded) -> Doc:
        d = decide(
            status=call.status,
            outcome=call.outcome,
            turns=call.turns,
            callback_at=call.callback_at,
            transcript=call.transcript,
            ended_at=call.ended_at,
            custom_labels={
                **self.settings.labels_for(env.workspace_id),
                **await self.repo.labels_of(workspace_id=env.workspace_id),
            },
        )
        if d.why == "unknown_label":
            log.warning("unknown outcome label kept as custom", label=d.label, call_id=call.call_id)
        doc: Doc = {
            "task_id": call.task_id,
            "campaign_id": call.campaign_id,
            "org_id": env.org_id,
            "workspace_id": env.workspace_id,
            "attempt": call.attempt,
            "disposition": d.label,
            "raw_outcome": call.outcome,
            "raw_status": call.status,
            "phone": call.phone,
            "connected": d.connected,
            "terminal": d.terminal,
            "custom": d.custom,
            "why": d.why,
            "callback_at": d.callback_at,
            "duration_seconds": call.duration_seconds,
            "turns": call.turns,
            "recorded_at": self.bus.now(),
        }
        await self.repo.record(call_id=call.call_id, doc=doc)
        if d.label == "opt_out":
            log.info("number opted out", phone=mask_phone(call.phone or ""), call_id=call.call_id)
        return doc

    async def republish(self) -> None:
        """The broker lost everything: every recorded disposition and opt-out again (same
        event ids), so tasks that waited for one are resolved."""
        count = 0
        async for d in self.repo.iter_all():
            if d["disposition"] == "opt_out" and d.get("phone"):
                await self.bus.emit(
                    SUPPRESSIONS,
                    SuppressionAdded(phone=d["phone"], reason="opt_out", source_call_id=d["_id"]),
                    key=d["org_id"],
                    org_id=d["org_id"],
                    workspace_id=d["workspace_id"],
                    dedupe_parts=(d["_id"],),
                )
            await self.bus.emit(
                DISPOSITIONS,
                DispositionRecorded(
                    call_id=d["_id"],
                    task_id=d["task_id"],
                    campaign_id=d["campaign_id"],
                    attempt=d["attempt"],
                    disposition=d["disposition"],
                    raw_outcome=d["raw_outcome"],
                    connected=d["connected"],
                    terminal=d["terminal"],
                    callback_at=d["callback_at"],
                    duration_seconds=d["duration_seconds"],
                    turns=d["turns"],
                ),
                key=d["task_id"],
                org_id=d["org_id"],
                workspace_id=d["workspace_id"],
                dedupe_parts=(d["_id"],),
            )
            count += 1
        log.info("dispositions re-published", count=count)

    async def _watch_failures(
        self,
        env: Envelope,
        campaign_id: str,
        *,
        failed: bool,
        dedupe: str,
        began_at: datetime | None,
    ) -> None:
        breaker = await self.repo.push_attempt(
            campaign_id=campaign_id,
            failed=failed,
            window=self.breaker.window,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            began_at=began_at,
        )
        if breaker is None:
            return  # not counted: in flight when it tripped, or begun before the probe
        recent = breaker.get("recent", [])
        verdict = judge(recent, self.breaker, half_open=breaker.get("state") == "half_open")
        if verdict == "close":
            await self.repo.close(campaign_id=campaign_id)
            log.info("circuit breaker closed: the probe attempts passed", campaign_id=campaign_id)
            return
        if verdict != "trip":
            return
        now = self.bus.now()
        cooldown = cooldown_seconds(self.breaker, int(breaker.get("streak") or 0) + 1)
        resume_at = None if cooldown is None else now + timedelta(seconds=cooldown)
        if not await self.repo.trip(campaign_id=campaign_id, at=now, resume_at=resume_at):
            return  # a concurrent outcome tripped it first
        detail = describe(recent, self.breaker)
        if resume_at is not None:
            detail += f"; resumes by itself at {resume_at.isoformat()}"
        log.warning("circuit breaker tripped", campaign_id=campaign_id, detail=detail)
        await self.bus.emit(
            DISPOSITIONS,
            CampaignPauseRequested(
                campaign_id=campaign_id, reason="circuit_breaker", detail=detail
            ),
            key=campaign_id,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            dedupe_parts=(dedupe, "breaker"),
        )

    async def resume_after_cooldown(self) -> int:
        """Ticker: campaigns whose cool-down is over are asked to resume (half-open). The
        request comes before the state change, so a crash in between asks again (same event
        id; campaign-api resumes only a campaign still paused by the breaker)."""
        resumed = 0
        for b in await self.repo.due_resumes(now=self.bus.now()):
            trips = int(b.get("trips") or 0)
            await self.bus.emit(
                DISPOSITIONS,
                CampaignResumeRequested(
                    campaign_id=b["_id"],
                    reason="circuit_breaker",
                    detail=f"cool-down over; the next {self.breaker.probe_attempts} attempts "
                    "decide whether it stays resumed",
                ),
                key=b["_id"],
                org_id=b.get("org_id", ""),
                workspace_id=b.get("workspace_id", ""),
                dedupe_parts=(b["_id"], trips, "resume"),
            )
            if await self.repo.half_open(campaign_id=b["_id"], at=self.bus.now(), trips=trips):
                resumed += 1
                log.info("circuit breaker half-open: resume asked", campaign_id=b["_id"])
        return resumed

    async def on_campaign_status_changed(self, env: Envelope, ev: CampaignStatusChanged) -> None:
        """A campaign running again (a human's resume, before the cool-down was over) is probed
        like one the breaker resumed: its outcomes count from now. A change older than the trip (a
        replay of the topic) leaves the breaker open."""
        if ev.status == "running" and await self.repo.half_open(
            campaign_id=ev.campaign_id, at=env.occurred_at, by_resume=True
        ):
            log.info("circuit breaker half-open: campaign resumed", campaign_id=ev.campaign_id)
