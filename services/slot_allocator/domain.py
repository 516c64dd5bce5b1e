"""Slot allocation rules. Pure and synchronous: no I/O, no clock.

The allocator holds, per org, a ready queue of tasks and the active leases. A dispatch goes to
the best eligible task (callback first, then campaign priority, then attempt priority, then
eligible time, then a random tie-break) among campaigns whose cap — and whose org total — has
room. Work-conserving: a task blocked by its campaign's cap never blocks another campaign.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}

SortKey = tuple[int, int, int, datetime, float]


@dataclass(frozen=True)
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

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.attempt)

    def sort_key(self) -> SortKey:
        return (
            0 if self.callback else 1,
            -PRIORITY_RANK.get(self.campaign_priority, 1),
            self.attempt_priority,
            self.eligible_at,
            self.tiebreak,
        )


@dataclass(frozen=True)
class Lease:
    lease_id: str
    task_id: str
    attempt: int
    org_id: str
    workspace_id: str
    campaign_id: str


@dataclass
class OrgState:
    total_slots: int
    queues: dict[str, list[tuple[SortKey, str, int]]] = field(default_factory=dict)
    items: dict[tuple[str, int], QueuedTask] = field(default_factory=dict)
    active_by_campaign: dict[str, int] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)

    @property
    def active(self) -> int:
        return len(self.leases)


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

    def enqueue(self, item: QueuedTask) -> bool:
        """Add a task; False if that (task, attempt) is already queued."""
        org = self.org(item.org_id)
        if item.key in org.items:
            return False
        # A newer attempt of the same task replaces an older queued one.
        for key in [k for k in org.items if k[0] == item.task_id]:
            org.items.pop(key)
        org.items[item.key] = item
        heapq.heappush(
            org.queues.setdefault(item.campaign_id, []),
            (item.sort_key(), item.task_id, item.attempt),
        )
        return True

    def withdraw(self, org_id: str, task_id: str, attempt: int | None = None) -> list[QueuedTask]:
        org = self.org(org_id)
        keys = [k for k in org.items if k[0] == task_id and (attempt is None or k[1] == attempt)]
        return [org.items.pop(k) for k in keys]

    def withdraw_campaign(self, org_id: str, campaign_id: str) -> list[QueuedTask]:
        org = self.org(org_id)
        gone = [k for k, v in org.items.items() if v.campaign_id == campaign_id]
        org.queues.pop(campaign_id, None)
        return [org.items.pop(k) for k in gone]

    def add_lease(self, lease: Lease) -> None:
        org = self.org(lease.org_id)
        if lease.lease_id in org.leases:
            return
        org.leases[lease.lease_id] = lease
        org.active_by_campaign[lease.campaign_id] = (
            org.active_by_campaign.get(lease.campaign_id, 0) + 1
        )

    def release(self, org_id: str, lease_id: str) -> Lease | None:
        org = self.org(org_id)
        lease = org.leases.pop(lease_id, None)
        if lease is not None:
            org.active_by_campaign[lease.campaign_id] -= 1
        return lease

    def _head(self, org: OrgState, campaign_id: str) -> QueuedTask | None:
        heap = org.queues.get(campaign_id)
        while heap:
            _, task_id, attempt = heap[0]
            item = org.items.get((task_id, attempt))
            if item is not None:
                return item
            heapq.heappop(heap)  # withdrawn or superseded
        return None

    def grant(self, org_id: str, lease_id: str) -> tuple[QueuedTask, Lease] | None:
        """Pop the best task that may be dispatched now and lease it a slot, in one step (no
        await between the choice and the lease, so no interleaving can overbook)."""
        org = self.org(org_id)
        if org.active >= org.total_slots:
            return None
        best: QueuedTask | None = None
        for campaign_id in list(org.queues):
            head = self._head(org, campaign_id)
            if head is None:
                org.queues.pop(campaign_id, None)
                continue
            cap = head.max_slots
            if cap is not None and org.active_by_campaign.get(campaign_id, 0) >= cap:
                continue
            if best is None or head.sort_key() < best.sort_key():
                best = head
        if best is None:
            return None
        org.items.pop(best.key)
        heapq.heappop(org.queues[best.campaign_id])
        lease = Lease(
            lease_id=lease_id,
            task_id=best.task_id,
            attempt=best.attempt,
            org_id=best.org_id,
            workspace_id=best.workspace_id,
            campaign_id=best.campaign_id,
        )
        self.add_lease(lease)
        return best, lease
