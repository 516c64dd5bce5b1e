"""Lease renewal: the pure fencing rule, and the service keeping a renewed lease while an
expiry racing the renewal never takes its slot (in-memory stand-ins for repository and bus)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from outbound_core.events import LeaseRenewed
from slot_allocator.leases import is_due, renewal_verdict, renewed_deadlines
from slot_allocator.service import SlotService
from tests.unit.slot_allocator.test_allocator_slots_leases import (
    ORG,
    T0,
    _active,
    _env,
    _queue,
    _sent,
    _service,
)


def _lease(**kw: Any) -> dict[str, Any]:
    return {"task_id": "t1", "attempt": 2, "status": "active", **kw}


def test_only_the_active_holder_of_the_same_attempt_may_renew() -> None:
    assert renewal_verdict(_lease(), task_id="t1", attempt=2) == "renew"
    assert renewal_verdict(None, task_id="t1", attempt=2) == "unknown"
    # a stale holder: the attempt was dispatched again under a newer lease
    assert renewal_verdict(_lease(), task_id="t1", attempt=1) == "not_holder"
    assert renewal_verdict(_lease(), task_id="t9", attempt=2) == "not_holder"
    # expired (its slot may already serve another call) or released: never revived
    assert renewal_verdict(_lease(status="expired"), task_id="t1", attempt=2) == "ended"
    assert renewal_verdict(_lease(status="released"), task_id="t1", attempt=2) == "ended"


def test_renewal_gives_a_full_ttl_and_never_shortens() -> None:
    d = renewed_deadlines(
        now=T0,
        real_now=1000.0,
        ttl=timedelta(minutes=10),
        ttl_real=30.0,
        current_expires_at=T0 + timedelta(minutes=2),
        current_real_deadline=1010.0,
    )
    assert d.expires_at == T0 + timedelta(minutes=10)
    assert d.real_deadline == 1030.0
    later = renewed_deadlines(
        now=T0,
        real_now=1000.0,
        ttl=timedelta(minutes=10),
        ttl_real=30.0,
        current_expires_at=T0 + timedelta(hours=1),
        current_real_deadline=2000.0,
    )
    assert later.expires_at == T0 + timedelta(hours=1)
    assert later.real_deadline == 2000.0


def test_a_lease_is_due_only_when_both_deadlines_passed() -> None:
    lease = {"expires_at": T0, "real_deadline": 100.0}
    assert is_due(lease, now=T0, real_now=100.0)
    assert not is_due(lease, now=T0 - timedelta(seconds=1), real_now=100.0)
    assert not is_due(lease, now=T0, real_now=99.0)
    naive = {"expires_at": T0.replace(tzinfo=None), "real_deadline": 0.0}  # as MongoDB returns
    assert is_due(naive, now=T0, real_now=1.0)


async def _renew(svc: SlotService, granted: Any, task: str | None = None) -> None:
    """Renew the lease of a TaskDispatched (as the holder, or as ``task``: a stale holder)."""
    ev = LeaseRenewed(
        lease_id=granted.lease_id,
        task_id=task or granted.task_id,
        attempt=granted.attempt,
        call_id="call_x",
        renewed_at=T0,
    )
    await svc.on_lease_renewed(_env(ev), ev)


def _advance(svc: SlotService, minutes: float) -> None:
    svc.clock.t += timedelta(minutes=minutes)  # type: ignore[attr-defined]


def test_a_renewed_lease_outlives_its_first_ttl_and_expires_once_renewals_stop() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)  # TTL 10 minutes
        await _queue(svc, "t1", "t2")
        await svc.dispatch()
        granted = _sent(svc, "TaskDispatched")[0]
        lease = granted.lease_id
        for _ in range(5):  # 40 minutes of renewals every 8: four TTLs
            _advance(svc, 8)
            await _renew(svc, granted)
            await svc.expire()
        assert _sent(svc, "LeaseExpired") == []
        assert repo.leases[lease]["status"] == "active"
        assert _active(svc) == 1
        await svc.dispatch()
        assert len(_sent(svc, "TaskDispatched")) == 1  # t2 still waits: the slot is held
        _advance(svc, 11)  # the dialer stopped renewing (it died): expires as before
        await svc.expire()
        assert [e.lease_id for e in _sent(svc, "LeaseExpired")] == [lease]
        await svc.dispatch()
        assert sorted(d.task_id for d in _sent(svc, "TaskDispatched")) == ["t1", "t2"]

    asyncio.run(run())


def test_an_expired_lease_is_never_revived_nor_renewed_by_a_stale_holder() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1", "t2")
        await svc.dispatch()
        first = _sent(svc, "TaskDispatched")[0]
        _advance(svc, 11)
        await svc.expire()
        await svc.dispatch()
        second = _sent(svc, "TaskDispatched")[1]
        await _renew(svc, first)  # late renewal of the expired lease
        assert repo.leases[first.lease_id]["status"] == "expired"
        assert _active(svc) == 1
        before = repo.leases[second.lease_id]["expires_at"]
        await _renew(svc, second, task=first.task_id)  # a stale holder naming another task
        assert repo.leases[second.lease_id]["expires_at"] == before
        _advance(svc, 1)
        await _renew(svc, second)  # its holder does renew it
        assert repo.leases[second.lease_id]["expires_at"] > before

    asyncio.run(run())


def test_a_renewal_stored_while_the_expiry_runs_wins() -> None:
    async def run() -> None:
        svc, repo = _service(slots=1)
        await _queue(svc, "t1", "t2")
        await svc.dispatch()
        lease = _sent(svc, "TaskDispatched")[0].lease_id
        _advance(svc, 11)
        real_end_lease = repo.end_lease

        async def renewed_first(**kw: Any) -> bool:
            # the renewal reaches the database between the expiry's check and its write
            repo.leases[lease]["expires_at"] = svc.clock.now() + timedelta(minutes=10)
            return await real_end_lease(**kw)

        repo.end_lease = renewed_first  # type: ignore[method-assign]
        await svc.expire()
        repo.end_lease = real_end_lease  # type: ignore[method-assign]
        assert _sent(svc, "LeaseExpired") == []
        assert repo.leases[lease]["status"] == "active"
        assert lease in svc.alloc.org(ORG).leases
        await svc.dispatch()
        assert len(_sent(svc, "TaskDispatched")) == 1  # the slot stays with the live call
        _advance(svc, 11)
        await svc.expire()  # and it is still tracked: it expires when renewals stop
        assert [e.lease_id for e in _sent(svc, "LeaseExpired")] == [lease]

    asyncio.run(run())
