"""A call recorded but never confirmed placed (the dialer died between its record and the
provider's answer) is resumed by the stuck-call sweep only if the last-moment guard still lets
it through: the same guard a redelivered dispatch gets. The short chaos suite once saw such a
call placed at 00:42 local, 14 virtual hours after it was recorded, by a sweep that skipped
the guard. Against the real database: the record is made by the real dispatch path."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from dialer.campaigns import CampaignProjection
from dialer.handlers import DialerHandlers
from dialer.providers.base import DialOrder
from dialer.repository import CallRepository, CampaignRepository, SuppressionRepository
from outbound_core.events import (
    CallAborted,
    DialRequest,
    DialWindow,
    LeaseReleased,
    Payload,
    TaskDispatched,
    make_envelope,
)
from outbound_core.ids import stable_id
from tests.conftest import Infra

pytestmark = pytest.mark.integration

Doc = dict[str, Any]
T0 = datetime(2026, 3, 2, 15, 35, tzinfo=UTC)  # Monday 10:35 in New York
PHONE = "+12125550123"  # New York
CID = "camp_stuck"
LEASE = timedelta(hours=10)  # the chaos runner's leases: 20 real seconds at 1800x


@dataclass
class Clock:
    at: datetime = T0
    speed: float = 1.0

    def now(self) -> datetime:
        return self.at

    def real_seconds(self, virtual: timedelta | float) -> float:
        return virtual.total_seconds() if isinstance(virtual, timedelta) else virtual


@dataclass
class Bus:
    sent: list[Payload] = field(default_factory=list)

    async def emit(self, topic: Any, payload: Payload, **_: Any) -> None:
        self.sent.append(payload)

    def of(self, kind: type[Payload]) -> list[Any]:
        return [p for p in self.sent if isinstance(p, kind)]


class Provider:
    """Records every call it is asked to place; the first ask can "kill" the dialer."""

    name = "sim"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.die = True

    async def dial(self, order: DialOrder) -> None:
        self.asked.append(order.call_id)
        if self.die:
            raise RuntimeError("the dialer died before the network answered")


@dataclass
class Dialer:
    handlers: DialerHandlers
    calls: CallRepository
    campaigns: CampaignRepository
    suppressions: SuppressionRepository
    provider: Provider
    clock: Clock
    bus: Bus

    async def record_stuck(
        self, *, window: DialWindow | None = None, lease: timedelta = LEASE
    ) -> str:
        """Dispatch one attempt and let the dialer "die" before the provider answers."""
        d = TaskDispatched(
            lease_id=f"lease_{uuid.uuid4().hex[:8]}",
            task_id=f"task_{uuid.uuid4().hex[:8]}",
            campaign_id=CID,
            attempt=1,
            lease_expires_at=T0 + lease,
            dial=DialRequest(phone=PHONE, name="Ada", window=window),
        )
        env = make_envelope(d, producer="test", org_id="org", workspace_id="ws", occurred_at=T0)
        with pytest.raises(RuntimeError):
            await self.handlers._dispatch(env, d, stable_id("call", d.task_id, d.attempt))
        self.provider.die = False
        self.provider.asked.clear()
        return stable_id("call", d.task_id, d.attempt)

    async def sweep(self, *, at: datetime) -> None:
        self.clock.at = at
        await self.handlers.resume_stuck(set(), 0.0)

    async def status(self, call_id: str) -> tuple[str, str | None]:
        doc = await self.calls.get(call_id=call_id)
        assert doc is not None
        return doc["status"], doc.get("failure")


@pytest.fixture
async def dialer(infra: Infra) -> AsyncIterator[Dialer]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"it_stuck_{uuid.uuid4().hex[:8]}"]
    calls, campaigns, suppressions = (
        CallRepository(db),
        CampaignRepository(db),
        SuppressionRepository(db),
    )
    await calls.ensure_indexes()
    await campaigns.upsert_created(
        campaign_id=CID,
        doc={
            "status": "running",
            "agent": {"name": "Maya", "language": "en-US", "greeting": "Hi {{NAME}}."},
            "language": "en-US",
            "calling_hours": {"start": "09:00", "end": "20:00"},
            "schedule": None,
        },
    )
    clock, bus, provider = Clock(), Bus(), Provider()
    handlers = DialerHandlers(
        calls=calls,
        campaigns=CampaignProjection(campaigns),
        provider=provider,  # type: ignore[arg-type]
        bus=bus,  # type: ignore[arg-type]
        clock=clock,  # type: ignore[arg-type]
        suppressions=suppressions,
    )
    yield Dialer(handlers, calls, campaigns, suppressions, provider, clock, bus)
    await client.drop_database(db.name)
    await client.close()


def _aborted(bus: Bus) -> list[tuple[str, str]]:
    return [(a.task_id, a.reason) for a in bus.of(CallAborted)]


async def test_a_stuck_call_inside_its_window_and_lease_is_placed_again(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck()
    await dialer.sweep(at=T0 + timedelta(hours=2))  # 12:35 local, lease until 20:35
    assert dialer.provider.asked == [call_id]  # same call id: the provider's idempotency key
    assert (await dialer.status(call_id))[0] == "active"
    assert _aborted(dialer.bus) == []


async def test_a_stuck_call_whose_window_closed_is_never_dialled(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck(lease=timedelta(hours=20))
    # 00:42 local the next day: the lease is still good, the window is not
    await dialer.sweep(at=T0 + timedelta(hours=14, minutes=7))
    assert dialer.provider.asked == []
    assert await dialer.status(call_id) == ("ended", "outside_window")
    # handed back to the planner (not an attempt) and the slot given back
    doc = await dialer.calls.get(call_id=call_id)
    assert doc is not None
    assert _aborted(dialer.bus) == [(doc["task_id"], "outside_window")]
    assert [r.lease_id for r in dialer.bus.of(LeaseReleased)] == [doc["lease_id"]]
    # a second sweep finds nothing left to do
    await dialer.sweep(at=T0 + timedelta(hours=15))
    assert dialer.provider.asked == [] and len(_aborted(dialer.bus)) == 1


async def test_a_stuck_call_past_its_lease_is_never_dialled(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck(lease=timedelta(hours=1))
    await dialer.sweep(at=T0 + timedelta(hours=2))  # 12:35 local: inside the window
    assert dialer.provider.asked == []
    assert await dialer.status(call_id) == ("ended", "lease_expired")


async def test_a_renewed_lease_keeps_a_stuck_call_resumable(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck(lease=timedelta(hours=1))
    renewed = T0 + timedelta(minutes=50)  # renewed until 12:25 local
    await dialer.calls.calls.update_one({"_id": call_id}, {"$set": {"lease_renewed_at": renewed}})
    await dialer.sweep(at=T0 + timedelta(hours=1, minutes=30))  # 12:05 local
    assert dialer.provider.asked == [call_id]


async def test_a_stuck_call_to_a_number_opted_out_meanwhile_is_never_dialled(
    dialer: Dialer,
) -> None:
    call_id = await dialer.record_stuck()
    await dialer.suppressions.add(org_id="org", phone=PHONE, reason="opt_out")
    await dialer.sweep(at=T0 + timedelta(hours=1))
    assert dialer.provider.asked == []
    assert await dialer.status(call_id) == ("ended", "opted_out")


async def test_a_stuck_call_of_a_paused_campaign_is_never_dialled(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck()
    await dialer.campaigns.set_status(campaign_id=CID, status="paused", at=T0)
    await dialer.sweep(at=T0 + timedelta(hours=1))
    assert dialer.provider.asked == []
    assert await dialer.status(call_id) == ("ended", "campaign_paused")


async def test_a_realtime_task_keeps_its_own_window_on_resume(dialer: Dialer) -> None:
    # the task's own hours (10:00-11:00 in New York) are narrower than the campaign's
    call_id = await dialer.record_stuck(window=DialWindow(hours_start="10:00", hours_end="11:00"))
    await dialer.sweep(at=T0 + timedelta(hours=1))  # 11:35 local: campaign hours, not the task's
    assert dialer.provider.asked == []
    assert await dialer.status(call_id) == ("ended", "outside_window")


async def test_a_call_that_ended_meanwhile_is_not_handed_back(dialer: Dialer) -> None:
    call_id = await dialer.record_stuck()
    stuck = await dialer.calls.stuck_dialing(before=T0 + timedelta(days=1))
    # its end arrives between the sweep's read and its verdict
    await dialer.calls.finish(call_id=call_id, fields={"closed_by": "provider"})
    dialer.clock.at = T0 + timedelta(hours=14)

    async def stale(*, before: datetime) -> list[Doc]:
        return stuck

    dialer.handlers.calls.stuck_dialing = stale  # type: ignore[method-assign]
    await dialer.handlers.resume_stuck(set(), 0.0)
    assert _aborted(dialer.bus) == []  # the planner has the call's own end
    assert (await dialer.status(call_id))[0] == "ended"
