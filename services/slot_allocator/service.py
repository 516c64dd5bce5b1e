"""The allocator's service layer: persists queue and leases, grants slots, expires leases."""

from __future__ import annotations

import heapq
import time
from datetime import datetime, timedelta
from typing import Any

import structlog

from outbound_core.clock import Clock, utc
from outbound_core.events import (
    CampaignWithdrawn,
    DialRequest,
    Envelope,
    LeaseExpired,
    LeaseReleased,
    SlotsConfigured,
    TaskDispatched,
    TaskQueued,
    TaskWithdrawn,
)
from outbound_core.ids import new_id
from outbound_core.kafka import EventBus
from outbound_core.topics import DISPATCH
from slot_allocator.domain import Allocator, Lease, QueuedTask, WorkspaceSlots
from slot_allocator.metrics import DECISION_SECONDS, QUEUE_WAIT_SECONDS
from slot_allocator.repository import AllocatorRepository, Doc

log = structlog.get_logger(__name__)


def _queue_doc(item: QueuedTask) -> Doc:
    return {
        "_id": f"{item.task_id}:{item.attempt}",
        "task_id": item.task_id,
        "attempt": item.attempt,
        "org_id": item.org_id,
        "workspace_id": item.workspace_id,
        "campaign_id": item.campaign_id,
        "campaign_priority": item.campaign_priority,
        "attempt_priority": item.attempt_priority,
        "callback": item.callback,
        "eligible_at": item.eligible_at,
        "max_slots": item.max_slots,
        "payload": item.payload,
        "caller_numbers": list(item.caller_numbers),
    }


def _item_from(doc: Doc) -> QueuedTask:
    return QueuedTask(
        task_id=doc["task_id"],
        attempt=doc["attempt"],
        org_id=doc["org_id"],
        workspace_id=doc["workspace_id"],
        campaign_id=doc["campaign_id"],
        campaign_priority=doc["campaign_priority"],
        attempt_priority=doc["attempt_priority"],
        callback=doc["callback"],
        eligible_at=utc(doc["eligible_at"]),
        max_slots=doc.get("max_slots"),
        payload=doc["payload"],
        caller_numbers=tuple(doc.get("caller_numbers", ())),
    )


