"""Slot allocation rules. Pure and synchronous: no I/O; time is passed in.

Per org the allocator holds a ready queue of tasks and the active leases, and three levels of
limits: the org total, each workspace's allocation (hard: never exceeded; soft: may borrow slots
other workspaces leave idle) and each campaign's cap.

Which task goes next:

1. Only a workspace that may start a call is a candidate: below its allocation ("owed"), or a
   soft workspace when the org has more free slots than the owed workspaces still need for the
   work they have (``reserved``). So an owner with work always gets its allocation back before a
   borrower starts a new call, and a borrower never waits for an owner that has nothing to do.
2. Among candidates: callback first, then campaign priority, then attempt priority; among equal
   priorities the workspace with the fewest active calls (fair share); then the earliest eligible
   time; then a random tie-break. Within one workspace the campaigns' heads compete in strict
   order.
3. Work-conserving: a campaign at its cap, or a workspace at its hard allocation, never blocks
   another; a slot stays idle only when no queued task is allowed by every limit.

Cost: every campaign keeps a heap of its tasks, every workspace a heap of its ready campaigns
(keyed by their heads) and the org two heaps of workspaces (owed, borrowing), all with lazy
deletion by version, so a decision costs O(log n) whatever the queue length.

Pacing: a caller number may have a calls-per-second limit (a token bucket). A task with caller
numbers goes out on the next number of its campaign's pool (round robin) that has a token; when
none has, its campaign steps aside until the first token is due, and others go meanwhile.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}

# (callback first, campaign priority, attempt priority, eligible time as epoch seconds, tie-break):
# plain numbers, because comparing them is most of a decision's cost
SortKey = tuple[int, int, int, float, float]
Class = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class QueuedTask:
    task_id: str
    attempt: int
    org_id: str
    workspace_id: str
    campaign_id: str
    campaign_priority: str
    attempt_priority: int
    callback: bool
    eligible_at: datetime
    max_slots: int | None
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    tiebreak: float = field(default_factory=random.random, compare=False)
    caller_numbers: tuple[str, ...] = field(default=(), compare=False)
    caller_cps: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.attempt)

    def sort_key(self) -> SortKey:
        return (
            0 if self.callback else 1,
            -PRIORITY_RANK.get(self.campaign_priority, 1),
            self.attempt_priority,
            self.eligible_at.timestamp(),
            self.tiebreak,
        )


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    task_id: str
    attempt: int
    org_id: str
    workspace_id: str
    campaign_id: str
    from_number: str | None = None


@dataclass(frozen=True)
class WorkspaceSlots:
    allocation: int = 0
    mode: str = "soft"  # "hard" | "soft"


@dataclass
class Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst``."""

    rate: float
    burst: float
    tokens: float
    at: datetime

    def refill(self, now: datetime) -> None:
        if now > self.at:
            gained = (now - self.at).total_seconds() * self.rate
            self.tokens = min(self.burst, self.tokens + gained)
            self.at = now

    def ready_at(self, now: datetime) -> float:
        """Seconds from ``now`` until one token is available (0 if one is)."""
        self.refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class CampaignQueue:
    campaign_id: str
    workspace_id: str
    heap: list[tuple[SortKey, int, QueuedTask]] = field(default_factory=list)
    queued: int = 0
    active: int = 0
    cap: int | None = None
    grantable: int = 0  # min(queued, room under the cap)
    version: int = 0
    paced_until: datetime | None = None
    next_number: int = 0

    def room(self) -> int | None:
        return None if self.cap is None else max(0, self.cap - self.active)


@dataclass
class WorkspaceState:
    workspace_id: str
    allocation: int = 0
    hard: bool = False
    active: int = 0
    grantable: int = 0  # sum of its campaigns' grantable
    deficit: int = 0  # slots of its allocation it is owed now, for work it has
    heap: list[tuple[SortKey, int, str]] = field(default_factory=list)  # ready campaigns
    heap_limit: int = 64  # compact the heap when stale entries make it longer than this
    version: int = 0


