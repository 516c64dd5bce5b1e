"""No path of the allocator's service layer leaks or double-frees a slot: release of an unknown
lease, a duplicate release, expiry racing a release, a lease that cannot be stored, a restart.
The service runs against in-memory stand-ins for its repository and bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outbound_core.events import (
    CampaignStatusChanged,
    DialRequest,
    Envelope,
    LeaseReleased,
    SlotsConfigured,
    TaskQueued,
    TaskWithdrawn,
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
        self.owners: dict[str, dict[str, Any]] = {}
        self.holds: dict[str, dict[str, Any]] = {}
        self.fail_insert = False

    async def claim(self, *, org_id: str, owner: str, at: float) -> tuple[int, dict[str, Any]]:
        doc = self.owners.setdefault(org_id, {"epoch": 0, "leases": {}})
        doc.update(epoch=doc["epoch"] + 1, owner=owner)
        return doc["epoch"], dict(doc["leases"])

    async def fence_grant(
        self, *, org_id: str, epoch: int, lease_id: str, lease: dict[str, Any]
    ) -> bool:
        doc = self.owners.get(org_id)
        if doc is None or doc["epoch"] != epoch:
            return False
        doc["leases"][lease_id] = dict(lease)
        return True

    async def is_owner(self, *, org_id: str, epoch: int) -> bool:
        return self.owners.get(org_id, {}).get("epoch") == epoch

    async def unfence_lease(self, *, org_id: str, lease_id: str) -> None:
        self.owners.get(org_id, {}).get("leases", {}).pop(lease_id, None)

    async def org_ids(self) -> set[str]:
        return (
            set(self.owners)
            | set(self.config)
            | {d["org_id"] for d in self.queue.values()}
            | {d["org_id"] for d in self.leases.values() if d["status"] == "active"}
        )

    async def lease_statuses(self, *, ids: list[str]) -> dict[str, str]:
        return {i: self.leases[i]["status"] for i in ids if i in self.leases}

    async def config_of(self, *, org_id: str) -> dict[str, Any] | None:
        return self.config.get(org_id)

    async def set_hold(self, *, campaign_id: str, org_id: str, held: bool, at: datetime) -> bool:
        prior = self.holds.get(campaign_id)
        if prior is not None and prior["at"] > at:
            return False
        self.holds[campaign_id] = {"org_id": org_id, "held": held, "at": at}
        return True

    async def held_campaigns(self, *, org_id: str) -> set[str]:
        return {c for c, d in self.holds.items() if d["org_id"] == org_id and d["held"]}

    async def ensure_indexes(self) -> None:
        return None

    async def was_dispatched(self, *, task_id: str, attempt: int) -> bool:
        return bool(await self.leases_of(keys=[(task_id, attempt)]))

    async def leases_of(self, *, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        wanted = set(keys)
        return {
            key: d for d in self.leases.values() if (key := (d["task_id"], d["attempt"])) in wanted
        }

    async def save_queued_many(self, *, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
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

    async def end_lease(
        self,
        *,
        lease_id: str,
        status: str,
        at: datetime,
        due_by: tuple[datetime, float] | None = None,
    ) -> bool:
        d = self.leases.get(lease_id)
        if d is None or d["status"] != "active":
            return False
        if due_by is not None and (d["expires_at"] > due_by[0] or d["real_deadline"] > due_by[1]):
            return False
        d.update(status=status, ended_at=at)
        return True

    async def get_lease(self, *, lease_id: str) -> dict[str, Any] | None:
        d = self.leases.get(lease_id)
        return None if d is None else dict(d)

    async def renew_lease(
        self,
        *,
        lease_id: str,
        task_id: str,
        attempt: int,
        expires_at: datetime,
        real_deadline: float,
        at: datetime,
    ) -> bool:
        d = self.leases.get(lease_id)
        if d is None or d["status"] != "active":
            return False
        if d["task_id"] != task_id or d["attempt"] != attempt:
            return False
        d.update(expires_at=expires_at, real_deadline=real_deadline, renewed_at=at)
        return True

    async def active_leases(self, *, org_id: str) -> list[dict[str, Any]]:
        return [
            d for d in self.leases.values() if d["status"] == "active" and d["org_id"] == org_id
        ]

    async def expired_leases(self) -> list[dict[str, Any]]:
        return [d for d in self.leases.values() if d["status"] == "expired"]

    async def all_active_leases(self) -> list[dict[str, Any]]:
        return [d for d in self.leases.values() if d["status"] == "active"]

    async def queued(self, *, org_id: str) -> list[dict[str, Any]]:
        return [d for d in self.queue.values() if d["org_id"] == org_id]

    async def save_config(self, *, org_id: str, revision: int, doc: dict[str, Any]) -> bool:
        if self.config.get(org_id, {}).get("revision", 0) >= revision:
            return False
        self.config[org_id] = {"_id": org_id, **doc, "revision": revision}
        return True


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.options: list[dict[str, Any]] = []

    async def emit(self, topic: Any, payload: Any, **options: Any) -> None:
        self.sent.append(payload)
        self.options.append(options)


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
        # the restored settings still say 2: no new grant; the active leases' dispatches are
        # published again (same leases: the dialer ignores what it has seen)
        republished = [d.lease_id for d in _sent(again, "TaskDispatched")]
        assert sorted(republished) == sorted(d.lease_id for d in _sent(svc, "TaskDispatched"))
        first = [d.task_id for d in _sent(svc, "TaskDispatched")]
        for t in first:  # redelivered TaskQueued of dispatched attempts: never queued again
            ev = _queued(t)  # (their dispatch is told again, same lease)
            await again.on_task_queued(_env(ev), ev)
        assert again.alloc.org(ORG).queued == 2
        old = _sent(svc, "TaskDispatched")[0].lease_id
        await _release(again, old)
        await again.dispatch()
        known = {d.lease_id for d in _sent(svc, "TaskDispatched")}
        again_sent = [d.task_id for d in _sent(again, "TaskDispatched") if d.lease_id not in known]
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


def test_a_new_owner_fences_the_old_one_and_takes_its_leases_and_queue() -> None:
    async def run() -> None:
        old, repo = _service(slots=2)
        await _queue(old, "t1", "t2", "t3", "t4")
        await old.dispatch()
        assert _active(old) == 2
        # a rebalance: the org's partition moves to another instance, which takes it over
        new, _ = _service(repo, slots=2)
        await new.ensure_owned(ORG)
        assert _active(new) == 2
        assert new.alloc.org(ORG).queued == 2
        # the old instance, not yet told, frees a slot and tries to grant: fenced off
        first = _sent(old, "TaskDispatched")[0]
        await repo.end_lease(lease_id=first.lease_id, status="released", at=T0)
        old.alloc.release(ORG, first.lease_id)
        await old.dispatch()
        assert len(_sent(old, "TaskDispatched")) == 2
        assert ORG not in old.owned  # it forgot the org
        # the release reaches the new owner, which grants the freed slot once
        await _release(new, first.lease_id)
        await new.dispatch()
        granted = [d.task_id for d in _sent(new, "TaskDispatched")][2:]  # 2 re-published
        assert len(granted) == 1
        assert granted[0] not in {d.task_id for d in _sent(old, "TaskDispatched")}
        assert _active(new) == 2
        assert len({(d["task_id"], d["attempt"]) for d in repo.leases.values()}) == 3

    asyncio.run(run())


def test_a_grant_whose_lease_was_never_stored_still_holds_its_slot_then_expires() -> None:
    async def run() -> None:
        old, repo = _service(slots=1)
        await _queue(old, "t1", "t2")
        repo.fail_insert = True  # the old owner dies between the fenced grant and the insert
        with pytest.raises(ConnectionError):
            await old.dispatch()
        repo.fail_insert = False
        # the failure path un-fences; simulate a crash that could not: re-add the map entry
        repo.owners[ORG]["leases"]["lease_ghost"] = {
            "task_id": "t1",
            "attempt": 1,
            "org_id": ORG,
            "workspace_id": "ws_1",
            "campaign_id": "cmp_1",
            "granted_at": T0,
            "expires_at": T0 + timedelta(minutes=10),
            "real_deadline": 0.0,
            "from_number": None,
        }
        new, _ = _service(repo, slots=1)
        await new.ensure_owned(ORG)
        assert _active(new) == 1  # the ghost grant holds the only slot
        assert new.alloc.org(ORG).queued == 1  # t2; t1 belongs to the ghost lease
        await new.dispatch()
        assert _sent(new, "TaskDispatched") == []
        new.clock.t += timedelta(hours=1)  # type: ignore[attr-defined]
        await new.expire()
        assert [e.task_id for e in _sent(new, "LeaseExpired")] == ["t1"]
        assert repo.leases["lease_ghost"]["status"] == "expired"
        assert "t1:1" not in repo.queue
        await new.dispatch()
        assert [d.task_id for d in _sent(new, "TaskDispatched")] == ["t2"]

    asyncio.run(run())


def test_a_paused_campaign_is_held_until_it_runs_again() -> None:
    async def run() -> None:
        svc, repo = _service(slots=0)
        await _queue(svc, "t1", "t2")
        paused = CampaignStatusChanged(campaign_id="cmp_1", status="paused", previous="running")
        env = make_envelope(
            paused, producer="test", org_id=ORG, workspace_id="ws_1", occurred_at=T0
        )
        await svc.on_campaign_status(env, paused)
        assert svc.alloc.org(ORG).queued == 0
        assert repo.queue == {}
        # a TaskQueued the planner sent before it heard of the pause: ignored
        await _queue(svc, "t3")
        assert svc.alloc.org(ORG).queued == 0
        # a restarted instance still holds it
        again, _ = _service(repo, slots=0)
        await again.ensure_owned(ORG)
        await _queue(again, "t4")
        assert again.alloc.org(ORG).queued == 0
        running = CampaignStatusChanged(campaign_id="cmp_1", status="running", previous="paused")
        later = make_envelope(
            running,
            producer="test",
            org_id=ORG,
            workspace_id="ws_1",
            occurred_at=T0 + timedelta(seconds=1),
        )
        await again.on_campaign_status(later, running)
        await again.on_campaign_status(env, paused)  # the old pause, redelivered: ignored
        await _queue(again, "t1")
        assert again.alloc.org(ORG).queued == 1

    asyncio.run(run())


def test_an_attempt_announced_again_after_its_grant_gets_what_followed_told_again() -> None:
    """The broker lost what followed a grant: the planner still waits and announces the attempt
    again. Never a second lease; the dispatch again (same lease, original grant instant), or
    the expiry again once the lease expired."""

    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1")
        await svc.dispatch()
        lease = _sent(svc, "TaskDispatched")[0].lease_id
        svc.clock.t += timedelta(minutes=3)  # type: ignore[attr-defined]
        await _queue(svc, "t1")  # announced again while its lease is active
        await svc.dispatch()
        again = _sent(svc, "TaskDispatched")
        assert [d.lease_id for d in again] == [lease, lease]
        assert svc.bus.options[-1]["occurred_at"] == T0  # type: ignore[attr-defined]
        assert svc.bus.options[-1]["dedupe_parts"] == (lease,)  # type: ignore[attr-defined]
        assert len(repo.leases) == 1 and _active(svc) == 1
        await _release(svc, lease, "t1")  # released (an abort, say), then announced again
        await _queue(svc, "t1")
        assert [d.lease_id for d in _sent(svc, "TaskDispatched")] == [lease] * 3
        assert _active(svc) == 0 and repo.queue == {}
        repo.leases[lease]["status"] = "expired"  # expired instead: the expiry is told again
        await _queue(svc, "t1")
        assert [e.lease_id for e in _sent(svc, "LeaseExpired")] == [lease]
        assert len(_sent(svc, "TaskDispatched")) == 3

    asyncio.run(run())


def test_after_a_broker_loss_expiries_and_active_dispatches_are_told_again() -> None:
    async def run() -> None:
        svc, repo = _service(slots=2)
        await _queue(svc, "t1", "t2")
        await svc.dispatch()
        first, second = (d.lease_id for d in _sent(svc, "TaskDispatched"))
        svc.clock.t += timedelta(hours=1)  # type: ignore[attr-defined]
        repo.leases[first]["status"] = "expired"
        svc.bus.sent.clear()  # type: ignore[attr-defined]
        await svc.republish()
        assert [e.lease_id for e in _sent(svc, "LeaseExpired")] == [first]
        assert [d.lease_id for d in _sent(svc, "TaskDispatched")] == [second]

    asyncio.run(run())


def test_a_fetch_stores_a_run_of_queued_tasks_at_once_and_keeps_every_event_in_its_place() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1")
        await svc.dispatch()
        lease = _sent(svc, "TaskDispatched")[0].lease_id
        items: list[tuple[Envelope, Any]] = []
        for ev in (
            _queued("t1"),  # announced again: its dispatch is told again, never queued again
            _queued("t2"),
            _queued("t2"),  # twice in one fetch: once
            LeaseReleased(lease_id=lease, task_id="t1", attempt=1),
            _queued("t3"),
            TaskWithdrawn(task_id="t3", campaign_id="cmp_1", attempt=1, reason="archived"),
        ):
            items.append((_env(ev), ev))
        await svc.on_batch(items)
        assert sorted(repo.queue) == ["t2:1"]
        assert _active(svc) == 0  # the release applied
        assert svc.alloc.org(ORG).queued == 1
        await svc.dispatch()
        assert [d.task_id for d in _sent(svc, "TaskDispatched")] == ["t1", "t1", "t2"]
        assert len(repo.leases) == 2

    asyncio.run(run())
