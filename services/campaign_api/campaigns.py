"""campaign-api's service layer: create and control campaigns, publish their events through the
outbox, and keep the read models (lead projection, counters) up to date from other services'
events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from campaign_api.auth import Principal
from campaign_api.domain import (
    SETTINGS_EDITABLE,
    ScheduleError,
    TransitionError,
    apply_action,
    normalise_contacts,
    resolve_schedule,
)
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository, Doc
from campaign_api.schemas import CampaignIn
from outbound_core.clock import Clock, utc
from outbound_core.events import (
    AgentSnapshot,
    CallEnded,
    CallingHours,
    CallStarted,
    CampaignCreated,
    CampaignDrained,
    CampaignPauseRequested,
    CampaignStatusChanged,
    CampaignUpdated,
    ContactsAdded,
    ContactSeed,
    DispositionRecorded,
    Envelope,
    LeadUpdated,
    Schedule,
)
from outbound_core.ids import new_id
from outbound_core.kafka import EventBus
from outbound_core.outbox import Outbox, Outgoing
from outbound_core.topics import CAMPAIGNS

log = structlog.get_logger(__name__)


class CampaignService:
    def __init__(
        self,
        *,
        repo: ApiRepository,
        bus: EventBus,
        outbox: Outbox,
        clock: Clock,
        max_contacts: int,
        contacts_per_event: int,
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.outbox = outbox
        self.clock = clock
        self.max_contacts = max_contacts
        self.contacts_per_event = contacts_per_event

    def _out(self, who: Principal | Doc, payload: Any, key: str) -> Outgoing:
        org = who.org_id if isinstance(who, Principal) else who["org_id"]
        ws = who.workspace_id if isinstance(who, Principal) else who["workspace_id"]
        return Outgoing(CAMPAIGNS, self.bus.envelope(payload, org_id=org, workspace_id=ws), key)

    async def create(self, *, who: Principal, body: CampaignIn) -> Doc:
        now = self.clock.now()
        agent = await self.repo.agent(workspace_id=who.workspace_id, agent_id=body.script_id)
        if agent is None:
            raise Problem(
                422,
                "Invalid request",
                f"script_id {body.script_id!r} does not exist in this workspace",
                [{"field": "script_id", "message": "not found"}],
            )
        if len(body.contacts) > self.max_contacts:
            raise Problem(
                413,
                "Too large",
                f"{len(body.contacts)} contacts exceed the limit of "
                f"{self.max_contacts} per campaign",
                [{"field": "contacts", "message": "too many contacts"}],
            )
        sched = body.schedule
        start = end = None
        if sched is not None:
            try:
                start, end = resolve_schedule(
                    start=sched.start_time, end=sched.end_time, timezone=sched.timezone, now=now
                )
            except ScheduleError as exc:
                raise Problem(
                    422, "Invalid request", str(exc), [{"field": "schedule", "message": str(exc)}]
                ) from exc
        norm = normalise_contacts(body.contacts, default_region=body.default_region)
        if norm.issues:
            errors = [
                {"field": f"contacts[{i.index}].{i.field}", "message": i.message}
                for i in norm.issues
            ]
            raise Problem(
                422,
                "Invalid contacts",
                f"{len(errors)} contact problem(s); nothing was created",
                errors,
            )
        campaign_id = new_id("cmp")
        status = "scheduled"
        doc: Doc = {
            "_id": campaign_id,
            "org_id": who.org_id,
            "workspace_id": who.workspace_id,
            "kind": "batch",
            "name": body.name,
            "status": status,
            "script_id": body.script_id,
            "language": body.language,
            "total_contacts": len(norm.contacts),
            "duplicates_merged": norm.duplicates,
            "max_attempts": body.max_attempts,
            "retry_interval_minutes": body.retry_interval_minutes,
            "retry_outcomes": body.retry_outcomes,
            "priority": body.priority,
            "max_slots": body.max_slots,
            "from_number": body.from_number,
            "voicemail_action": body.voicemail_action,
            "calling_hours": body.calling_hours.model_dump(mode="json"),
            "schedule": sched.model_dump(mode="json") if sched else None,
            "schedule_start": start,
            "schedule_end": end,
            "created_at": now,
            "calls_made": 0,
            "calls_connected": 0,
            "call_seconds": 0.0,
            "cost": 0.0,
            "disposition_summary": {},
        }
        seeds = [ContactSeed(task_id=new_id("tsk"), **c) for c in norm.contacts]
        await self.repo.insert_campaign(doc)
        await self.repo.insert_leads(
            [
                {
                    "_id": s.task_id,
                    "campaign_id": campaign_id,
                    "workspace_id": who.workspace_id,
                    "seq": -1,
                    "status": "pending",
                    "name": s.name,
                    "phones": s.phones,
                    "current_phone": s.phones[0],
                    "phone_index": 0,
                    "pass_number": 1,
                    "attempt": 0,
                    "last_disposition": None,
                    "variables": s.variables,
                }
                for s in seeds
            ]
        )
        created = CampaignCreated(
            campaign_id=campaign_id,
            name=body.name,
            status=status,
            agent=AgentSnapshot(
                agent_id=agent["_id"],
                name=agent["name"],
                language=agent["language"],
                greeting=agent.get("greeting", ""),
                system_prompt=agent.get("system_prompt", ""),
                voicemail_message=agent.get("voicemail_message", ""),
            ),
            language=body.language,
            schedule=Schedule(start_time=start, end_time=end, timezone=sched.timezone)
            if sched
            else None,
            calling_hours=CallingHours(**body.calling_hours.model_dump(mode="json")),
            max_attempts=body.max_attempts,
            retry_interval_minutes=body.retry_interval_minutes,
            retry_outcomes=body.retry_outcomes,
            priority=body.priority,
            max_slots=body.max_slots,
            from_number=body.from_number,
            voicemail_action=body.voicemail_action,
            total_contacts=len(seeds),
        )
        out = [self._out(who, created, campaign_id)]
        step = self.contacts_per_event
        for i in range(0, len(seeds), step):
            out.append(
                self._out(
                    who,
                    ContactsAdded(
                        campaign_id=campaign_id,
                        contacts=seeds[i : i + step],
                        total_contacts=len(seeds),
                    ),
                    campaign_id,
                )
            )
        await self.outbox.publish(out)
        log.info("campaign created", campaign_id=campaign_id, contacts=len(seeds))
        return doc

    async def act(
        self, *, who: Principal, campaign_id: str, action: str, reason: str | None
    ) -> Doc:
        doc = await self.repo.campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
        if doc is None:
            raise Problem(404, "Not found", f"campaign {campaign_id} not found")
        try:
            new_status = apply_action(doc["status"], action)
        except TransitionError as exc:
            raise Problem(409, "Conflict", str(exc)) from exc
        if action == "restart":
            end = doc.get("schedule_end")
            if end is not None and utc(end) <= self.clock.now():
                raise Problem(
                    409, "Conflict", "the schedule has ended; move schedule.end_time first"
                )
            await self.repo.reset_for_restart(campaign_id=campaign_id)
        updated = await self._transition(doc, new_status, action=action, reason=reason)
        if updated is None:  # raced with another change: report the state as it is now
            raise Problem(409, "Conflict", "the campaign changed meanwhile; retry")
        return updated

    async def update_settings(
        self, *, who: Principal, campaign_id: str, settings: dict[str, Any]
    ) -> Doc:
        """Apply new settings to a campaign that is not finished and publish
        ``campaign.updated``; the planner applies them to tasks not yet dialled."""
        doc = await self.repo.campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
        if doc is None:
            raise Problem(404, "Not found", f"campaign {campaign_id} not found")
        if doc["status"] not in SETTINGS_EDITABLE:
            raise Problem(409, "Conflict", f"a {doc['status']} campaign cannot be changed")
        fields: Doc = {}
        for key, value in settings.items():
            if key == "schedule":
                start = end = None
                if value is not None:
                    try:
                        start, end = resolve_schedule(
                            start=value.start_time,
                            end=value.end_time,
                            timezone=value.timezone,
                            now=self.clock.now(),
                        )
                    except ScheduleError as exc:
                        raise Problem(
                            422,
                            "Invalid request",
                            str(exc),
                            [{"field": "schedule", "message": str(exc)}],
                        ) from exc
                fields["schedule"] = value.model_dump(mode="json") if value else None
                fields["schedule_start"], fields["schedule_end"] = start, end
            elif key == "calling_hours":
                if value is None:
                    raise Problem(422, "Invalid request", "calling_hours cannot be null")
                fields["calling_hours"] = value.model_dump(mode="json")
            elif value is None and key != "max_slots":
                raise Problem(422, "Invalid request", f"{key} cannot be null")
            else:
                fields[key] = value
        if not fields:
            raise Problem(422, "Invalid request", "give an action or at least one setting")
        updated = await self.repo.set_status(
            campaign_id=campaign_id,
            expect=list(SETTINGS_EDITABLE),
            status=doc["status"],
            fields=fields,
        )
        if updated is None:
            raise Problem(409, "Conflict", "the campaign changed meanwhile; retry")
        start, end = updated.get("schedule_start"), updated.get("schedule_end")
        sched = updated.get("schedule")
        event = CampaignUpdated(
            campaign_id=campaign_id,
            changed=sorted(settings),
            schedule=Schedule(
                start_time=utc(start) if start else None,
                end_time=utc(end) if end else None,
                timezone=sched.get("timezone", "UTC"),
            )
            if sched
            else None,
            calling_hours=CallingHours(**updated["calling_hours"]),
            max_attempts=updated["max_attempts"],
            retry_interval_minutes=updated["retry_interval_minutes"],
            retry_outcomes=updated["retry_outcomes"],
            priority=updated["priority"],
            max_slots=updated.get("max_slots"),
        )
        await self.outbox.publish([self._out(updated, event, campaign_id)])
        log.info("campaign settings updated", campaign_id=campaign_id, changed=sorted(settings))
        return updated

    async def _transition(
        self, doc: Doc, status: str, *, action: str | None, reason: str | None
    ) -> Doc | None:
        fields: Doc = {"status_reason": reason}
        if action == "restart":
            fields.update(
                started_at=self.clock.now(),
                ended_at=None,
                calls_made=0,
                calls_connected=0,
                call_seconds=0.0,
                cost=0.0,
                disposition_summary={},
            )
        if status == "running" and not doc.get("started_at"):
            fields["started_at"] = self.clock.now()
        if status in ("completed", "stopped"):
            fields["ended_at"] = self.clock.now()
        updated = await self.repo.set_status(
            campaign_id=doc["_id"], expect=[doc["status"]], status=status, fields=fields
        )
        if updated is not None:
            await self.outbox.publish(
                [
                    self._out(
                        doc,
                        CampaignStatusChanged(
                            campaign_id=doc["_id"],
                            status=status,
                            previous=doc["status"],
                            action=action,
                            reason=reason,
                        ),
                        doc["_id"],
                    )
                ]
            )
        return updated

    async def run_schedules(self) -> None:
        """Start scheduled campaigns at their start time; complete them at their end time."""
        now = self.clock.now()
        for doc in await self.repo.due_to_end(now=now):
            await self._transition(doc, "completed", action=None, reason="schedule_ended")
        for doc in await self.repo.due_to_start(now=now):
            await self._transition(doc, "running", action=None, reason="schedule_started")

    # read models -------------------------------------------------------------------------------
    async def on_lead_updated(self, env: Envelope, ev: LeadUpdated) -> None:
        fields = ev.model_dump(mode="python", exclude={"task_id", "seq"})
        fields["workspace_id"] = env.workspace_id
        await self.repo.apply_lead(lead_id=ev.task_id, seq=ev.seq, fields=fields)

    async def on_drained(self, env: Envelope, ev: CampaignDrained) -> None:
        doc = await self.repo.campaigns.find_one({"_id": ev.campaign_id})
        if doc is not None and doc["status"] in ("running", "paused", "scheduled"):
            await self._transition(doc, "completed", action=None, reason="all_tasks_done")

    async def on_pause_requested(self, env: Envelope, ev: CampaignPauseRequested) -> None:
        """Another service (the circuit breaker) asks for a pause: only a running campaign
        pauses, and the reason is what the API shows in ``status_reason``."""
        doc = await self.repo.campaigns.find_one({"_id": ev.campaign_id})
        if doc is None or doc["status"] != "running":
            return
        await self._transition(doc, "paused", action=None, reason=ev.reason)
        log.warning(
            "campaign paused automatically",
            campaign_id=ev.campaign_id,
            reason=ev.reason,
            detail=ev.detail,
        )

    async def on_call_started(self, env: Envelope, ev: CallStarted) -> None:
        if await self.repo.first_time(f"started:{ev.call_id}"):
            await self.repo.inc_campaign(campaign_id=ev.campaign_id, inc={"calls_made": 1})

    async def on_call_ended(self, env: Envelope, ev: CallEnded) -> None:
        if await self.repo.first_time(f"ended:{ev.call_id}"):
            await self.repo.inc_campaign(
                campaign_id=ev.campaign_id,
                inc={"call_seconds": ev.duration_seconds, "cost": ev.cost},
            )

    async def on_disposition(self, env: Envelope, ev: DispositionRecorded) -> None:
        if await self.repo.first_time(f"disposition:{ev.call_id}"):
            label = ev.disposition.replace(".", "_").replace("$", "_")
            inc: dict[str, float] = {f"disposition_summary.{label}": 1}
            if ev.connected:
                inc["calls_connected"] = 1
            await self.repo.inc_campaign(campaign_id=ev.campaign_id, inc=inc)


def campaign_view(doc: Doc) -> dict[str, Any]:
    """The public representation of a campaign (the reference API's fields and ours)."""
    made = doc.get("calls_made", 0)
    connected = doc.get("calls_connected", 0)
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "status": doc["status"],
        "status_reason": doc.get("status_reason"),
        "script_id": doc["script_id"],
        "language": doc["language"],
        "total_contacts": doc["total_contacts"],
        "max_attempts": doc["max_attempts"],
        "retry_interval_minutes": doc["retry_interval_minutes"],
        "retry_outcomes": doc["retry_outcomes"],
        "priority": doc["priority"],
        "max_slots": doc.get("max_slots"),
        "from": doc.get("from_number"),
        "voicemail_action": doc["voicemail_action"],
        "calling_hours": doc["calling_hours"],
        "schedule": doc.get("schedule"),
        "created_at": _iso(doc["created_at"]),
        "started_at": _iso(doc.get("started_at")),
        "ended_at": _iso(doc.get("ended_at")),
        "calls_made": made,
        "calls_connected": connected,
        "disposition_summary": doc.get("disposition_summary", {}),
        "metrics": {
            "connect_rate": round(connected / made, 4) if made else 0.0,
            "call_minutes": round(doc.get("call_seconds", 0.0) / 60, 2),
            "cost": round(doc.get("cost", 0.0), 4),
        },
    }


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None