@dataclass
class OrgState:
    total_slots: int
    items: dict[tuple[str, int], QueuedTask] = field(default_factory=dict)
    by_task: dict[str, QueuedTask] = field(default_factory=dict)
    campaigns: dict[str, CampaignQueue] = field(default_factory=dict)
    workspaces: dict[str, WorkspaceState] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    active_by_campaign: dict[str, int] = field(default_factory=dict)
    reserved: int = 0
    owed: list[tuple[tuple[int, int, int, int, float, float], int, str]] = field(
        default_factory=list
    )
    borrowing: list[tuple[tuple[int, int, int, int, float, float], int, str]] = field(
        default_factory=list
    )
    heap_limit: int = 64
    paced: list[tuple[datetime, int, str]] = field(default_factory=list)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    number_cps: dict[str, float] = field(default_factory=dict)
    default_cps: float | None = None
    pool_cps: dict[str, float] = field(default_factory=dict)  # from the numbers' own settings

    @property
    def active(self) -> int:
        return len(self.leases)

    @property
    def queued(self) -> int:
        return len(self.items)


_seq = itertools.count()


class Allocator:
    def __init__(self, *, default_org_slots: int) -> None:
        self.default_org_slots = default_org_slots
        self.orgs: dict[str, OrgState] = {}

    def org(self, org_id: str) -> OrgState:
        state = self.orgs.get(org_id)
        if state is None:
            state = self.orgs[org_id] = OrgState(total_slots=self.default_org_slots)
        return state

    def holds(self, org_id: str, key: tuple[str, int]) -> bool:
        return key in self.org(org_id).items

    # configuration -----------------------------------------------------------------------------
    def configure(
        self,
        org_id: str,
        *,
        total_slots: int,
        workspaces: dict[str, WorkspaceSlots],
        number_cps: dict[str, float] | None = None,
        default_cps: float | None = None,
    ) -> None:
        """Apply an org's slot settings. Calls in progress are never cancelled: a lowered limit
        only stops new calls until enough calls end."""
        org = self.org(org_id)
        org.total_slots = total_slots
        for ws_id in set(org.workspaces) | set(workspaces):
            conf = workspaces.get(ws_id, WorkspaceSlots())
            ws = self._ws(org, ws_id)
            ws.allocation, ws.hard = conf.allocation, conf.mode == "hard"
            self._refresh_ws(org, ws)
        org.number_cps = dict(number_cps or {})
        org.default_cps = default_cps
        org.buckets = {
            n: b for n, b in org.buckets.items() if self._cps(org, n) == b.rate
        }  # a changed rate starts a fresh bucket

    @staticmethod
    def _cps(org: OrgState, number: str) -> float | None:
        cps = org.number_cps.get(number)
        if cps is None:
            cps = org.pool_cps.get(number, org.default_cps)
        return cps

    # queue ---------------------------------------------------------------------------------------
    def enqueue(self, item: QueuedTask) -> bool:
        """Add a task; False if that (task, attempt), or a newer attempt of it, is queued."""
        org = self.org(item.org_id)
        if item.caller_cps:
            for number, cps in item.caller_cps.items():
                if org.pool_cps.get(number) != cps:
                    org.pool_cps[number] = cps
                    org.buckets.pop(number, None)  # a changed rate starts a fresh bucket
        prior = org.by_task.get(item.task_id)
        if prior is not None:
            if prior.attempt >= item.attempt:
                return False
            self._drop(org, prior)  # a newer attempt replaces an older queued one
        camp = self._campaign(org, item)
        cap_changed = camp.cap != item.max_slots
        camp.cap = item.max_slots
        org.items[item.key] = item
        org.by_task[item.task_id] = item
        was_head = self._head(camp)
        heapq.heappush(camp.heap, (item.sort_key(), next(_seq), item))
        camp.queued += 1
        if cap_changed or was_head is None or item.sort_key() < was_head.sort_key():
            self._refresh_campaign(org, camp)
        else:
            self._recount(org, camp)
        return True

    def withdraw(self, org_id: str, task_id: str, attempt: int | None = None) -> list[QueuedTask]:
        org = self.org(org_id)
        item = org.by_task.get(task_id)
        if item is None or (attempt is not None and item.attempt != attempt):
            return []
        self._drop(org, item)
        return [item]

    def withdraw_campaign(self, org_id: str, campaign_id: str) -> list[QueuedTask]:
        org = self.org(org_id)
        camp = org.campaigns.get(campaign_id)
        if camp is None:
            return []
        gone = [it for _, _, it in camp.heap if org.items.get(it.key) is it]
        for it in gone:
            del org.items[it.key]
            del org.by_task[it.task_id]
        camp.heap.clear()
        camp.queued = 0
        self._refresh_campaign(org, camp)
        self._forget_if_idle(org, camp)
        return gone

    def _drop(self, org: OrgState, item: QueuedTask) -> None:
        camp = org.campaigns[item.campaign_id]
        self._clean(org, camp)
        was_head = self._head(camp) is item
        del org.items[item.key]
        del org.by_task[item.task_id]
        camp.queued -= 1
        if was_head:
            self._refresh_campaign(org, camp)
        else:
            self._recount(org, camp)
        self._forget_if_idle(org, camp)

    # leases --------------------------------------------------------------------------------------
    def add_lease(self, lease: Lease) -> None:
        """Count a lease (a grant, or one restored from the database); idempotent."""
        org = self.org(lease.org_id)
        if lease.lease_id in org.leases:
            return
        org.leases[lease.lease_id] = lease
        org.active_by_campaign[lease.campaign_id] = (
            org.active_by_campaign.get(lease.campaign_id, 0) + 1
        )
        camp = self._campaign_for(org, lease.campaign_id, lease.workspace_id)
        camp.active += 1
        ws = self._ws(org, lease.workspace_id)
        ws.active += 1
        self._refresh_campaign(org, camp)

    def release(self, org_id: str, lease_id: str) -> Lease | None:
        """End a lease; None (and nothing changes) if it is unknown or already ended."""
        org = self.org(org_id)
        lease = org.leases.pop(lease_id, None)
        if lease is None:
            return None
        left = org.active_by_campaign[lease.campaign_id] - 1
        if left:
            org.active_by_campaign[lease.campaign_id] = left
        else:
            del org.active_by_campaign[lease.campaign_id]
        camp = org.campaigns[lease.campaign_id]
        camp.active -= 1
        org.workspaces[lease.workspace_id].active -= 1
        self._refresh_campaign(org, camp)
        self._forget_if_idle(org, camp)
        return lease

    # the decision ------------------------------------------------------------------------------
    def grant(
        self, org_id: str, lease_id: str, now: datetime | None = None
    ) -> tuple[QueuedTask, Lease] | None:
        """Pop the best task that may be dispatched now and lease it a slot, in one step (no
        await between the choice and the lease, so no interleaving can overbook). ``now`` is
        needed only for pacing (caller numbers with a calls-per-second limit)."""
        org = self.orgs.get(org_id)
        if org is None or not org.items:
            return None
        if now is not None:
            self._unpace(org, now)
        while True:
            if org.active >= org.total_slots:
                return None
            ws = self._pick_workspace(org)
            if ws is None:
                return None
            camp = org.campaigns[ws.heap[0][2]]
            item = camp.heap[0][2]
            number: str | None = None
            if item.caller_numbers:
                number = self._take_number(org, camp, item, now)
                if number is None:
                    continue  # the campaign stepped aside until a token is due
            heapq.heappop(camp.heap)
            camp.queued -= 1
            del org.items[item.key]
            del org.by_task[item.task_id]
            lease = Lease(
                lease_id=lease_id,
                task_id=item.task_id,
                attempt=item.attempt,
                org_id=item.org_id,
                workspace_id=item.workspace_id,
                campaign_id=item.campaign_id,
                from_number=number,
            )
            self.add_lease(lease)  # refreshes the campaign, its workspace and the org heaps
            return item, lease

    def next_pacing_at(self, org_id: str) -> datetime | None:
        """When the first campaign that stepped aside for pacing may go again."""
        org = self.orgs.get(org_id)
        if org is None:
            return None
        while org.paced and org.campaigns.get(org.paced[0][2]) is None:
            heapq.heappop(org.paced)
        return org.paced[0][0] if org.paced else None

    def _pick_workspace(self, org: OrgState) -> WorkspaceState | None:
        free = org.total_slots - org.active
        owed = self._top(org, org.owed)
        borrow = self._top(org, org.borrowing) if free > org.reserved else None
        if owed is None:
            return borrow
        if borrow is None:
            return owed
        return owed if self._ws_rank(owed) <= self._ws_rank(borrow) else borrow

    def _top(
        self,
        org: OrgState,
        heap: list[tuple[tuple[int, int, int, int, float, float], int, str]],
    ) -> WorkspaceState | None:
        while heap:
            _, version, ws_id = heap[0]
            ws = org.workspaces.get(ws_id)
            if ws is not None and ws.version == version:
                return ws
            heapq.heappop(heap)
        return None

    # pacing --------------------------------------------------------------------------------------
    def _take_number(
        self, org: OrgState, camp: CampaignQueue, item: QueuedTask, now: datetime | None
    ) -> str | None:
        pool = item.caller_numbers
        wait: float | None = None
        for i in range(len(pool)):
            number = pool[(camp.next_number + i) % len(pool)]
            cps = self._cps(org, number)
            if cps is None or now is None:
                camp.next_number = (camp.next_number + i + 1) % len(pool)
                return number
            bucket = org.buckets.get(number)
            if bucket is None:
                bucket = org.buckets[number] = Bucket(cps, max(1.0, cps), max(1.0, cps), now)
            due = bucket.ready_at(now)
            if due == 0.0:
                bucket.tokens -= 1
                camp.next_number = (camp.next_number + i + 1) % len(pool)
                return number
            wait = due if wait is None else min(wait, due)
        assert now is not None
        assert wait is not None
        camp.paced_until = now + timedelta(seconds=wait)
        heapq.heappush(org.paced, (camp.paced_until, next(_seq), camp.campaign_id))
        self._refresh_campaign(org, camp)
        return None

    def _unpace(self, org: OrgState, now: datetime) -> None:
        while org.paced and org.paced[0][0] <= now:
            _, _, cid = heapq.heappop(org.paced)
            camp = org.campaigns.get(cid)
            if camp is not None and camp.paced_until is not None and camp.paced_until <= now:
                camp.paced_until = None
                self._refresh_campaign(org, camp)

    # bookkeeping -------------------------------------------------------------------------------
    def _ws(self, org: OrgState, ws_id: str) -> WorkspaceState:
        ws = org.workspaces.get(ws_id)
        if ws is None:
            ws = org.workspaces[ws_id] = WorkspaceState(ws_id)
        return ws

    def _campaign(self, org: OrgState, item: QueuedTask) -> CampaignQueue:
        return self._campaign_for(org, item.campaign_id, item.workspace_id)

    def _campaign_for(self, org: OrgState, campaign_id: str, ws_id: str) -> CampaignQueue:
        camp = org.campaigns.get(campaign_id)
        if camp is None:
            camp = org.campaigns[campaign_id] = CampaignQueue(campaign_id, ws_id)
            self._ws(org, ws_id)
        return camp

    def _forget_if_idle(self, org: OrgState, camp: CampaignQueue) -> None:
        if camp.queued == 0 and camp.active == 0:
            camp.version += 1
            org.campaigns.pop(camp.campaign_id, None)

    @staticmethod
    def _head(camp: CampaignQueue) -> QueuedTask | None:
        return camp.heap[0][2] if camp.heap else None

    def _clean(self, org: OrgState, camp: CampaignQueue) -> None:
        heap = camp.heap
        while heap and org.items.get(heap[0][2].key) is not heap[0][2]:
            heapq.heappop(heap)  # withdrawn or superseded

    def _recount(self, org: OrgState, camp: CampaignQueue) -> None:
        """Update what the campaign could start now, and so its workspace's claim."""
        room = camp.room()
        grantable = camp.queued if room is None else min(camp.queued, room)
        if grantable != camp.grantable:
            ws = org.workspaces[camp.workspace_id]
            ws.grantable += grantable - camp.grantable
            camp.grantable = grantable
            self._set_deficit(org, ws)

    def _refresh_campaign(self, org: OrgState, camp: CampaignQueue) -> None:
        """The campaign's head or readiness may have changed: re-rank it in its workspace."""
        self._clean(org, camp)
        self._recount(org, camp)
        camp.version += 1
        room = camp.room()
        if camp.heap and (room is None or room > 0) and camp.paced_until is None:
            ws = org.workspaces[camp.workspace_id]
            heapq.heappush(ws.heap, (camp.heap[0][0], camp.version, camp.campaign_id))
        self._refresh_ws(org, org.workspaces[camp.workspace_id])

    def _set_deficit(self, org: OrgState, ws: WorkspaceState) -> None:
        deficit = min(max(0, ws.allocation - ws.active), ws.grantable)
        org.reserved += deficit - ws.deficit
        ws.deficit = deficit

    @staticmethod
    def _ws_rank(ws: WorkspaceState) -> tuple[int, int, int, int, float, float]:
        cb, prio, ap, eligible, tiebreak = ws.heap[0][0]
        return (cb, prio, ap, ws.active, eligible, tiebreak)

    def _refresh_ws(self, org: OrgState, ws: WorkspaceState) -> None:
        """Re-rank the workspace in the org: owed, borrowing, or (at a hard cap) neither."""
        self._set_deficit(org, ws)
        heap = ws.heap
        while heap:
            _, version, cid = heap[0]
            camp = org.campaigns.get(cid)
            if camp is not None and camp.version == version:
                break
            heapq.heappop(heap)
        if len(heap) > ws.heap_limit:
            self._compact_ws(org, ws)
        ws.version += 1
        if heap:
            if ws.active < ws.allocation:
                heapq.heappush(org.owed, (self._ws_rank(ws), ws.version, ws.workspace_id))
            elif not ws.hard:
                heapq.heappush(org.borrowing, (self._ws_rank(ws), ws.version, ws.workspace_id))
        if len(org.owed) + len(org.borrowing) > org.heap_limit:
            self._compact_org(org)

    # Stale (superseded) heap entries are dropped lazily when they reach the top; compacting
    # when a heap doubles bounds both its length and the work a single decision may meet.
    @staticmethod
    def _compact_ws(org: OrgState, ws: WorkspaceState) -> None:
        live = []
        for entry in ws.heap:
            camp = org.campaigns.get(entry[2])
            if camp is not None and camp.version == entry[1]:
                live.append(entry)
        heapq.heapify(live)
        ws.heap[:] = live
        ws.heap_limit = 2 * len(live) + 64

    @staticmethod
    def _compact_org(org: OrgState) -> None:
        for heap in (org.owed, org.borrowing):
            live = [e for e in heap if (w := org.workspaces.get(e[2])) and w.version == e[1]]
            heapq.heapify(live)
            heap[:] = live
        org.heap_limit = 2 * (len(org.owed) + len(org.borrowing)) + 64
