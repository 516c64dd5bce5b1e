"""Realtime campaigns and tasks: the service layer shared by ``POST /v1/tasks`` and the
``tasks.submit.v1`` consumer. A batch of submissions is checked with a handful of queries
(campaigns, agents, caller ids, opt-outs and earlier submissions, each one ``$in`` for the
whole batch), persisted with one ``insert_many`` and handed to the planner as ``ContactsAdded``
events whose contacts carry their own configuration: the batch-campaign path, not a parallel
one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from campaign_api.realtime import (
    RejectedTask,
    Rejection,
    TaskRequest,
    check_task,
    task_id_for,
)
from campaign_api.realtime_repo import Doc, RealtimeRepository
from campaign_api.repository import ApiRepository
from outbound_core.clock import Clock
from outbound_core.events import (
    AgentSnapshot,
    CallingHours,
    CampaignCreated,
    ContactsAdded,
    ContactSeed,
    Payload,
    TaskConfig,
    TaskStatusChanged,
)
from outbound_core.ids import new_id
from outbound_core.kafka import EventBus
from outbound_core.outbox import Outbox, Outgoing
from outbound_core.topics import CAMPAIGNS, TASKS_STATUS

log = structlog.get_logger(__name__)
EVENT_BYTES = 400_000  # payload bytes per ContactsAdded event
Verdict = Literal["accepted", "duplicate", "rejected"]


@dataclass
class Submitted:
    """What became of one submission."""

    index: int
    verdict: Verdict
    task_ref: str | None = None
    task_id: str | None = None
    campaign_id: str | None = None
    rejection: Rejection | None = None
    raw: Any = None


def agent_snapshot(agent: Doc) -> AgentSnapshot:
    return AgentSnapshot(
        agent_id=agent["_id"],
        name=agent["name"],
        language=agent["language"],
        greeting=agent.get("greeting", ""),
        system_prompt=agent.get("system_prompt", ""),
        voicemail_message=agent.get("voicemail_message", ""),
    )


class RealtimeService:
    def __init__(
        self,
        *,
        repo: ApiRepository,
        rt: RealtimeRepository,
        bus: EventBus,
        outbox: Outbox,
        clock: Clock,
        contacts_per_event: int = 500,
    ) -> None:
        self.repo = repo
        self.rt = rt
        self.bus = bus
        self.outbox = outbox
        self.clock = clock
        self.contacts_per_event = contacts_per_event

    # campaigns ---------------------------------------------------------------------------------
    async def create_campaign(
        self,
        *,
        org_id: str,
        workspace_id: str,
        name: str,
        agent: Doc,
        max_slots: int | None,
        priority: str,
        from_number: str | None,
    ) -> Doc:
        """A realtime campaign holds only its id, status, name, default agent and slot limits;
        it runs from creation (each task has its own window) until it is archived."""
        now = self.clock.now()
        campaign_id = new_id("cmp")
        doc: Doc = {
            "_id": campaign_id,
            "org_id": org_id,
            "workspace_id": workspace_id,
            "kind": "realtime",
            "name": name,
            "status": "running",
            "script_id": agent["_id"],
            "language": agent["language"],
            "total_contacts": 0,
            "max_attempts": 1,
            "retry_interval_minutes": 1,
            "retry_outcomes": [],
            "priority": priority,
            "max_slots": max_slots,
            "from_number": from_number,
            "voicemail_action": "hangup",
            "calling_hours": CallingHours(start="00:00", end="00:00").model_dump(mode="json"),
            "schedule": None,
            "created_at": now,
            "started_at": now,
            "calls_made": 0,
            "calls_connected": 0,
            "call_seconds": 0.0,
            "cost": 0.0,
            "disposition_summary": {},
        }
        await self.repo.insert_campaign(doc)
        created = CampaignCreated(
            campaign_id=campaign_id,
            name=name,
            kind="realtime",
            status="running",
            agent=agent_snapshot(agent),
            language=agent["language"],
            calling_hours=CallingHours(start="00:00", end="00:00"),
            priority=priority,
            max_slots=max_slots,
            from_number=from_number,
        )
        env = self.bus.envelope(created, org_id=org_id, workspace_id=workspace_id)
        await self.outbox.publish([Outgoing(CAMPAIGNS, env, campaign_id)])
        log.info("realtime campaign created", campaign_id=campaign_id)
        return doc

    # submission --------------------------------------------------------------------------------
    async def submit(
        self,
        *,
        org_id: str,
        workspace_id: str,
        items: list[Any],
        refs: list[str | None] | None = None,
        notify_rejections: bool = False,
    ) -> list[Submitted]:
        """Check, persist and plan a batch of tasks of one workspace. Idempotent by
        ``task_ref``: a task submitted again (in this batch or any earlier one, over HTTP or
        Kafka) is reported as a duplicate of the first and creates nothing."""
        out: list[Submitted] = []
        ok: list[tuple[Submitted, TaskRequest]] = []
        for i, raw in enumerate(items):
            ref = refs[i] if refs else None
            try:
                req = check_task(raw, default_task_ref=ref)
            except RejectedTask as exc:
                out.append(Submitted(i, "rejected", task_ref=ref, rejection=exc.rejection, raw=raw))
                continue
            sub = Submitted(
                i,
                "accepted",
                task_ref=req.task_ref,
                task_id=task_id_for(workspace_id=workspace_id, task_ref=req.task_ref),
                campaign_id=req.campaign_id,
                raw=raw,
            )
            out.append(sub)
            ok.append((sub, req))
        await self._check_against_database(org_id, workspace_id, ok)
        ok = [(s, r) for s, r in ok if s.verdict == "accepted"]

        # duplicates: of an earlier submission, or twice in this batch
        earlier = await self.rt.existing([s.task_id for s, _ in ok if s.task_id])
        seen: set[str] = set()
        fresh: list[tuple[Submitted, TaskRequest]] = []
        for s, r in ok:
            assert s.task_id is not None
            if s.task_id in earlier or s.task_id in seen:
                s.verdict = "duplicate"
                continue
            seen.add(s.task_id)
            fresh.append((s, r))
        now = self.clock.now()
        docs = [self._task_doc(org_id, workspace_id, s, r, now) for s, r in fresh]
        # Hand on first, then persist: a crash in between leaves the planner with a task the
        # redelivered message (or the client's retry) hands on again and then persists; the
        # planner and the lead projection ignore a task they already have.
        await self._plan(docs)
        raced = await self.rt.insert(docs)
        for s, _ in fresh:
            if s.task_id in raced:
                s.verdict = "duplicate"
        new_docs = [d for d in docs if d["_id"] not in raced]
        await self._count(docs, raced)
        await self._notify(org_id, workspace_id, out, notify_rejections=notify_rejections)
        if new_docs:
            log.info("realtime tasks accepted", count=len(new_docs))
        return out

    async def _check_against_database(
        self, org_id: str, workspace_id: str, ok: list[tuple[Submitted, TaskRequest]]
    ) -> None:
        if not ok:
            return
        # independent look-ups at once: they are on the submission → dial path
        campaigns, numbers, opted_out = await asyncio.gather(
            self.rt.campaigns_by_id(sorted({r.campaign_id for _, r in ok})),
            self.rt.numbers_of(
                workspace_id=workspace_id,
                numbers=sorted({r.config.from_number for _, r in ok if r.config.from_number}),
            ),
            self.repo.suppressed_among(org_id=org_id, phones=sorted({r.phone for _, r in ok})),
        )
        agent_ids = {r.agent_id for _, r in ok if r.agent_id}
        agent_ids |= {c["script_id"] for c in campaigns.values() if c.get("script_id")}
        agents = await self.rt.agents_by_id(workspace_id=workspace_id, ids=sorted(agent_ids))
        for s, r in ok:
            rejection = self._rejection(workspace_id, campaigns, agents, numbers, opted_out, r)
            if rejection is not None:
                s.verdict, s.rejection = "rejected", rejection
                continue
            agent = agents[r.agent_id or campaigns[r.campaign_id]["script_id"]]
            r.config = r.config.model_copy(update={"agent": agent_snapshot(agent)})

    @staticmethod
    def _rejection(
        workspace_id: str,
        campaigns: dict[str, Doc],
        agents: dict[str, Doc],
        numbers: set[str],
        opted_out: set[str],
        r: TaskRequest,
    ) -> Rejection | None:
        c = campaigns.get(r.campaign_id)
        if c is None:
            return Rejection("unknown_campaign", "campaign", f"no campaign {r.campaign_id}")
        if c["workspace_id"] != workspace_id:
            return Rejection(
                "campaign_other_workspace",
                "campaign",
                f"campaign {r.campaign_id} is not a campaign of this workspace",
            )
        if c.get("kind") != "realtime":
            return Rejection("not_realtime_campaign", "campaign", "tasks go to a realtime campaign")
        if c["status"] in ("stopped", "completed"):
            return Rejection("campaign_archived", "campaign", f"the campaign is {c['status']}")
        agent_id = r.agent_id or c.get("script_id")
        if agent_id not in agents:
            return Rejection("unknown_agent", "agent", f"no agent {agent_id} in this workspace")
        if r.config.from_number and r.config.from_number not in numbers:
            return Rejection(
                "unknown_from",
                "from",
                f"{r.config.from_number} is not a number of this workspace (see /v1/numbers)",
            )
        if r.phone in opted_out:
            return Rejection("opted_out", "phone", "the number is on the org's opt-out list")
        return None

    def _task_doc(
        self, org_id: str, workspace_id: str, s: Submitted, r: TaskRequest, now: Any
    ) -> Doc:
        return {
            "_id": s.task_id,
            "org_id": org_id,
            "workspace_id": workspace_id,
            "campaign_id": r.campaign_id,
            "task_ref": r.task_ref,
            "phone": r.phone,
            "name": r.name,
            "variables": r.variables,
            "sim_outcomes": r.sim_outcomes,
            "config": r.config.model_dump(mode="python"),
            "created_at": now,
        }

    async def _count(self, docs: list[Doc], raced: set[str]) -> None:
        by_campaign: dict[str, int] = {}
        for d in docs:
            if d["_id"] not in raced:
                by_campaign[d["campaign_id"]] = by_campaign.get(d["campaign_id"], 0) + 1
        for campaign_id, n in by_campaign.items():
            await self.repo.inc_campaign(campaign_id=campaign_id, inc={"total_contacts": n})

    async def _plan(self, docs: list[Doc]) -> None:
        """ContactsAdded per campaign: few, large events (``total_contacts`` is not used for
        realtime campaigns, which never drain)."""
        if not docs:
            return
        by_campaign: dict[str, list[Doc]] = {}
        for d in docs:
            by_campaign.setdefault(d["campaign_id"], []).append(d)
        sends = []
        for campaign_id, group in by_campaign.items():
            total = 0
            for chunk in self._chunks([self._seed(d) for d in group]):
                event = ContactsAdded(campaign_id=campaign_id, contacts=chunk, total_contacts=total)
                env = self.bus.envelope(
                    event, org_id=group[0]["org_id"], workspace_id=group[0]["workspace_id"]
                )
                sends.append(self.bus.publish(CAMPAIGNS, env, key=campaign_id))
        await asyncio.gather(*sends)

    def _chunks(self, seeds: list[ContactSeed]) -> list[list[ContactSeed]]:
        """Few, large events, each well under the broker's 1 MB message limit (a task carries
        its agent's prompts, which may be long)."""
        out: list[list[ContactSeed]] = []
        batch: list[ContactSeed] = []
        size = 0
        for seed in seeds:
            cost = len(seed.model_dump_json())
            if batch and (len(batch) >= self.contacts_per_event or size + cost > EVENT_BYTES):
                out.append(batch)
                batch, size = [], 0
            batch.append(seed)
            size += cost
        if batch:
            out.append(batch)
        return out

    @staticmethod
    def _seed(d: Doc) -> ContactSeed:
        return ContactSeed(
            task_id=d["_id"],
            phones=[d["phone"]],
            name=d.get("name", ""),
            variables=d.get("variables", {}),
            sim_outcomes=d.get("sim_outcomes", []),
            task_ref=d.get("task_ref"),
            config=TaskConfig.model_validate(d["config"]),
        )

    async def _notify(
        self, org_id: str, workspace_id: str, out: list[Submitted], *, notify_rejections: bool
    ) -> None:
        sends = []
        for s in out:
            if s.verdict == "rejected" and not notify_rejections:
                continue
            payload: Payload = TaskStatusChanged(
                task_ref=s.task_ref,
                task_id=s.task_id,
                campaign_id=s.campaign_id,
                status="rejected" if s.verdict == "rejected" else "accepted",
                reason=s.rejection.reason if s.rejection else None,
                detail=s.rejection.message if s.rejection else None,
                duplicate=s.verdict == "duplicate",
            )
            env = self.bus.envelope(payload, org_id=org_id, workspace_id=workspace_id)
            key = s.task_ref or s.task_id or env.id
            sends.append(self.bus.publish(TASKS_STATUS, env, key=key))
        await asyncio.gather(*sends)
