"""campaign-api's service layer: create and control campaigns, publish their events through the
outbox, and keep the read models (lead projection, counters) up to date from other services'
events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from campaign_api.auth import Principal
from campaign_api.contacts import (
    classify_removal,
    lead_docs,
    normalise_phones,
    phone_entries,
    prepare,
)
from campaign_api.domain import (
    SETTINGS_EDITABLE,
    ScheduleError,
    TransitionError,
    apply_action,
    resolve_schedule,
)
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository, Doc
from campaign_api.schemas import CampaignIn
from outbound_core.clock import Clock, utc
from outbound_core.events import (
    AgentSnapshot,
    CallingHours,
    CampaignCreated,
    CampaignDrained,
    CampaignPauseRequested,
    CampaignResumeRequested,
    CampaignStatusChanged,
    CampaignUpdated,
    ContactsAdded,
    ContactSeed,
    ContactsRemoved,
    Envelope,
    Schedule,
)
from outbound_core.ids import new_id
from outbound_core.kafka import EventBus
from outbound_core.outbox import Outbox, Outgoing
from outbound_core.phones import InvalidPhone, normalize_e164
from outbound_core.topics import ALLOCATOR, CAMPAIGNS

log = structlog.get_logger(__name__)
EVENT_BYTES = 400_000  # estimated payload bytes per ContactsAdded event


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
        completion_grace: float = 30.0,
    ) -> None:
        self.repo = repo
        self.completion_grace = completion_grace
        self.bus = bus
        self.outbox = outbox
        self.clock = clock
        self.max_contacts = max_contacts
        self.contacts_per_event = contacts_per_event

    def _out(self, who: Principal | Doc, payload: Any, key: str) -> Outgoing:
        org = who.org_id if isinstance(who, Principal) else who["org_id"]
        ws = who.workspace_id if isinstance(who, Principal) else who["workspace_id"]
        return Outgoing(CAMPAIGNS, self.bus.envelope(payload, org_id=org, workspace_id=ws), key)

    async def create(
        self,
        *,
        who: Principal,
        body: CampaignIn,
        raw: list[dict[str, Any]] | None = None,
        where: Callable[[int], str] | None = None,
        prior_errors: list[dict[str, Any]] | None = None,
        skip_errors: bool = False,
    ) -> Doc:
        """Create a campaign with ``body.contacts``, or with ``raw`` contacts read from a file
        (``where`` names the line of each, ``prior_errors`` holds the file's row problems)."""
        now = self.clock.now()
        contacts = body.contacts if raw is None else raw
        agent = await self.repo.agent(workspace_id=who.workspace_id, agent_id=body.script_id)
        if agent is None:
            raise Problem(
                422,
                "Invalid request",
                f"script_id {body.script_id!r} does not exist in this workspace",
                [{"field": "script_id", "message": "not found"}],
            )
        if len(contacts) > self.max_contacts:
            raise Problem(
                413,
                "Too large",
                f"{len(contacts)} contacts exceed the limit of {self.max_contacts} per campaign",
                [{"field": "contacts", "message": "too many contacts"}],
            )
        from_number = await self._check_caller(who, body.from_number, body.from_pool)
        callers: list[str] = []
        caller_cps: dict[str, float] = {}
        if from_number is not None or body.from_pool is not None:
            for d in await self.repo.caller_numbers(
                workspace_id=who.workspace_id, number=from_number, pool=body.from_pool
            ):
                if d["number"] not in callers:
                    callers.append(d["number"])
                if d.get("calls_per_second"):
                    caller_cps[d["number"]] = float(d["calls_per_second"])
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
        prep = await prepare(
            self.repo,
            org_id=who.org_id,
            campaign_id=None,
            raw=contacts,
            default_region=body.default_region,
            where=where or (lambda i: f"contacts[{i}]"),
            prior_errors=prior_errors,
            skip_errors=skip_errors,
        )
        seeds = prep.seeds
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
            "total_contacts": len(seeds),
            "duplicates_merged": prep.duplicates,
            "opted_out_excluded": prep.opted_out,
            "opted_out_phones_dropped": prep.opted_out_phones,
            "skipped_rows": len(prep.skipped),
            "default_region": body.default_region,
            "positive_dispositions": body.positive_dispositions,
            "max_attempts": body.max_attempts,
            "retry_interval_minutes": body.retry_interval_minutes,
            "retry_outcomes": body.retry_outcomes,
            "priority": body.priority,
            "max_slots": body.max_slots,
            "from_number": from_number,
            "from_pool": body.from_pool,
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
        await self.repo.insert_campaign(doc)
        await self.repo.add_phone_map(campaign_id=campaign_id, phones=phone_entries(seeds))
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
            from_number=from_number,
            caller_numbers=callers,
            caller_cps=caller_cps,
            voicemail_action=body.voicemail_action,
            total_contacts=len(seeds),
        )
        out = [self._out(who, created, campaign_id)]
        out += self._contact_events(who, campaign_id, seeds, total=len(seeds))
        await self.outbox.publish(out)
        log.info("campaign created", campaign_id=campaign_id, contacts=len(seeds))
        return {**doc, "skipped": prep.skipped}

    async def _check_caller(
        self, who: Principal, number: str | None, pool: str | None
    ) -> str | None:
        """The campaign's caller id must be one of the workspace's numbers (or pools)."""
        if number is not None:
            try:
                number = normalize_e164(number)
            except InvalidPhone as exc:
                raise Problem(
                    422, "Invalid request", str(exc), [{"field": "from", "message": str(exc)}]
                ) from exc
            if not await self.repo.has_number(workspace_id=who.workspace_id, number=number):
                msg = f"{number} is not a number of this workspace (see /v1/numbers)"
                raise Problem(422, "Invalid request", msg, [{"field": "from", "message": msg}])
        if pool is not None and not await self.repo.has_pool(
            workspace_id=who.workspace_id, pool=pool
        ):
            msg = f"no number of this workspace is in pool {pool!r}"
            raise Problem(422, "Invalid request", msg, [{"field": "from_pool", "message": msg}])
        return number

    def _contact_events(
        self, who: Principal, campaign_id: str, seeds: list[ContactSeed], *, total: int
    ) -> list[Outgoing]:
        """Few, large events (fewer outbox writes and broker round trips), each kept well
        under the broker's 1 MB message limit whatever the number of variables."""
        out: list[Outgoing] = []
        batch: list[ContactSeed] = []
        size = 0
        for seed in seeds:
            cost = len(seed.name) + sum(len(k) + len(v) for k, v in seed.variables.items()) + 120
            if batch and (len(batch) >= self.contacts_per_event or size + cost > EVENT_BYTES):
                out.append(self._added(who, campaign_id, batch, total))
                batch, size = [], 0
            batch.append(seed)
            size += cost
        if batch:
            out.append(self._added(who, campaign_id, batch, total))
        return out

    def _added(
        self, who: Principal, campaign_id: str, batch: list[ContactSeed], total: int
    ) -> Outgoing:
        event = ContactsAdded(campaign_id=campaign_id, contacts=batch, total_contacts=total)
        return self._out(who, event, campaign_id)

    async def _open_campaign(self, who: Principal, campaign_id: str) -> Doc:
        doc = await self.repo.campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
        if doc is None:
            raise Problem(404, "Not found", f"campaign {campaign_id} not found")
        if doc["status"] in ("completed", "stopped"):
            raise Problem(409, "Conflict", f"the campaign is {doc['status']}; contacts are final")
        return doc

    async def add_contacts(
        self,
        *,
        who: Principal,
        campaign_id: str,
        raw: list[dict[str, Any]],
        where: Callable[[int], str],
        prior_errors: list[dict[str, Any]],
        default_region: str | None,
        skip_errors: bool,
    ) -> dict[str, Any]:
        doc = await self._open_campaign(who, campaign_id)
        prep = await prepare(
            self.repo,
            org_id=who.org_id,
            campaign_id=campaign_id,
            raw=raw,
            default_region=default_region or doc.get("default_region"),
            where=where,
            prior_errors=prior_errors,
            skip_errors=skip_errors,
        )
        seeds = prep.seeds
        total = doc["total_contacts"]
        if seeds:
            updated = await self.repo.reserve_contacts(
                campaign_id=campaign_id, count=len(seeds), limit=self.max_contacts
            )
            if updated is None:
                raise Problem(
                    413,
                    "Too large",
                    f"{len(seeds)} new contacts would exceed the limit of {self.max_contacts} "
                    f"per campaign (it has {doc['total_contacts']})",
                    [{"field": "contacts", "message": "too many contacts"}],
                )
            total = updated["total_contacts"]
            await self.repo.add_phone_map(campaign_id=campaign_id, phones=phone_entries(seeds))
            await self.outbox.publish(self._contact_events(who, campaign_id, seeds, total=total))
        if prep.opted_out or prep.opted_out_phones:
            await self.repo.inc_campaign(
                campaign_id=campaign_id,
                inc={
                    "opted_out_excluded": prep.opted_out,
                    "opted_out_phones_dropped": prep.opted_out_phones,
                    "skipped_rows": len(prep.skipped),
                },
            )
        log.info(
            "contacts added", campaign_id=campaign_id, added=len(seeds), opted_out=prep.opted_out
        )
        return {
            "campaign_id": campaign_id,
            "added": len(seeds),
            "duplicates": prep.duplicates,
            "opted_out": prep.opted_out,
            "opted_out_phones": prep.opted_out_phones,
            "skipped": prep.skipped,
            "total_contacts": total,
        }

    async def remove_contacts(
        self, *, who: Principal, campaign_id: str, phones: list[str], default_region: str | None
    ) -> dict[str, Any]:
        doc = await self._open_campaign(who, campaign_id)
        wanted = normalise_phones(
            phones, default_region=default_region or doc.get("default_region")
        )
        phone_map = await self.repo.phone_map(campaign_id=campaign_id)
        owners = {p: phone_map[p][0] for p in wanted if p in phone_map}
        found = await self.repo.leads_by_id(
            campaign_id=campaign_id, lead_ids=sorted(set(owners.values()))
        )
        result = classify_removal(wanted, owners, {d["_id"]: d for d in found})
        gone = set(result.removed)
        await self.repo.drop_phones(
            entries=[(doc_id, p) for p, (task, doc_id) in phone_map.items() if task in gone]
        )
        total = doc["total_contacts"]
        if result.removed:
            await self.repo.inc_campaign(
                campaign_id=campaign_id, inc={"total_contacts": -len(result.removed)}
            )
            total -= len(result.removed)
            event = ContactsRemoved(
                campaign_id=campaign_id, task_ids=result.removed, total_contacts=total
            )
            await self.outbox.publish([self._out(who, event, campaign_id)])
        return {
            "campaign_id": campaign_id,
            "removed": len(result.removed),
            "not_found": len(result.not_found),
            "already_called": len(result.already_called),
            "details": {"not_found": result.not_found, "already_called": result.already_called},
            "total_contacts": total,
        }

    async def act(
        self, *, who: Principal, campaign_id: str, action: str, reason: str | None
    ) -> Doc:
        doc = await self.repo.campaign(workspace_id=who.workspace_id, campaign_id=campaign_id)
        if doc is None:
            raise Problem(404, "Not found", f"campaign {campaign_id} not found")
        if action == "pause" and doc["status"] == "paused" and _auto_paused(doc):
            # The operator takes over a pause a service made: it now waits for their resume.
            updated = await self.repo.set_status(
                campaign_id=campaign_id,
                expect=["paused"],
                status="paused",
                fields={"status_reason": reason},
            )
            if updated is None:
                raise Problem(409, "Conflict", "the campaign changed meanwhile; retry")
            return updated
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
                retry_calls=0,
                connected_seconds=0.0,
                daily={},
            )
        if status == "running" and not doc.get("started_at"):
            fields["started_at"] = self.clock.now()
        if status in ("completed", "stopped"):
            fields["ended_at"] = self.clock.now()
        if status in ("completed", "stopped") or action == "restart":
            fields["completion_pending"] = None
        updated = await self.repo.set_status(
            campaign_id=doc["_id"], expect=[doc["status"]], status=status, fields=fields
        )
        if updated is not None:
            change = CampaignStatusChanged(
                campaign_id=doc["_id"],
                status=status,
                previous=doc["status"],
                action=action,
                reason=reason,
            )
            out = self._out(doc, change, doc["_id"])
            # The allocator hears of it first and directly (keyed by org): a pause stops new
            # dispatches one hop after the answer, not after the planner's hop as well.
            direct = Outgoing(
                ALLOCATOR,
                self.bus.envelope(change, org_id=doc["org_id"], workspace_id=doc["workspace_id"]),
                doc["org_id"],
            )
            await self.outbox.publish([direct, out])
        return updated

    async def run_schedules(self) -> None:
        """Start scheduled campaigns at their start time; complete them at their end time."""
        now = self.clock.now()
        for doc in await self.repo.due_to_end(now=now):
            await self._transition(doc, "completed", action=None, reason="schedule_ended")
        for doc in await self.repo.due_to_start(now=now):
            await self._transition(doc, "running", action=None, reason="schedule_started")

    # read models (the lead projection is built from our own campaign events, off the request
    # path: a 10,000-contact batch is a few documents to write, not 10,000) -----------------
    async def on_contacts_added(self, env: Envelope, ev: ContactsAdded) -> None:
        await self.repo.insert_leads(
            lead_docs(ev.contacts, campaign_id=ev.campaign_id, workspace_id=env.workspace_id)
        )

    async def on_contacts_removed(self, env: Envelope, ev: ContactsRemoved) -> None:
        await self.repo.mark_removed(lead_ids=ev.task_ids)

    # -------------------------------------------------------------------------------
    async def on_drained(self, env: Envelope, ev: CampaignDrained) -> None:
        """Nothing of the campaign is left to call. It shows ``completed`` once its counters
        hold every disposition the planner applied (those come on another topic and may still
        be on their way), or after ``completion_grace`` seconds at the latest."""
        doc = await self.repo.campaigns.find_one({"_id": ev.campaign_id})
        if doc is None or doc["status"] not in ("running", "paused", "scheduled"):
            return
        if ev.dispositions is None or _counted(doc) >= ev.dispositions:
            await self._complete(doc)
            return
        pending = {"dispositions": ev.dispositions, "since": time.time()}
        doc = await self.repo.set_status(
            campaign_id=doc["_id"],
            expect=[doc["status"]],
            status=doc["status"],
            fields={"completion_pending": pending},
        )
        if doc is not None and _counted(doc) >= ev.dispositions:
            await self._complete(doc)  # the last one was counted meanwhile

    async def on_counted(self, campaign_id: str, counters: Doc) -> None:
        """A disposition of a campaign waiting for its counters was counted."""
        pending = counters.get("completion_pending") or {}
        if _counted(counters) >= pending.get("dispositions", 0):
            await self._complete_by_id(campaign_id)

    async def complete_overdue(self) -> None:
        """Campaigns that waited ``completion_grace`` for their counters complete anyway."""
        for doc in await self.repo.pending_completions(
            older_than=time.time() - self.completion_grace
        ):
            log.warning("campaign completed before its counters caught up", campaign_id=doc["_id"])
            await self._complete_by_id(doc["_id"])

    async def _complete_by_id(self, campaign_id: str) -> None:
        doc = await self.repo.campaigns.find_one({"_id": campaign_id})
        if doc is not None:
            await self._complete(doc)

    async def _complete(self, doc: Doc) -> None:
        if doc["status"] in ("running", "paused", "scheduled"):
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

    async def on_resume_requested(self, env: Envelope, ev: CampaignResumeRequested) -> None:
        """The service that paused a campaign asks to resume it (the circuit breaker after its
        cool-down): only a campaign still paused for that reason resumes; a human's pause,
        stop or anything newer wins."""
        doc = await self.repo.campaigns.find_one({"_id": ev.campaign_id})
        if doc is None or doc["status"] != "paused" or doc.get("status_reason") != ev.reason:
            return
        await self._transition(doc, "running", action=None, reason=f"{ev.reason}_resumed")
        log.info(
            "campaign resumed automatically",
            campaign_id=ev.campaign_id,
            reason=ev.reason,
            detail=ev.detail,
        )


AUTO_PAUSES = frozenset({"circuit_breaker"})


def _auto_paused(doc: Doc) -> bool:
    """Paused by a service that will resume it by itself (see ``on_resume_requested``)."""
    return doc.get("status_reason") in AUTO_PAUSES


def _counted(counters: Doc) -> int:
    """Dispositions in a campaign's counters."""
    return sum(int(v) for v in (counters.get("disposition_summary") or {}).values())
