"""The simulated network's declared outage (the chaos runner's provider fault), against the
real database: new calls fail with the provider error while it lasts, a call asked again keeps
what the network did the first time, and calls go through again once it is over."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from dialer.providers import sim
from dialer.providers.base import DialOrder, ProviderError
from dialer.providers.sim import SimProvider
from dialer.settings import DialerSettings
from outbound_core.clock import VirtualClock
from tests.conftest import Infra

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


@pytest.fixture
async def network(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimProvider]:
    monkeypatch.setattr(sim, "CONTROL_READ_SECONDS", 0.0)  # read the control on every call
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    db = client[f"it_sim_{uuid.uuid4().hex[:8]}"]
    clock = VirtualClock(start=datetime(2026, 3, 2, 15, 0, tzinfo=UTC), anchor=time.time())
    yield SimProvider(db=db, clock=clock, settings=DialerSettings())
    await client.drop_database(db.name)
    await client.close()


def _order(n: int) -> DialOrder:
    return DialOrder(
        call_id=f"call_{n}",
        task_id=f"task_{n}",
        attempt=1,
        to=f"+1212736{9000 + n}",
        from_number=None,
        language="en-US",
        greeting="Hi",
        system_prompt="",
        sim_outcomes=("interested",),
    )


async def _outage(net: SimProvider, seconds: float) -> None:
    await net.controls.replace_one(
        {"_id": "outage"}, {"until": time.time() + seconds, "outcome": "error_5xx"}, upsert=True
    )


async def test_calls_fail_during_an_outage_and_go_through_after_it(network: SimProvider) -> None:
    await network.dial(_order(1))  # before the outage: rings
    await _outage(network, 60)
    with pytest.raises(ProviderError, match="provider_5xx"):
        await network.dial(_order(2))
    await network.dial(_order(1))  # asked again: the call that rang stays the call that rang
    await _outage(network, -1)  # over
    await network.dial(_order(3))
    status = {d["_id"]: d["status"] async for d in network.calls.find()}
    assert status == {"call_1": "active", "call_2": "rejected", "call_3": "active"}
