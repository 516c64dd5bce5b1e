"""The planner's service layer: applies events to tasks through the pure rules in
``domain``/``windows`` and publishes what follows (TaskQueued to the allocator, lead updates)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from outbound_core.clock import Clock, to_ms, utc
from outbound_core.events import (
    CallAborted,
    CampaignCreated,
    CampaignDrained,
    CampaignStatusChanged,
    CampaignUpdated,
    CampaignWithdrawn,
    ContactsAdded,
    ContactsRemoved,
    DialRequest,
    DispositionRecorded,
    Envelope,
    LeadUpdated,
    LeaseExpired,
    TaskDispatched,
    TaskQueued,
    TaskStatusChanged,
    TaskWithdrawn,
)
from outbound_core.kafka import EventBus
from outbound_core.topics import ALLOCATOR, LEADS, TASKS_STATUS
from outbound_core.windows import CallingWindow, Closed
from task_planner.domain import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    FINAL_STATUSES,
    SCHEDULABLE_STATUSES,
    DecisionCache,
    Next,
    PhoneState,
    Position,
    after_attempt,
    caller_numbers,
    initial_position,
    lead_status,
    replanned_due,
    restart_fields,
)
from task_planner.late_ends import attempt_open, fold_late_end
from task_planner.realtime import attempt_priority, dial_extras, is_realtime, policy_for
from task_planner.repository import Doc, PlannerRepository
from task_planner.timer import DueTimer
from task_planner.windowing import window_for

log = structlog.get_logger(__name__)


def _position(task: Doc) -> Position:
    return Position(
        phone_index=task["phone_index"],
        pass_number=task["pass_number"],
        phones=tuple(PhoneState(**p) for p in task["phone_states"]),
    )


class Planner:
    def __init__(
        self,
        *,
        repo: PlannerRepository,
        bus: EventBus,
        clock: Clock,
        tick_batch: int,
        recheck: timedelta,
        stale_after: float = 60.0,
        reconcile_batch: int = 1000,
        tick_concurrency: int = 32,
        drain_verify_seconds: float = 30.0,
    ) -> None:
        self.repo = repo
        self.drain_verify_seconds = drain_verify_seconds
        self.bus = bus
        self.clock = clock
        self.timer = DueTimer()
        self.campaigns: dict[str, Doc] = {}
        self.tick_batch = tick_batch
        self.tick_concurrency = tick_concurrency
        self.recheck = recheck
        self.stale_after = stale_after
        self.reconcile_batch = reconcile_batch
        self.kick: Any = lambda: None
        # campaigns one of whose tasks just became final: checked for a drain together, once
        # per check loop, because the check reads the campaign's tasks (see check_drains)
        self.drain_due: dict[str, tuple[Envelope | None, Doc]] = {}
        self.kick_drains: Any = lambda: None
        # per campaign: tasks still active when last counted, less the ones that became final
        # since; a drain is checked only once it reaches zero (or it is unknown)
        self.active_hint: dict[str, int] = {}
        self.drain_later: dict[str, tuple[Envelope | None, Doc]] = {}
        self._verified_at = time.monotonic()
        self.unsure: set[str] = set()  # tasks whose last decision failed mid-write

    # start-up ----------------------------------------------------------------------------------
    async def rebuild(self) -> None:
        """Reload campaign settings and every schedulable task of a running campaign; re-send
        TaskQueued for tasks left queued (the allocator ignores ones it already holds)."""
        await self.repo.ensure_indexes()
        self.campaigns = {c["_id"]: c for c in await self.repo.all_campaigns()}
        running = {cid for cid in self.campaigns if self._running(cid)}
        entries = []
        async for t in self.repo.iter_schedulable():
            if t["campaign_id"] in running and t.get("due_at") is not None:
                entries.append((utc(t["due_at"]), t["_id"]))
        self.timer.extend(entries)
        for t in await self.repo.in_status(campaign_id=None, statuses=["queued"]):
            if self._running(t["campaign_id"]):
                await self._publish_queued(t)
        # a drain decided just before a stop may not have been published
        for cid in running:
            c = self.campaigns[cid]
            if c.get("org_id") and c.get("workspace_id"):
                self._drain_soon(None, {"campaign_id": cid, **c})
        log.info("planner rebuilt", due_entries=len(self.timer), campaigns=len(self.campaigns))

    async def reconcile(self) -> int:
        """Re-send TaskQueued for tasks queued longer than ``stale_after`` (real seconds) ago:
        the embedded broker keeps nothing across a restart, and MongoDB is the truth. The
        allocator ignores a TaskQueued it already holds, so a task merely waiting for a slot
        costs one duplicate event per period."""
        now = self.clock.now()
        cutoff = now - timedelta(seconds=self.stale_after * self.clock.speed)
        sent = 0
        for t in await self.repo.stale_queued(before=cutoff, limit=self.reconcile_batch):
            if not self._running(t["campaign_id"]):
                continue
            if await self.repo.touch_announced(task_id=t["_id"], attempt=t["attempt"], at=now):
                await self._publish_queued(t)
                sent += 1
        if sent:
            log.info("re-announced stale queued tasks", count=sent)
        return sent

    async def republish(self) -> None:
        """The broker lost everything: every lead's current state again (same seq, same event
        id), every queued task to the allocator, and the drain of campaigns left with nothing
        to call (their completion may have been lost)."""
        drained: dict[str, Doc] = {}
        async for t in self.repo.iter_all():
            await self._publish_lead(t, causation=None)
            if t["status"] == "queued" and self._running(t["campaign_id"]):
                await self._publish_queued(t)
            if t["status"] not in ACTIVE_STATUSES:
                drained.setdefault(t["campaign_id"], t)
        for task in drained.values():
            if self._running(task["campaign_id"]):
                await self._check_drained(None, task)
        log.info("planner state re-published", campaigns=len(drained))

    def _running(self, campaign_id: str) -> bool:
        c = self.campaigns.get(campaign_id)
        return c is not None and c.get("status") == "running"

    # campaigns.v1 ------------------------------------------------------------------------------
    async def on_campaign_created(self, env: Envelope, ev: CampaignCreated) -> None:
        fields = {
            **ev.model_dump(mode="python", exclude={"total_contacts", "campaign_id"}),
            "org_id": env.org_id,
            "workspace_id": env.workspace_id,
        }
        fields["status"] = self.campaigns.get(ev.campaign_id, {}).get("status", ev.status)
        await self.repo.upsert_campaign(campaign_id=ev.campaign_id, fields=fields)
        await self.repo.set_expected_total(campaign_id=ev.campaign_id, total=ev.total_contacts)
        self.campaigns[ev.campaign_id] = {
            **self.campaigns.get(ev.campaign_id, {}),
            **fields,
            "_id": ev.campaign_id,
        }

    async def on_contacts_added(self, env: Envelope, ev: ContactsAdded) -> None:
        self.active_hint.pop(ev.campaign_id, None)  # more tasks: counted again
        now = to_ms(self.clock.now())
        docs = []
        due: dict[str, datetime] = {}
        for c in ev.contacts:
            pos = initial_position(len(c.phones))
            # a realtime task is not looked at before its startAfter (no write until then)
            start = to_ms(c.config.start_after) if c.config and c.config.start_after else now
            due[c.task_id] = max(now, start)
            docs.append(
                {
                    "_id": c.task_id,
                    "campaign_id": ev.campaign_id,
                    "org_id": env.org_id,
                    "workspace_id": env.workspace_id,
                    "phones": c.phones,
                    "name": c.name,
                    "timezone": c.timezone,
                    "variables": c.variables,
                    "sim_outcomes": c.sim_outcomes,
                    "task_ref": c.task_ref,
                    "config": c.config.model_dump(mode="python") if c.config else None,
                    "status": "pending",
                    "due_at": due[c.task_id],
                    "attempt": 0,
                    "calls": 0,
                    "seq": 0,
                    "phone_index": pos.phone_index,
                    "pass_number": pos.pass_number,
                    "phone_states": [asdict(p) for p in pos.phones],
                    "callback": False,
                    "history": [],
                    "last_disposition": None,
                    "created_at": now,
                }
            )
        await self.repo.insert_tasks(docs)
        await self.repo.set_expected_total(campaign_id=ev.campaign_id, total=ev.total_contacts)
        camp = self.campaigns.setdefault(ev.campaign_id, {"_id": ev.campaign_id})
        camp["expected_total"] = max(camp.get("expected_total", 0), ev.total_contacts)
        if self._running(ev.campaign_id):
            for c in ev.contacts:
                self.timer.push(due[c.task_id], c.task_id)
            self.kick()

    async def on_campaign_updated(self, env: Envelope, ev: CampaignUpdated) -> None:
        """New settings apply to every task not yet dialled: due times are re-derived from the
        last attempt and the new retry interval, and the new window is applied when each task
        is considered. Queued tasks keep their place (they are about to be dialled)."""
        fields = ev.model_dump(mode="python", exclude={"campaign_id", "changed"})
        await self.repo.upsert_campaign(campaign_id=ev.campaign_id, fields=fields)
        camp = self.campaigns.setdefault(ev.campaign_id, {"_id": ev.campaign_id})
        camp.update(fields)
        interval = timedelta(minutes=ev.retry_interval_minutes)
        for t in await self.repo.in_status(
            campaign_id=ev.campaign_id, statuses=SCHEDULABLE_STATUSES
        ):
            last = t["history"][-1] if t.get("history") else None
            due = to_ms(
                replanned_due(
                    last_ended=utc(last["ended_at"]) if last else None,
                    last_pass=last.get("pass_number") if last else None,
                    pass_number=t["pass_number"],
                    callback=bool(t.get("callback")),
                    current_due=utc(t["due_at"]) if t.get("due_at") else self.clock.now(),
                    retry_interval=interval,
                    now=self.clock.now(),
                )
            )
            new = await self.repo.transition(
                task_id=t["_id"],
                expect_status=[t["status"]],
                expect_attempt=t["attempt"],
                set_fields={"due_at": due},
            )
            if new is None:
                continue
            await self._publish_lead(new, causation=env)
            if self._running(ev.campaign_id):
                self.timer.push(due, t["_id"])
        self.kick()

    async def _restart(self, env: Envelope, campaign_id: str) -> None:
        """Every task back to pending on its first phone; a call in progress finishes first."""
        run = await self.repo.begin_run(campaign_id=campaign_id, event_id=env.id)
        if run is None:
            return  # this restart was already applied
        self.campaigns.setdefault(campaign_id, {"_id": campaign_id})["run"] = run
        await self.bus.emit(
            ALLOCATOR,
            CampaignWithdrawn(campaign_id=campaign_id, reason="restart"),
            key=env.org_id,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            dedupe_parts=(env.id, "restart"),
        )
        now = to_ms(self.clock.now())
        for t in await self.repo.in_status(campaign_id=campaign_id, statuses=ALL_STATUSES):
            if t["status"] == "dialing":
                await self.repo.mark_restart_after_call(task_id=t["_id"])
                continue
            new = await self.repo.transition(
                task_id=t["_id"],
                expect_status=[t["status"]],
                expect_attempt=t["attempt"],
                set_fields={
                    **restart_fields(len(t["phones"]), now),
                    "run_first_attempt": t["attempt"] + 1,
                },
            )
            if new is not None:
                await self._publish_lead(new, causation=env)
        log.info("campaign restarted", campaign_id=campaign_id, run=run)

    async def on_contacts_removed(self, env: Envelope, ev: ContactsRemoved) -> None:
        waiting = [*SCHEDULABLE_STATUSES, "queued"]
        archived: Doc | None = None
        for task in await self.repo.get_many(ev.task_ids):
            if task["status"] not in waiting or task.get("history"):
                continue  # already called (or already final): it keeps its data
            new = await self.repo.transition(
                task_id=task["_id"],
                expect_status=waiting,
                expect_attempt=task["attempt"],
                set_fields={"status": "archived", "reason": "removed", "due_at": None},
            )
            if new is None:
                continue
            if task["status"] == "queued":
                await self.bus.emit(
                    ALLOCATOR,
                    TaskWithdrawn(
                        task_id=task["_id"],
                        campaign_id=ev.campaign_id,
                        attempt=task["attempt"],
                        reason="removed",
                    ),
                    key=env.org_id,
                    org_id=env.org_id,
                    workspace_id=env.workspace_id,
                    causation=env,
                    dedupe_parts=(env.id, task["_id"]),
                )
            await self._publish_lead(new, causation=env)
            archived = new
        if archived is not None and self._running(ev.campaign_id):
            await self._check_drained(env, archived)

    async def on_status_changed(self, env: Envelope, ev: CampaignStatusChanged) -> None:
        self.active_hint.pop(ev.campaign_id, None)  # a restart makes tasks active again
        await self.repo.upsert_campaign(campaign_id=ev.campaign_id, fields={"status": ev.status})
        self.campaigns.setdefault(ev.campaign_id, {"_id": ev.campaign_id})["status"] = ev.status
        if ev.action == "restart":
            await self._restart(env, ev.campaign_id)
        if ev.status == "running":
            for t in await self.repo.schedulable(campaign_id=ev.campaign_id):
                self.timer.push(utc(t["due_at"]), t["_id"])
            for t in await self.repo.in_status(campaign_id=ev.campaign_id, statuses=["queued"]):
                await self._publish_queued(t)
            self.kick()
            # a campaign with nothing left to call (all its contacts opted out, say) never
            # sees a task become final: it is checked for its drain now
            self._drain_soon(
                env,
                {
                    "campaign_id": ev.campaign_id,
                    "org_id": env.org_id,
                    "workspace_id": env.workspace_id,
                },
            )
            return
        # Any other status: nothing new may be dialled; the allocator drops what it holds.
        await self.bus.emit(
            ALLOCATOR,
            CampaignWithdrawn(campaign_id=ev.campaign_id, reason=ev.status),
            key=env.org_id,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            dedupe_parts=(env.id,),
        )
        if ev.status == "paused" or ev.status == "scheduled":
            # Queued but not dialled: back to waiting (the allocator dropped them), one by one
            # so that each lead shows it.
            now = to_ms(self.clock.now())
            for t in await self.repo.in_status(campaign_id=ev.campaign_id, statuses=["queued"]):
                new = await self.repo.transition(
                    task_id=t["_id"],
                    expect_status=["queued"],
                    expect_attempt=t["attempt"],
                    set_fields={"status": "pending", "due_at": now, "reason": ev.status},
                )
                if new is not None:
                    await self._publish_lead(new, causation=env)
        elif ev.status in ("stopped", "completed"):
            await self._archive_campaign(env, ev.campaign_id, reason=ev.reason or ev.status)

    async def _archive_campaign(self, env: Envelope, campaign_id: str, *, reason: str) -> None:
        waiting = [*SCHEDULABLE_STATUSES, "queued", "paused"]
        for t in await self.repo.in_status(campaign_id=campaign_id, statuses=waiting):
            new = await self.repo.transition(
                task_id=t["_id"],
                expect_status=waiting,
                expect_attempt=None,
                set_fields={"status": "archived", "reason": reason, "due_at": None},
            )
            if new is not None:
                await self._publish_lead(new, causation=env)

    # dispatch.v1 -------------------------------------------------------------------------------
    async def on_dispatched(self, env: Envelope, ev: TaskDispatched) -> None:
        new = await self.repo.transition(
            task_id=ev.task_id,
            expect_status=["queued"],
            expect_attempt=ev.attempt,
            set_fields={"status": "dialing", "dialing_since": self.clock.now()},
        )
        if new is not None:
            await self._publish_lead(new, causation=env)

    async def on_lease_expired(self, env: Envelope, ev: LeaseExpired) -> None:
        # The call never reported an end: the attempt counts as failed (retryable).
        await self._resolve_attempt(
            env,
            task_id=ev.task_id,
            attempt=ev.attempt,
            disposition="failed",
            terminal=False,
            callback_at=None,
            ended_at=self.clock.now(),
            call_id=None,
        )

    # calls.v1 ----------------------------------------------------------------------------------
    async def on_call_aborted(self, env: Envelope, ev: CallAborted) -> None:
        """Nothing was dialled: back to waiting, without using up the policy. Unless nothing
        may follow: the campaign ended while the dispatch was on its way (its stop archived
        only what was waiting at that moment), or the task itself was archived meanwhile."""
        ended = self.campaigns.get(ev.campaign_id, {}).get("status")
        fields: Doc = (
            {"status": "archived", "due_at": None, "reason": ended}
            if ended in ("stopped", "completed")
            else {"status": "pending", "due_at": to_ms(self.clock.now()), "reason": ev.reason}
        )
        new = await self.repo.transition(
            task_id=ev.task_id,
            expect_status=["queued", "dialing"],
            expect_attempt=ev.attempt,
            set_fields=fields,
        )
        if new is not None and new["status"] == "pending" and new.get("archive_after_call"):
            new = await self.repo.transition(
                task_id=ev.task_id,
                expect_status=["pending"],
                expect_attempt=ev.attempt,
                set_fields={"status": "archived", "due_at": None, "reason": "archived"},
            )
        if new is None:
            return
        await self._publish_lead(new, causation=env)
        if new["status"] == "archived":
            self._drain_soon(env, new)
        elif self._running(new["campaign_id"]):
            self.timer.push(utc(new["due_at"]), new["_id"])

    # dispositions.v1 ---------------------------------------------------------------------------
    async def on_disposition(self, env: Envelope, ev: DispositionRecorded) -> None:
        await self._resolve_attempt(
            env,
            task_id=ev.task_id,
            attempt=ev.attempt,
            disposition=ev.disposition,
            terminal=ev.terminal,
            callback_at=ev.callback_at,
            ended_at=self.clock.now(),
            call_id=ev.call_id,
            retryable=ev.custom and not ev.terminal,
            phone_index=ev.phone_index,
        )

    async def _resolve_attempt(
        self,
        env: Envelope,
        *,
        task_id: str,
        attempt: int,
        disposition: str,
        terminal: bool,
        callback_at: datetime | None,
        ended_at: datetime,
        call_id: str | None,
        retryable: bool = False,
        phone_index: int | None = None,
    ) -> None:
        task = await self.repo.get(task_id)
        if task is None:
            raise LookupError(f"unknown task {task_id}")
        if not attempt_open(status=task["status"], task_attempt=task["attempt"], attempt=attempt):
            if call_id is not None and attempt >= int(task.get("run_first_attempt", 0)):
                # A call's end (possibly late): folded into its attempt, once.
                await self._fold_late(
                    env,
                    task_id=task_id,
                    attempt=attempt,
                    call_id=call_id,
                    phone_index=phone_index,
                    disposition=disposition,
                    terminal=terminal,
                    callback_at=callback_at,
                    ended_at=ended_at,
                    retryable=retryable,
                )
                return
            # Already applied (redelivery) or stale: what follows the current state again, so
            # that a failure between the write and the publish is repaired (same seq, same
            # event id).
            if any(h.get("attempt") == attempt for h in task.get("history", [])):
                await self._follow_up(env, task)
            return
        if task.get("restart_after_call"):
            # The campaign restarted while this call was in progress: the call is over, so
            # the task now starts again like every other.
            now = to_ms(self.clock.now())
            new = await self.repo.transition(
                task_id=task_id,
                expect_status=["queued", "dialing"],
                expect_attempt=attempt,
                set_fields={
                    **restart_fields(len(task["phones"]), now),
                    "run_first_attempt": attempt + 1,
                },
            )
            if new is not None:
                await self._publish_lead(new, causation=env)
                if self._running(new["campaign_id"]):
                    self.timer.push(now, task_id)
                    self.kick()
            return
        campaign = self.campaigns.get(task["campaign_id"], {})
        policy = policy_for(task, campaign)
        if retryable:  # a custom label its workspace defined as retryable
            policy = replace(policy, retry_outcomes=policy.retry_outcomes | {disposition})
        nxt: Next = after_attempt(
            policy=policy,
            pos=_position(task),
            disposition=disposition,
            terminal=terminal,
            ended_at=ended_at,
            callback_at=callback_at,
        )
        fields: Doc = {
            "status": nxt.status,
            "phone_index": nxt.position.phone_index,
            "pass_number": nxt.position.pass_number,
            "phone_states": [asdict(p) for p in nxt.position.phones],
            "due_at": to_ms(nxt.due_at) if nxt.due_at else None,
            "callback": nxt.callback,
            "last_disposition": nxt.final_disposition or disposition,
            "reason": None,
        }
        ended = self.campaigns.get(task["campaign_id"], {}).get("status")
        if nxt.due_at is not None and ended in ("stopped", "completed"):
            # The campaign ended while this call was in flight: nothing may follow it, and
            # the stop only archived what was waiting at that moment.
            fields.update(status="archived", due_at=None, reason=ended)
        elif nxt.due_at is not None and task.get("archive_after_call"):
            fields.update(status="archived", due_at=None, reason="archived")
        history = {
            "attempt": attempt,
            "call_id": call_id,
            "phone_index": task["phone_index"],
            "pass_number": task["pass_number"],
            "disposition": disposition,
            "ended_at": ended_at,
        }
        new = await self.repo.transition(
            task_id=task_id,
            expect_status=["queued", "dialing"],
            expect_attempt=attempt,
            set_fields=fields,
            push_history=history,
        )
        if new is None:
            # Not applied by this write: another report of the attempt came first, or this
            # very write was applied and its reply lost (the driver retried it after a database
            # restart, and the retry found nothing left to match). Either way what follows the
            # task's current state must happen, or a contact could wait for ever.
            now_task = await self.repo.get(task_id)
            if now_task is not None and any(
                h.get("attempt") == attempt for h in now_task.get("history", [])
            ):
                await self._follow_up(env, now_task)
            return
        await self._publish_lead(new, causation=env)
        if fields["due_at"] is not None and self._running(new["campaign_id"]):
            self.timer.push(fields["due_at"], task_id)
            self.kick()
        if fields["due_at"] is None:
            self._drain_soon(env, new)

    async def _follow_up(self, env: Envelope, task: Doc) -> None:
        """What follows a task's stored state, again: its lead (same seq, same event id), its
        next due time in the timer, or its campaign's drain check. Each is idempotent."""
        await self._publish_lead(task, causation=env)
        due = task.get("due_at")
        if task["status"] in SCHEDULABLE_STATUSES and due is not None:
            if self._running(task["campaign_id"]):
                self.timer.push(utc(due), task["_id"])
                self.kick()
        elif task["status"] in FINAL_STATUSES:
            self._drain_soon(env, task)

    async def _fold_late(
        self,
        env: Envelope,
        *,
        task_id: str,
        attempt: int,
        call_id: str,
        phone_index: int | None,
        disposition: str,
        terminal: bool,
        callback_at: datetime | None,
        ended_at: datetime,
        retryable: bool,
    ) -> None:
        """The end of a call whose attempt was already decided without it (its lease expired,
        or it was aborted after the network took it): into its history and counters, once
        (see ``late_ends``). Compare-and-set on the task's ``seq``; retried if it moved."""
        for _ in range(5):
            task = await self.repo.get(task_id)
            if task is None:
                raise LookupError(f"unknown task {task_id}")
            policy = policy_for(task, self.campaigns.get(task["campaign_id"], {}))
            if retryable:
                policy = replace(policy, retry_outcomes=policy.retry_outcomes | {disposition})
            pos = _position(task)
            fold = fold_late_end(
                history=list(task.get("history") or []),
                pos=pos,
                attempt=attempt,
                call_id=call_id,
                phone_index=phone_index,
                disposition=disposition,
                terminal=terminal,
                ended_at=ended_at,
                policy=policy,
            )
            if fold.kind == "duplicate":
                await self._publish_lead(task, causation=env)
                return
            status = task["status"]
            fields: Doc = {
                "history": fold.history,
                "phone_states": [asdict(p) for p in fold.position.phones],
            }
            withdraw = False
            settled = status in (*SCHEDULABLE_STATUSES, "queued")
            if fold.finishes and (settled or status == "not_reachable"):
                fields.update(
                    status="completed",
                    due_at=None,
                    callback=False,
                    last_disposition=disposition,
                    reason=None,
                )
                withdraw = status == "queued"
            elif fold.kind == "append" and settled and fold.history[-1]["attempt"] == attempt:
                # Handed back uncounted, and nothing decided since: decide now, as if it had
                # ended in time (so the policy's attempts are never exceeded).
                same_phone = phone_index is None or phone_index == pos.phone_index
                if same_phone:
                    nxt = after_attempt(
                        policy=policy,
                        pos=pos,
                        disposition=disposition,
                        terminal=terminal,
                        ended_at=ended_at,
                        callback_at=callback_at,
                    )
                    fields.update(
                        status=nxt.status,
                        phone_index=nxt.position.phone_index,
                        pass_number=nxt.position.pass_number,
                        phone_states=[asdict(p) for p in nxt.position.phones],
                        due_at=to_ms(nxt.due_at) if nxt.due_at else None,
                        callback=nxt.callback,
                        last_disposition=nxt.final_disposition or disposition,
                        reason=None,
                    )
                    withdraw = status == "queued"
            new = await self.repo.replace_if_seq(
                task_id=task_id, seq=task["seq"], set_fields=fields
            )
            if new is None:
                continue  # the task moved meanwhile: decide again on its new state
            log.warning(
                "late call end folded into its attempt",
                task_id=task_id,
                attempt=attempt,
                call_id=call_id,
                kind=fold.kind,
                disposition=disposition,
                status=new["status"],
            )
            if withdraw:
                await self.bus.emit(
                    ALLOCATOR,
                    TaskWithdrawn(
                        task_id=task_id,
                        campaign_id=task["campaign_id"],
                        attempt=task["attempt"],
                        reason="late_end",
                    ),
                    key=task["org_id"],
                    org_id=task["org_id"],
                    workspace_id=task["workspace_id"],
                    causation=env,
                    dedupe_parts=(task_id, task["attempt"], "late_end"),
                )
            await self._publish_lead(new, causation=env)
            due = new.get("due_at")
            if new["status"] in SCHEDULABLE_STATUSES and due is not None:
                if self._running(new["campaign_id"]):
                    self.timer.push(utc(due), task_id)
                    self.kick()
            elif new["status"] in FINAL_STATUSES and status not in FINAL_STATUSES:
                self._drain_soon(env, new)
            return
        raise RuntimeError(f"task {task_id} kept changing while a late end was folded")

    def _drain_soon(self, env: Envelope | None, task: Doc) -> None:
        """One of the campaign's tasks became final: check the campaign for a drain once the
        tasks counted active at the last check have all become final, in the next check loop
        (one check for every task that became final meanwhile). The check counts the
        campaign's active tasks; run for every final task it made a campaign's end quadratic
        in its size on a document server that counts by reading them."""
        campaign_id = task["campaign_id"]
        hint = self.active_hint.get(campaign_id)
        if hint is not None:
            self.active_hint[campaign_id] = hint - 1
            if hint - 1 > 0:
                self.drain_later[campaign_id] = (env, task)  # verified now and then
                return
        self.drain_due[campaign_id] = (env, task)
        self.kick_drains()

    async def check_drains(self) -> None:
        due, self.drain_due = self.drain_due, {}
        if time.monotonic() - self._verified_at >= self.drain_verify_seconds:
            # the hint is a shortcut, never the truth: now and then every campaign it held back
            self._verified_at = time.monotonic()
            due = {**self.drain_later, **due}
            self.drain_later = {}
        for campaign_id, (env, task) in due.items():
            try:
                await self._check_drained(env, task)
            except BaseException:
                # not checked (the database did not answer): again at the next loop
                self.drain_due.setdefault(campaign_id, (env, task))
                raise

    async def _check_drained(self, env: Envelope | None, task: Doc) -> None:
        """Publish CampaignDrained once no task of ``task``'s campaign can be called again."""
        campaign_id = task["campaign_id"]
        if self.campaigns.get(campaign_id, {}).get("kind") == "realtime":
            return  # a lead stream never runs dry: the campaign runs until it is archived
        active = await self.repo.count_active(campaign_id=campaign_id, statuses=ACTIVE_STATUSES)
        self.active_hint[campaign_id] = active
        if active:
            return
        total = await self.repo.count(campaign_id=campaign_id)
        if total < self.campaigns.get(campaign_id, {}).get("expected_total", 0):
            return  # contacts still arriving
        dispositions = await self.repo.count_dispositions(campaign_id=campaign_id)
        await self.bus.emit(
            LEADS,
            CampaignDrained(campaign_id=campaign_id, total_tasks=total, dispositions=dispositions),
            key=campaign_id,
            org_id=task["org_id"],
            workspace_id=task["workspace_id"],
            causation=env,
            # the run: a restarted campaign drains again under a new event id
            dedupe_parts=(campaign_id, total, self.campaigns.get(campaign_id, {}).get("run", 0)),
        )

    # the due-task loop ------------------------------------------------------------------------
    async def tick(self) -> None:
        now = self.clock.now()
        due = self.timer.pop_due(now, self.tick_batch)
        if not due:
            return
        try:
            tasks = {t["_id"]: t for t in await self.repo.get_many([tid for _, tid in due])}
        except BaseException:
            # The database did not answer (a restart): the popped entries are the only
            # reminder of these due tasks in this process, so put them back for the next tick.
            self.timer.extend(due)
            raise
        cache = DecisionCache(now, recheck=self.recheck)
        ready: dict[str, Doc] = {}
        for due_at, task_id in due:
            t = tasks.get(task_id)
            if t is None or t["status"] not in SCHEDULABLE_STATUSES or t.get("due_at") is None:
                continue
            if task_id in self.unsure:
                # its last decision failed mid-write: the write may have moved its due time
                # without the timer hearing of it; follow the stored one
                self.unsure.discard(task_id)
                if to_ms(utc(t["due_at"])) != to_ms(due_at):
                    self.timer.push(utc(t["due_at"]), task_id)
                    continue
            if to_ms(utc(t["due_at"])) != to_ms(due_at) or not self._running(t["campaign_id"]):
                continue  # stale entry, or parked until the campaign runs again
            ready[task_id] = t
        # Each decision costs a database write and a broker publish (a few ms each, mostly
        # waiting): made one after another they capped the planner at a few hundred tasks/s
        # whatever the slots. Made concurrently (bounded), the waits overlap. Tasks are
        # independent (one entry per task here) and the allocator orders what it queues by
        # priority and eligible time, not by arrival.
        gate = asyncio.Semaphore(self.tick_concurrency)

        async def consider(t: Doc) -> None:
            async with gate:
                await self._consider(t, now, cache)

        results = await asyncio.gather(
            *(consider(t) for t in ready.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for t, r in zip(ready.values(), results, strict=True):
            if isinstance(r, BaseException):  # considered again at the next tick
                self.unsure.add(t["_id"])
                self.timer.push(utc(t["due_at"]), t["_id"])
        if len(due) == self.tick_batch:
            self.kick()
        if errors:
            # Re-raised after the others finished: the ticker logs it and runs again; a task
            # whose decision failed was put back above (a queued one whose announcement was
            # lost is found again by the reconciliation).
            raise errors[0]

    def window_for(self, task: Doc, campaign: Doc) -> CallingWindow | Closed:
        return window_for(task, campaign)

    async def _consider(self, task: Doc, now: datetime, cache: DecisionCache) -> None:
        campaign = self.campaigns[task["campaign_id"]]
        decision = cache.decide(self.window_for(task, campaign))
        if decision.action == "block":
            new = await self.repo.transition(
                task_id=task["_id"],
                expect_status=SCHEDULABLE_STATUSES,
                expect_attempt=task["attempt"],
                set_fields={"status": "blocked", "reason": decision.reason, "due_at": None},
            )
            if new is not None:
                log.warning("task can never be called", task_id=task["_id"], reason=decision.reason)
                await self._publish_lead(new, causation=None)
                await self._check_drained(None, new)
            return
        if decision.action == "ended":
            if is_realtime(task):  # its own endAfter passed: nothing ends it but itself
                new = await self.repo.transition(
                    task_id=task["_id"],
                    expect_status=SCHEDULABLE_STATUSES,
                    expect_attempt=task["attempt"],
                    set_fields={"status": "archived", "reason": "end_after_passed", "due_at": None},
                )
                if new is not None:
                    await self._publish_lead(new, causation=None)
            return  # the schedule ended: the campaign's end archives it
        if decision.action == "wait":
            assert decision.due_at is not None
            due = to_ms(decision.due_at)
            new = await self.repo.transition(
                task_id=task["_id"],
                expect_status=SCHEDULABLE_STATUSES,
                expect_attempt=task["attempt"],
                set_fields={"due_at": due},
            )
            if new is not None:
                self.timer.push(due, task["_id"])
            return
        new = await self.repo.transition(
            task_id=task["_id"],
            expect_status=SCHEDULABLE_STATUSES,
            expect_attempt=task["attempt"],
            inc_attempt=True,
            set_fields={"status": "queued", "queued_at": now, "announced_at": now},
        )
        if new is not None:
            await self._publish_queued(new)

    async def _publish_queued(self, task: Doc) -> None:
        campaign = self.campaigns.get(task["campaign_id"], {})
        extras = dial_extras(task)
        # a realtime task's own caller id wins over the campaign's pool
        pool = [extras["from_number"]] if extras.get("from_number") else caller_numbers(campaign)
        dial = DialRequest(
            phone=task["phones"][task["phone_index"]],
            phone_index=task["phone_index"],
            pass_number=task["pass_number"],
            name=task.get("name", ""),
            timezone=task.get("timezone"),
            variables=task.get("variables", {}),
            sim_outcomes=task.get("sim_outcomes", []),
            **extras,
        )
        await self.bus.emit(
            ALLOCATOR,
            TaskQueued(
                task_id=task["_id"],
                campaign_id=task["campaign_id"],
                attempt=task["attempt"],
                campaign_priority=campaign.get("priority", "normal"),
                attempt_priority=attempt_priority(task),
                callback=bool(task.get("callback")),
                eligible_at=utc(task.get("queued_at") or self.clock.now()),
                max_slots=campaign.get("max_slots"),
                caller_numbers=pool,
                caller_cps=campaign.get("caller_cps") or {},
                dial=dial,
            ),
            key=task["org_id"],
            org_id=task["org_id"],
            workspace_id=task["workspace_id"],
            dedupe_parts=(task["_id"], task["attempt"]),
        )

    async def _publish_lead(self, task: Doc, *, causation: Envelope | None) -> None:
        attempts = len(task.get("history", []))
        phone = task["phones"][task["phone_index"]]
        await self.bus.emit(
            LEADS,
            LeadUpdated(
                task_id=task["_id"],
                campaign_id=task["campaign_id"],
                seq=task["seq"],
                status=lead_status(task["status"], attempts),
                last_disposition=task.get("last_disposition"),
                current_phone=phone,
                phone_index=task["phone_index"],
                pass_number=task["pass_number"],
                attempt=attempts,
                next_attempt_at=task.get("due_at")
                if task["status"] in SCHEDULABLE_STATUSES
                else None,
                reason=task.get("reason"),
                name=task.get("name", ""),
                variables=task.get("variables", {}),
            ),
            key=task["_id"],
            org_id=task["org_id"],
            workspace_id=task["workspace_id"],
            causation=causation,
            dedupe_parts=(task["_id"], task["seq"]),
        )
        if is_realtime(task):
            await self._publish_task_status(task, status=lead_status(task["status"], attempts))

    async def _publish_task_status(self, task: Doc, *, status: str) -> None:
        """Realtime producers follow their tasks on tasks.status.v1, keyed by their task_ref."""
        await self.bus.emit(
            TASKS_STATUS,
            TaskStatusChanged(
                task_ref=task.get("task_ref"),
                task_id=task["_id"],
                campaign_id=task["campaign_id"],
                status=status,
                reason=task.get("reason"),
                attempt=len(task.get("history", [])),
                last_disposition=task.get("last_disposition"),
                next_attempt_at=task.get("due_at")
                if task["status"] in SCHEDULABLE_STATUSES
                else None,
            ),
            key=task.get("task_ref") or task["_id"],
            org_id=task["org_id"],
            workspace_id=task["workspace_id"],
            dedupe_parts=(task["_id"], task["seq"], "status"),
        )
