"""The planner against the real database: start-up rebuild of the due-time heap, and the
reconciliation that re-announces queued tasks whose TaskQueued was lost."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from outbound_core.clock import VirtualClock
from outbound_core.events import Payload, TaskQueued
from outbound_core.topics import Topic
from task_planner.planner import Planner
from task_planner.repository import PlannerRepository
from tests.conftest import Infra

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@dataclass
class RecordingBus:
    sent: list[tuple[str, Payload]] = field(default_factory=list)

    async def emit(self, topic: Topic, payload: Payload, **_: Any) -> None:
        self.sent.append((topic.name, payload))


def _task(i: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "_id": f"tsk_{i}",
        "campaign_id": "cmp_run" if i % 2 == 0 else "cmp_paused",
        "org_id": "org",
        "workspace_id": "ws",
        "phones": ["+12127363001"],
        "status": status,
        "due_at": T0 + timedelta(minutes=i),
        "attempt": 1 if status == "queued" else 0,
        "seq": 0,
        "phone_index": 0,
        "pass_number": 1,
        "phone_states": [{"last": None, "attempts": 0, "excluded": False}],
        "history": [],
        **extra,
    }


async def test_rebuild_and_reconcile(infra: Infra) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"it_planner_{uuid.uuid4().hex[:8]}"]
    try:
        await db["campaigns"].insert_many(
            [{"_id": "cmp_run", "status": "running"}, {"_id": "cmp_paused", "status": "paused"}]
        )
        stale, fresh = T0 - timedelta(hours=2), T0 - timedelta(seconds=1)
        await db["tasks"].insert_many(
            [_task(i, "pending") for i in range(10)]
            + [_task(i, "completed") for i in range(10, 14)]
            + [_task(20, "queued", queued_at=stale, announced_at=stale)]
            + [_task(22, "queued", queued_at=fresh, announced_at=fresh)]
            + [_task(21, "queued", queued_at=stale, announced_at=stale)]  # paused campaign
        )
        clock = VirtualClock(start=T0, anchor=time.time(), speed=60.0)
        bus = RecordingBus()
        planner = Planner(
            repo=PlannerRepository(db),
            bus=bus,  # type: ignore[arg-type]
            clock=clock,
            tick_batch=100,
            recheck=timedelta(hours=24),
            stale_after=30.0,  # real seconds: 30 virtual minutes at 60x
        )
        await planner.rebuild()
        # Only the running campaign's waiting tasks are on the heap, earliest first.
        assert len(planner.timer) == 5
        assert planner.timer.next_due() == T0
        # rebuild re-announces what is queued in running campaigns (the broker may be new)
        assert [p.task_id for _, p in bus.sent if isinstance(p, TaskQueued)] == ["tsk_20", "tsk_22"]

        bus.sent.clear()
        assert await planner.reconcile() == 1
        assert [p.task_id for _, p in bus.sent if isinstance(p, TaskQueued)] == ["tsk_20"]
        # announced again just now: not again on the next pass
        bus.sent.clear()
        assert await planner.reconcile() == 0
        assert bus.sent == []
    finally:
        await client.drop_database(db.name)
        await client.close()