class SlotService:
    def __init__(
        self,
        *,
        repo: AllocatorRepository,
        bus: EventBus,
        clock: Clock,
        allocator: Allocator,
        lease_ttl: timedelta,
        lease_min_real: float,
        start_grace: float = 0.0,
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.clock = clock
        self.alloc = allocator
        self.lease_ttl = lease_ttl
        self.lease_min_real = lease_min_real
        self.expiries: list[
            tuple[float, datetime, str, str]
        ] = []  # heap  # (real, virtual, org, lease)
        self.lease_docs: dict[str, Doc] = {}
        self.kick: Any = lambda: None
        self.start_grace = start_grace
        self._expire_from: float | None = None

    async def rebuild(self) -> None:
        await self.repo.ensure_indexes()
        for d in await self.repo.configs():
            self._apply_config(d["_id"], SlotsConfigured.model_validate(d))
        for d in await self.repo.active_leases():
            self._track_lease(d)
        for d in await self.repo.queued():
            self.alloc.enqueue(_item_from(d))
        log.info("allocator rebuilt", leases=len(self.lease_docs))

    def _track_lease(self, d: Doc) -> None:
        self.alloc.add_lease(
            Lease(
                lease_id=d["_id"],
                task_id=d["task_id"],
                attempt=d["attempt"],
                org_id=d["org_id"],
                workspace_id=d["workspace_id"],
                campaign_id=d["campaign_id"],
                from_number=d.get("from_number"),
            )
        )
        self.lease_docs[d["_id"]] = d
        heapq.heappush(
            self.expiries, (d["real_deadline"], utc(d["expires_at"]), d["org_id"], d["_id"])
        )

    # allocator.v1 ------------------------------------------------------------------------------
    async def on_task_queued(self, env: Envelope, ev: TaskQueued) -> None:
        key = (ev.task_id, ev.attempt)
        if self.alloc.holds(env.org_id, key):
            return
        if await self.repo.was_dispatched(task_id=ev.task_id, attempt=ev.attempt):
            return
        item = QueuedTask(
            task_id=ev.task_id,
            attempt=ev.attempt,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            campaign_id=ev.campaign_id,
            campaign_priority=ev.campaign_priority,
            attempt_priority=ev.attempt_priority,
            callback=ev.callback,
            eligible_at=ev.eligible_at,
            max_slots=ev.max_slots,
            caller_numbers=tuple(ev.caller_numbers),
            payload={"dial": ev.dial.model_dump(mode="json"), "correlation_id": env.correlation_id},
        )
        await self.repo.save_queued(doc=_queue_doc(item))
        self.alloc.enqueue(item)
        self.kick()

    async def on_task_withdrawn(self, env: Envelope, ev: TaskWithdrawn) -> None:
        gone = self.alloc.withdraw(env.org_id, ev.task_id, ev.attempt)
        await self.repo.drop_queued(ids=[f"{g.task_id}:{g.attempt}" for g in gone])

    async def on_campaign_withdrawn(self, env: Envelope, ev: CampaignWithdrawn) -> None:
        self.alloc.withdraw_campaign(env.org_id, ev.campaign_id)
        await self.repo.drop_campaign(campaign_id=ev.campaign_id)

    async def on_slots_configured(self, env: Envelope, ev: SlotsConfigured) -> None:
        doc = ev.model_dump(mode="json")
        if await self.repo.save_config(org_id=env.org_id, revision=ev.revision, doc=doc):
            self._apply_config(env.org_id, ev)
            log.info("slot settings applied", org_id=env.org_id, revision=ev.revision)
            self.kick()

    def _apply_config(self, org_id: str, ev: SlotsConfigured) -> None:
        self.alloc.configure(
            org_id,
            total_slots=ev.total_slots
            if ev.total_slots is not None
            else self.alloc.default_org_slots,
            workspaces={
                w.workspace_id: WorkspaceSlots(allocation=w.allocation, mode=w.mode)
                for w in ev.workspaces
            },
            number_cps=ev.number_cps,
            default_cps=ev.default_cps,
        )

    async def on_lease_released(self, env: Envelope, ev: LeaseReleased) -> None:
        await self.repo.end_lease(lease_id=ev.lease_id, status="released", at=self.clock.now())
        if self.alloc.release(env.org_id, ev.lease_id) is not None:
            self.lease_docs.pop(ev.lease_id, None)
            self.kick()

    # loops -------------------------------------------------------------------------------------
    async def dispatch(self) -> None:
        for org_id in list(self.alloc.orgs):
            while True:
                now = self.clock.now()
                started = time.perf_counter()
                granted = self.alloc.grant(org_id, new_id("lease"), now)
                if granted is None:
                    break
                DECISION_SECONDS.observe(time.perf_counter() - started)
                QUEUE_WAIT_SECONDS.observe(
                    max(0.0, self.clock.real_seconds(now - granted[0].eligible_at))
                )
                await self._send(*granted)

    async def _send(self, item: QueuedTask, lease: Lease) -> None:
        now = self.clock.now()
        expires_at = now + self.lease_ttl
        real_deadline = time.time() + max(
            self.lease_min_real, self.clock.real_seconds(self.lease_ttl)
        )
        doc: Doc = {
            "_id": lease.lease_id,
            "task_id": item.task_id,
            "attempt": item.attempt,
            "org_id": item.org_id,
            "workspace_id": item.workspace_id,
            "campaign_id": item.campaign_id,
            "status": "active",
            "granted_at": now,
            "expires_at": expires_at,
            "real_deadline": real_deadline,
            "from_number": lease.from_number,
        }
        try:
            inserted = await self.repo.insert_lease(doc=doc)
        except BaseException:
            # Not stored, so not tracked for expiry either: give the slot back and keep the
            # task queued, or the slot would leak until a restart.
            self.alloc.release(item.org_id, lease.lease_id)
            self.alloc.enqueue(item)
            raise
        if not inserted:
            # That attempt was dispatched before (a stale queue entry): never twice.
            self.alloc.release(item.org_id, lease.lease_id)
            await self.repo.drop_queued(ids=[f"{item.task_id}:{item.attempt}"])
            return
        self.lease_docs[lease.lease_id] = doc
        heapq.heappush(self.expiries, (real_deadline, expires_at, item.org_id, lease.lease_id))
        await self.repo.drop_queued(ids=[f"{item.task_id}:{item.attempt}"])
        await self.bus.emit(
            DISPATCH,
            TaskDispatched(
                lease_id=lease.lease_id,
                task_id=item.task_id,
                campaign_id=item.campaign_id,
                attempt=item.attempt,
                lease_expires_at=expires_at,
                dial=DialRequest.model_validate(
                    {**item.payload["dial"], "from_number": lease.from_number}
                    if lease.from_number
                    else item.payload["dial"]
                ),
            ),
            key=item.task_id,
            org_id=item.org_id,
            workspace_id=item.workspace_id,
            dedupe_parts=(lease.lease_id,),
        )

    async def expire(self) -> None:
        real_now, now = time.time(), self.clock.now()
        # Releases published while this process was down wait in Kafka, and the consumer gets
        # its partitions only once the dead member's session has timed out: expire nothing
        # until they have had time to arrive.
        if self._expire_from is None:
            self._expire_from = real_now + self.start_grace
        if real_now < self._expire_from:
            return
        while self.expiries and self.expiries[0][0] <= real_now and self.expiries[0][1] <= now:
            _, _, org_id, lease_id = heapq.heappop(self.expiries)
            doc = self.lease_docs.pop(lease_id, None)
            if doc is None:
                continue  # released meanwhile
            if not await self.repo.end_lease(lease_id=lease_id, status="expired", at=now):
                self.alloc.release(org_id, lease_id)
                continue
            self.alloc.release(org_id, lease_id)
            log.warning("lease expired", lease_id=lease_id, task_id=doc["task_id"])
            await self.bus.emit(
                DISPATCH,
                LeaseExpired(
                    lease_id=lease_id,
                    task_id=doc["task_id"],
                    campaign_id=doc["campaign_id"],
                    attempt=doc["attempt"],
                ),
                key=doc["task_id"],
                org_id=org_id,
                workspace_id=doc["workspace_id"],
                dedupe_parts=(lease_id,),
            )
            self.kick()
