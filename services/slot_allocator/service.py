"""The allocator's service layer: persists queue and leases, grants slots, expires leases."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from outbound_core.clock import Clock, utc
from outbound_core.events import (
    CampaignStatusChanged,
    CampaignWithdrawn,
    DialRequest,
    Envelope,
    LeaseExpired,
    LeaseReleased,
    LeaseRenewed,
    SlotsConfigured,
    TaskDispatched,
    TaskQueued,
    TaskWithdrawn,
)
from outbound_core.ids import new_id
from outbound_core.kafka import EventBus
from outbound_core.topics import DISPATCH
from slot_allocator.domain import Allocator, Lease, QueuedTask, WorkspaceSlots
from slot_allocator.leases import is_due, renewal_verdict, renewed_deadlines
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
        "caller_cps": dict(item.caller_cps),
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
        caller_cps=dict(doc.get("caller_cps") or {}),
    )


class SlotService:
    """One allocator instance. It owns the orgs whose ``allocator.v1`` partition Kafka assigned
    to it (``partition_of`` maps an org to its partition; None = one instance owns every org)
    and holds each owned org's state in memory, rebuilt from MongoDB when it takes the org over
    and fenced by the org's epoch (see ``repository``)."""

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
        instance_id: str | None = None,
        partition_of: Callable[[str], int] | None = None,
        send_concurrency: int = 32,
    ) -> None:
        self.repo = repo
        self.send_concurrency = send_concurrency
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
        self.instance_id = instance_id or new_id("lease")
        self.partition_of = partition_of
        self.partitions: set[int] = set()
        self.owned: dict[str, int] = {}  # org -> the epoch this instance holds it under
        self.expire_from: dict[str, float] = {}  # org -> no expiry before (real time)
        self._claiming: dict[str, asyncio.Lock] = {}
        self.held: dict[str, set[str]] = {}  # org -> campaigns not running (nothing dispatched)

    async def rebuild(self) -> None:
        """Start-up. With partitions, orgs are taken over as Kafka assigns them; without, this
        one instance owns every org the database knows."""
        await self.repo.ensure_indexes()
        if self.partition_of is None:
            for org_id in sorted(await self.repo.org_ids()):
                await self.ensure_owned(org_id)
            log.info("allocator rebuilt", orgs=len(self.owned), leases=len(self.lease_docs))

    # ownership -----------------------------------------------------------------------------------
    def _mine(self, org_id: str) -> bool:
        return self.partition_of is None or self.partition_of(org_id) in self.partitions

    async def on_assigned(self, partitions: set[int]) -> None:
        """Kafka gave this instance ``partitions``: take over every known org on them."""
        self.partitions |= partitions
        for org_id in sorted(await self.repo.org_ids()):
            if org_id not in self.owned and self._mine(org_id):
                await self.ensure_owned(org_id)
        log.info("partitions assigned", partitions=sorted(partitions), orgs=len(self.owned))
        self.kick()

    async def on_revoked(self, partitions: set[int]) -> None:
        """Kafka took ``partitions`` away: forget their orgs (their next owner rebuilds them)."""
        self.partitions -= partitions
        for org_id in [o for o in self.owned if not self._mine(o)]:
            self._forget(org_id)
        log.info("partitions revoked", partitions=sorted(partitions), orgs=len(self.owned))

    def _forget(self, org_id: str) -> None:
        self.owned.pop(org_id, None)
        self.expire_from.pop(org_id, None)
        self.held.pop(org_id, None)
        org = self.alloc.orgs.pop(org_id, None)
        for lease_id in org.leases if org is not None else ():
            self.lease_docs.pop(lease_id, None)

    async def ensure_owned(self, org_id: str) -> None:
        """Take ``org_id`` over unless this instance holds it: a new epoch (which fences the
        previous owner), then the org's settings, leases and queue from MongoDB."""
        if org_id in self.owned:
            return
        lock = self._claiming.setdefault(org_id, asyncio.Lock())
        async with lock:
            if org_id in self.owned:
                return
            self.alloc.orgs.pop(org_id, None)
            epoch, granted = await self.repo.claim(
                org_id=org_id, owner=self.instance_id, at=time.time()
            )
            conf = await self.repo.config_of(org_id=org_id)
            if conf is not None:
                self._apply_config(org_id, SlotsConfigured.model_validate(conf))
            else:
                self.alloc.org(org_id)
            self.held[org_id] = await self.repo.held_campaigns(org_id=org_id)
            leased: set[tuple[str, int]] = set()
            docs = {d["_id"]: d for d in await self.repo.active_leases(org_id=org_id)}
            statuses = await self.repo.lease_statuses(ids=[i for i in granted if i not in docs])
            for lease_id, summary in granted.items():
                if lease_id in docs:
                    continue
                if lease_id not in statuses:
                    # granted, but the previous owner stopped before storing the lease: store
                    # it now (it holds its slot until released or expired)
                    doc = {**summary, "_id": lease_id, "status": "active"}
                    if await self.repo.insert_lease(doc=doc):
                        docs[lease_id] = doc
                        await self.repo.drop_queued(ids=[f"{doc['task_id']}:{doc['attempt']}"])
                        continue
                    statuses = {**statuses, **await self.repo.lease_statuses(ids=[lease_id])}
                    if statuses.get(lease_id) == "active":  # stored by the old owner meanwhile
                        docs.update(
                            {d["_id"]: d for d in await self.repo.active_leases(org_id=org_id)}
                        )
                        continue
                # ended, or a grant of an attempt already leased: a map entry left behind
                await self.repo.unfence_lease(org_id=org_id, lease_id=lease_id)
            for d in docs.values():
                self._track_lease(d)
                leased.add((d["task_id"], d["attempt"]))
            for d in await self.repo.queued(org_id=org_id):
                if (d["task_id"], d["attempt"]) not in leased and d[
                    "campaign_id"
                ] not in self.held.get(org_id, ()):
                    self.alloc.enqueue(_item_from(d))
            self.owned[org_id] = epoch
            # the previous owner may have stopped between storing a lease and publishing its
            # dispatch: publish every active lease's again (same event id; the dialer places
            # at most one call per attempt and ignores a dispatch it has seen)
            for d in docs.values():
                await self._publish_dispatch(d)
            # releases published while the previous owner was gone wait in Kafka: give them
            # time to arrive before expiring anything of this org
            self.expire_from[org_id] = time.time() + self.start_grace
            log.info(
                "org taken over",
                org_id=org_id,
                epoch=epoch,
                leases=len(docs),
                queued=self.alloc.org(org_id).queued,
            )
        self.kick()

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
    async def on_batch(self, items: list[tuple[Envelope, Any]]) -> None:
        """A fetch of allocator.v1, in order. A run of TaskQueued (a campaign's start queues
        thousands at once) is stored in two round trips instead of two per task, so the
        releases behind it in the partition are not held up; every other event is applied
        on its own, in its place."""
        run: list[tuple[Envelope, TaskQueued]] = []
        for env, ev in items:
            if isinstance(ev, TaskQueued):
                run.append((env, ev))
                continue
            if run:
                await self.on_tasks_queued(run)
                run = []
            await self.handlers[type(ev)](env, ev)
        if run:
            await self.on_tasks_queued(run)

    @property
    def handlers(self) -> dict[type[Any], Callable[[Envelope, Any], Awaitable[None]]]:
        return {
            TaskQueued: self.on_task_queued,
            TaskWithdrawn: self.on_task_withdrawn,
            CampaignWithdrawn: self.on_campaign_withdrawn,
            CampaignStatusChanged: self.on_campaign_status,
            LeaseReleased: self.on_lease_released,
            LeaseRenewed: self.on_lease_renewed,
            SlotsConfigured: self.on_slots_configured,
        }

    async def on_task_queued(self, env: Envelope, ev: TaskQueued) -> None:
        await self.on_tasks_queued([(env, ev)])

    async def on_tasks_queued(self, events: list[tuple[Envelope, TaskQueued]]) -> None:
        fresh: dict[tuple[str, int], QueuedTask] = {}
        for env, ev in events:
            await self.ensure_owned(env.org_id)
            key = (ev.task_id, ev.attempt)
            if self.alloc.holds(env.org_id, key) or key in fresh:
                continue
            if ev.campaign_id in self.held.get(env.org_id, ()):
                continue  # queued by the planner before it heard of the pause: never dispatched
            fresh[key] = self._queued(env, ev)
        if not fresh:
            return
        for key, lease in (await self.repo.leases_of(keys=list(fresh))).items():
            # Never dispatched twice. But the planner announces an attempt again only while
            # it still waits for its outcome: what followed the grant was lost (the broker
            # restarted empty). Tell it again under the same event ids; each is idempotent.
            del fresh[key]
            await self._repeat_grant(lease)
        await self.repo.save_queued_many(docs=[_queue_doc(item) for item in fresh.values()])
        for item in fresh.values():
            self.alloc.enqueue(item)
        if fresh:
            self.kick()

    @staticmethod
    def _queued(env: Envelope, ev: TaskQueued) -> QueuedTask:
        return QueuedTask(
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
            caller_cps=dict(ev.caller_cps),
            payload={"dial": ev.dial.model_dump(mode="json"), "correlation_id": env.correlation_id},
        )

    async def on_task_withdrawn(self, env: Envelope, ev: TaskWithdrawn) -> None:
        await self.ensure_owned(env.org_id)
        gone = self.alloc.withdraw(env.org_id, ev.task_id, ev.attempt)
        await self.repo.drop_queued(ids=[f"{g.task_id}:{g.attempt}" for g in gone])

    async def on_campaign_withdrawn(self, env: Envelope, ev: CampaignWithdrawn) -> None:
        await self.ensure_owned(env.org_id)
        self.alloc.withdraw_campaign(env.org_id, ev.campaign_id)
        await self.repo.drop_campaign(campaign_id=ev.campaign_id)

    async def on_campaign_status(self, env: Envelope, ev: CampaignStatusChanged) -> None:
        """Straight from campaign-api: a campaign that is not running is held (its queue
        dropped, later TaskQueued ignored) until it runs again."""
        await self.ensure_owned(env.org_id)
        held = ev.status != "running"
        if not await self.repo.set_hold(
            campaign_id=ev.campaign_id, org_id=env.org_id, held=held, at=env.occurred_at
        ):
            return
        holds = self.held.setdefault(env.org_id, set())
        if held:
            holds.add(ev.campaign_id)
            self.alloc.withdraw_campaign(env.org_id, ev.campaign_id)
            await self.repo.drop_campaign(campaign_id=ev.campaign_id)
            log.info("campaign held", campaign_id=ev.campaign_id, status=ev.status)
        else:
            holds.discard(ev.campaign_id)

    async def on_slots_configured(self, env: Envelope, ev: SlotsConfigured) -> None:
        await self.ensure_owned(env.org_id)
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
        await self.ensure_owned(env.org_id)
        # The slot is free for the next decision at once; its lease's end is written while that
        # grant is on its way. If this instance dies before both writes, the release is not
        # committed and comes again: the writes are idempotent, and a lease still active in
        # MongoDB only ever makes a successor count one slot too many until then, never less.
        if self.alloc.release(env.org_id, ev.lease_id) is not None:
            self.lease_docs.pop(ev.lease_id, None)
            self.kick()
        await asyncio.gather(
            self.repo.end_lease(lease_id=ev.lease_id, status="released", at=self.clock.now()),
            self.repo.unfence_lease(org_id=env.org_id, lease_id=ev.lease_id),
        )

    async def on_lease_renewed(self, env: Envelope, ev: LeaseRenewed) -> None:
        """The dialer still places, or still has live, this lease's call: a full TTL more,
        only for the lease's current holder (see ``leases``)."""
        await self.ensure_owned(env.org_id)
        doc = await self.repo.get_lease(lease_id=ev.lease_id)
        verdict = renewal_verdict(doc, task_id=ev.task_id, attempt=ev.attempt)
        if verdict != "renew" or doc is None:
            log.info("lease renewal refused", lease_id=ev.lease_id, task_id=ev.task_id, why=verdict)
            return
        now, real_now = self.clock.now(), time.time()
        new = renewed_deadlines(
            now=now,
            real_now=real_now,
            ttl=self.lease_ttl,
            ttl_real=max(self.lease_min_real, self.clock.real_seconds(self.lease_ttl)),
            current_expires_at=utc(doc["expires_at"]),
            current_real_deadline=float(doc["real_deadline"]),
        )
        if not await self.repo.renew_lease(
            lease_id=ev.lease_id,
            task_id=ev.task_id,
            attempt=ev.attempt,
            expires_at=new.expires_at,
            real_deadline=new.real_deadline,
            at=now,
        ):
            return  # expired or released meanwhile: never revived
        tracked = self.lease_docs.get(ev.lease_id)
        if tracked is not None:
            tracked.update(expires_at=new.expires_at, real_deadline=new.real_deadline)
            heapq.heappush(
                self.expiries, (new.real_deadline, new.expires_at, env.org_id, ev.lease_id)
            )

    # loops -------------------------------------------------------------------------------------
    async def dispatch(self) -> None:
        """Decide every grant the slots allow, one at a time and in memory (exact order and
        caps); the grants' writes and TaskDispatched events go out concurrently, up to
        ``send_concurrency`` at once, so a burst of freed slots does not wait on one round trip
        after another. A send that fails gives its slot back and re-queues its task."""
        for org_id in list(self.owned):
            sends: list[Awaitable[None]] = []
            while org_id in self.owned:
                now = self.clock.now()
                started = time.perf_counter()
                granted = self.alloc.grant(org_id, new_id("lease"), now)
                if granted is None:
                    break
                DECISION_SECONDS.observe(time.perf_counter() - started)
                QUEUE_WAIT_SECONDS.observe(
                    max(0.0, self.clock.real_seconds(now - granted[0].eligible_at))
                )
                sends.append(self._send(*granted, now=now))
                if len(sends) >= self.send_concurrency:
                    await _all(sends)
                    sends = []
            await _all(sends)

    async def _send(self, item: QueuedTask, lease: Lease, *, now: datetime) -> None:
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
            "dial": {**item.payload["dial"], "from_number": lease.from_number}
            if lease.from_number
            else item.payload["dial"],
        }
        epoch = self.owned.get(item.org_id)
        try:
            fenced = epoch is None or not await self.repo.fence_grant(
                org_id=item.org_id,
                epoch=epoch,
                lease_id=lease.lease_id,
                lease={k: v for k, v in doc.items() if k not in ("_id", "status")},
            )
            if fenced:
                # another instance took the org over: it rebuilt the queue (this task
                # included) from MongoDB, and this instance must never grant for it again
                log.warning("org moved to another allocator; grant dropped", org_id=item.org_id)
                if self.owned.get(item.org_id) == epoch:
                    self._forget(item.org_id)
                return
            inserted = await self.repo.insert_lease(doc=doc)
        except BaseException:
            # Not stored, so not tracked for expiry either: give the slot back and keep the
            # task queued, or the slot would leak until a restart.
            self.alloc.release(item.org_id, lease.lease_id)
            self.alloc.enqueue(item)
            with contextlib.suppress(Exception):
                await self.repo.unfence_lease(org_id=item.org_id, lease_id=lease.lease_id)
            raise
        if not inserted:
            # That attempt was dispatched before (a stale queue entry): never twice.
            self.alloc.release(item.org_id, lease.lease_id)
            await self.repo.unfence_lease(org_id=item.org_id, lease_id=lease.lease_id)
            await self.repo.drop_queued(ids=[f"{item.task_id}:{item.attempt}"])
            return
        self.lease_docs[lease.lease_id] = doc
        heapq.heappush(self.expiries, (real_deadline, expires_at, item.org_id, lease.lease_id))
        # The lease is stored: the dispatch can go. The queue entry it replaces is dropped
        # meanwhile (left behind by a crash, the stored lease marks it as dispatched).
        await asyncio.gather(
            self.repo.drop_queued(ids=[f"{item.task_id}:{item.attempt}"]),
            self._publish_dispatch(doc),
        )

    async def _publish_dispatch(self, doc: Doc) -> None:
        if not doc.get("dial"):
            return  # a lease stored before leases kept their dial request
        await self.bus.emit(
            DISPATCH,
            TaskDispatched(
                lease_id=doc["_id"],
                task_id=doc["task_id"],
                campaign_id=doc["campaign_id"],
                attempt=doc["attempt"],
                lease_expires_at=utc(doc["expires_at"]),
                dial=DialRequest.model_validate(doc["dial"]),
            ),
            key=doc["task_id"],
            org_id=doc["org_id"],
            workspace_id=doc["workspace_id"],
            dedupe_parts=(doc["_id"],),
            # told again, a dispatch keeps the instant of its grant: the dialer's lease guard
            # counts the lease's real-time minimum from it, and must not take an old lease
            # for a fresh one
            occurred_at=utc(doc["granted_at"]) if doc.get("granted_at") else None,
        )

    async def _publish_expired(self, doc: Doc) -> None:
        await self.bus.emit(
            DISPATCH,
            LeaseExpired(
                lease_id=doc["_id"],
                task_id=doc["task_id"],
                campaign_id=doc["campaign_id"],
                attempt=doc["attempt"],
                granted_at=utc(doc["granted_at"]) if doc.get("granted_at") else None,
            ),
            key=doc["task_id"],
            org_id=doc["org_id"],
            workspace_id=doc["workspace_id"],
            dedupe_parts=(doc["_id"],),
        )

    async def _repeat_grant(self, lease: Doc) -> None:
        """What the grant of an attempt led to, told again: an expired lease's expiry (the
        planner resolves the attempt), otherwise its dispatch (the dialer places at most one
        call per attempt; for a call it placed or a dispatch it refused it repeats the end or
        the abort, and the refusal guard judges a lease by its original grant)."""
        if lease.get("status") == "expired":
            await self._publish_expired(lease)
        else:
            await self._publish_dispatch(lease)

    async def republish(self) -> None:
        """The broker lost everything: every lease expiry again (a task waiting for one would
        wait for ever) and every active lease's dispatch (lost before the dialer read it, the
        call would never be placed and the planner would wait for the lease's expiry).
        Released leases are the dialer's to repeat (it re-publishes ends and aborts)."""
        expired = active = 0
        for d in await self.repo.expired_leases():
            await self._publish_expired(d)
            expired += 1
        for d in await self.repo.all_active_leases():
            await self._publish_dispatch(d)
            active += 1
        log.info("lease expiries and dispatches re-published", expired=expired, active=active)

    async def expire(self) -> None:
        real_now, now = time.time(), self.clock.now()
        deferred: list[tuple[float, datetime, str, str]] = []
        while self.expiries and self.expiries[0][0] <= real_now and self.expiries[0][1] <= now:
            entry = heapq.heappop(self.expiries)
            _, _, org_id, lease_id = entry
            if lease_id not in self.lease_docs or org_id not in self.owned:
                continue  # released meanwhile, or the org moved to another instance
            if not is_due(self.lease_docs[lease_id], now=now, real_now=real_now):
                continue  # renewed: a later entry of the heap holds its new deadlines
            if real_now < self.expire_from.get(org_id, 0.0):
                deferred.append(entry)  # just taken over: releases may still be on the way
                continue
            if not await self.repo.is_owner(org_id=org_id, epoch=self.owned[org_id]):
                self._forget(org_id)
                continue
            doc = self.lease_docs.pop(lease_id)
            await self._expire_one(org_id, lease_id, doc, now, real_now)
        for entry in deferred:
            heapq.heappush(self.expiries, entry)

    async def _expire_one(
        self, org_id: str, lease_id: str, doc: Doc, now: datetime, real_now: float
    ) -> None:
        ended = await self.repo.end_lease(
            lease_id=lease_id, status="expired", at=now, due_by=(now, real_now)
        )
        if not ended:
            stored = await self.repo.get_lease(lease_id=lease_id)
            if stored is not None and stored.get("status") == "active":
                # renewed between the check and the write: the renewal wins, keep tracking
                self._track_lease(stored)
                return
        await self.repo.unfence_lease(org_id=org_id, lease_id=lease_id)
        self.alloc.release(org_id, lease_id)
        self.kick()
        if not ended:
            return  # released (or stored as another lease) meanwhile
        log.warning("lease expired", lease_id=lease_id, task_id=doc["task_id"])
        await self._publish_expired({**doc, "_id": lease_id, "org_id": org_id})


async def _all(sends: list[Awaitable[None]]) -> None:
    """Run the sends together; every one finishes (and cleans up after itself) before the
    first failure is raised."""
    results = await asyncio.gather(*sends, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
