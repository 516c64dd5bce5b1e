"""No path of the allocator's service layer leaks or double-frees a slot: release of an unknown
lease, a duplicate release, expiry racing a release, a lease that cannot be stored, a restart.
The service runs against in-memory stand-ins for its repository and bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outbound_core.events import (
    DialRequest,
    Envelope,
    LeaseReleased,
    SlotsConfigured,
    TaskQueued,
    WorkspaceSlotsConfig,
    make_envelope,
)
from slot_allocator.domain import Allocator
from slot_allocator.service import SlotService

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ORG = "org_a"


class FakeClock:
    speed = 1.0

    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t

    def real_seconds(self, virtual: timedelta | float) -> float:
        return 0.0  # leases become due on the virtual clock alone

    async def sleep(self, virtual: timedelta | float) -> None:
        return None


class FakeRepo:
    def __init__(self) -> None:
        self.queue: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.config: dict[str, dict[str, Any]] = {}
        self.fail_insert = False

    async def ensure_indexes(self) -> None:
        return None

    async def was_dispatched(self, *, task_id: str, attempt: int) -> bool:
        return any(
            d["task_id"] == task_id and d["attempt"] == attempt for d in self.leases.values()
        )

    async def save_queued(self, *, doc: dict[str, Any]) -> None:
        self.queue[doc["_id"]] = doc

    async def drop_queued(self, *, ids: list[str]) -> None:
        for i in ids:
            self.queue.pop(i, None)

    async def drop_campaign(self, *, campaign_id: str) -> None:
        for k in [k for k, d in self.queue.items() if d["campaign_id"] == campaign_id]:
            del self.queue[k]

    async def insert_lease(self, *, doc: dict[str, Any]) -> bool:
        if self.fail_insert:
            raise ConnectionError("database unreachable")
        if await self.was_dispatched(task_id=doc["task_id"], attempt=doc["attempt"]):
            return False
        self.leases[doc["_id"]] = dict(doc)
        return True

    async def end_lease(self, *, lease_id: str, status: str, at: datetime) -> bool:
        d = self.leases.get(lease_id)
        if d is None or d["status"] != "active":
            return False
        d.update(status=status, ended_at=at)
        return True

    async def active_leases(self) -> list[dict[str, Any]]:
        return [d for d in self.leases.values() if d["status"] == "active"]

    async def queued(self) -> list[dict[str, Any]]:
        return list(self.queue.values())

    async def save_config(self, *, org_id: str, revision: int, doc: dict[str, Any]) -> bool:
        if self.config.get(org_id, {}).get("revision", 0) >= revision:
            return False
        self.config[org_id] = {"_id": org_id, **doc, "revision": revision}
        return True

    async def configs(self) -> list[dict[str, Any]]:
        return list(self.config.values())


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def emit(self, topic: Any, payload: Any, **_: Any) -> None:
        self.sent.append(payload)


def _service(repo: FakeRepo | None = None, slots: int = 1) -> tuple[SlotService, FakeRepo]:
    repo = repo or FakeRepo()
    svc = SlotService(
        repo=repo,  # type: ignore[arg-type]
        bus=FakeBus(),  # type: ignore[arg-type]
        clock=FakeClock(),
        allocator=Allocator(default_org_slots=slots),
        lease_ttl=timedelta(minutes=10),
        lease_min_real=0.0,
    )
    return svc, repo


def _env(payload: Any, ws: str = "ws_1") -> Envelope:
    return make_envelope(payload, producer="test", org_id=ORG, workspace_id=ws, occurred_at=T0)


def _queued(task: str, attempt: int = 1, numbers: list[str] | None = None) -> TaskQueued:
    return TaskQueued(
        task_id=task,
        campaign_id="cmp_1",
        attempt=attempt,
        eligible_at=T0,
        dial=DialRequest(phone="+12127363001"),
        caller_numbers=numbers or [],
    )


async def _queue(svc: SlotService, *tasks: str) -> None:
    for t in tasks:
        ev = _queued(t)
        await svc.on_task_queued(_env(ev), ev)


def _active(svc: SlotService) -> int:
    return svc.alloc.org(ORG).active


def _sent(svc: SlotService, kind: str) -> list[Any]:
    return [p for p in svc.bus.sent if type(p).__name__ == kind]  # type: ignore[attr-defined]


async def _release(svc: SlotService, lease_id: str, task: str = "t") -> None:
    ev = LeaseReleased(lease_id=lease_id, task_id=task, attempt=1)
    await svc.on_lease_released(_env(ev), ev)


def test_unknown_and_duplicate_releases_free_nothing_else() -> None:
    async def run() -> None:
        svc, _ = _service(slots=2)
        await _queue(svc, "t1", "t2", "t3")
        await svc.dispatch()
        assert _active(svc) == 2
        await _release(svc, "lease_unknown")
        assert _active(svc) == 2
        first = _sent(svc, "TaskDispatched")[0].lease_id
        await _release(svc, first)
        await _release(svc, first)  # redelivered
        await svc.dispatch()
        assert _active(svc) == 2  # t3 took the one freed slot, no more
        await _release(svc, first)
        await svc.dispatch()
        assert _active(svc) == 2

    asyncio.run(run())


def test_expiry_racing_release_frees_one_slot_once() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1", "t2", "t3")
        await svc.dispatch()
        lease1 = _sent(svc, "TaskDispatched")[0].lease_id
        # released just before the expiry check runs: no expiry, one slot back
        await _release(svc, lease1)
        svc.clock.t += timedelta(hours=1)  # type: ignore[attr-defined]
        await svc.expire()
        assert _sent(svc, "LeaseExpired") == []
        await svc.dispatch()
        lease2 = _sent(svc, "TaskDispatched")[1].lease_id
        # expires first, then its release arrives late: the late release frees nothing
        svc.clock.t += timedelta(hours=1)  # type: ignore[attr-defined]
        await svc.expire()
        assert [e.lease_id for e in _sent(svc, "LeaseExpired")] == [lease2]
        assert repo.leases[lease2]["status"] == "expired"
        await svc.dispatch()
        lease3 = _sent(svc, "TaskDispatched")[2].lease_id
        await _release(svc, lease2)
        assert _active(svc) == 1
        assert lease3 in svc.alloc.org(ORG).leases
        assert repo.leases[lease2]["status"] == "expired"

    asyncio.run(run())


def test_a_lease_that_cannot_be_stored_gives_its_slot_back() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1")
        repo.fail_insert = True
        with pytest.raises(ConnectionError):
            await svc.dispatch()
        assert _active(svc) == 0
        assert svc.alloc.holds(ORG, ("t1", 1))
        repo.fail_insert = False
        await svc.dispatch()
        assert _active(svc) == 1
        assert [d.task_id for d in _sent(svc, "TaskDispatched")] == ["t1"]

    asyncio.run(run())


def test_restart_rebuilds_queue_leases_and_settings_without_doubling() -> None:
    async def run() -> None:
        svc, repo = _service(slots=5)
        conf = SlotsConfigured(
            revision=1,
            total_slots=2,
            workspaces=[WorkspaceSlotsConfig(workspace_id="ws_1", allocation=2, mode="hard")],
        )
        await svc.on_slots_configured(_env(conf), conf)
        await _queue(svc, "t1", "t2", "t3", "t4")
        await svc.dispatch()
        assert _active(svc) == 2
        # a new process on the same database
        again, _ = _service(repo, slots=5)
        await again.rebuild()
        assert _active(again) == 2
        assert again.alloc.org(ORG).queued == 2
        await again.dispatch()
        assert _sent(again, "TaskDispatched") == []  # the restored settings still say 2
        first = [d.task_id for d in _sent(svc, "TaskDispatched")]
        for t in first:  # redelivered TaskQueued of dispatched attempts are ignored
            ev = _queued(t)
            await again.on_task_queued(_env(ev), ev)
        assert again.alloc.org(ORG).queued == 2
        old = _sent(svc, "TaskDispatched")[0].lease_id
        await _release(again, old)
        await again.dispatch()
        again_sent = [d.task_id for d in _sent(again, "TaskDispatched")]
        assert len(again_sent) == 1
        assert again_sent[0] not in first
        stale = SlotsConfigured(revision=1, total_slots=50)
        await again.on_slots_configured(_env(stale), stale)  # an older revision: ignored
        assert again.alloc.org(ORG).total_slots == 2

    asyncio.run(run())


def test_caller_number_pool_round_robin_within_cps() -> None:
    async def run() -> None:
        svc, _ = _service(slots=10)
        conf = SlotsConfigured(revision=1, total_slots=10, number_cps={"+15550001": 1.0})
        await svc.on_slots_configured(_env(conf), conf)
        for t in ("t1", "t2", "t3", "t4"):
            ev = _queued(t, numbers=["+15550001", "+15550002"])
            await svc.on_task_queued(_env(ev), ev)
        await svc.dispatch()
        froms = [d.dial.from_number for d in _sent(svc, "TaskDispatched")]
        # number 1 has one token per second: once; number 2 has no limit
        assert froms == ["+15550001", "+15550002", "+15550002", "+15550002"]

    asyncio.run(run())
