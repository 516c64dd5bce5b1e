"""A service re-publishes what it owns at start-up when the broker is not the one it last
re-published to: the broker lost everything while the service was down, or the service died
in the middle of its re-publish. Against the real broker and database."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI

from outbound_core.service import RUNTIME_COLLECTION, Runtime
from outbound_core.settings import ServiceSettings
from tests.conftest import Infra

pytestmark = pytest.mark.integration


async def _start_once(settings: ServiceSettings) -> int:
    """Start and stop a runtime; how many times its re-publish hook ran."""
    rt = Runtime.create(settings)
    runs: list[int] = []

    async def republish() -> None:
        runs.append(1)

    rt.after_broker_loss.append(republish)
    async with rt.lifespan(FastAPI()), asyncio.timeout(30):
        # the broker watch's first run re-publishes if start-up found it pending
        while rt._republish_pending:  # noqa: ASYNC110 (a flag of the runtime's, no event)
            await asyncio.sleep(0.05)
    return len(runs)


async def test_a_service_re_publishes_at_start_up_only_for_a_broker_it_has_not_repaired(
    infra: Infra,
) -> None:
    name = f"it-epoch-{uuid.uuid4().hex[:6]}"
    settings = ServiceSettings(
        service_name=name,
        kafka_bootstrap_servers=infra.kafka_url,
        mongodb_url=infra.mongo_url,
        database=f"it_{name.replace('-', '_')}",
    )
    # never re-published to this broker: it does so, and records the broker's epoch
    assert await _start_once(settings) == 1
    # restarted on the same broker: nothing to repair
    assert await _start_once(settings) == 0
    # the recorded epoch is another broker's (this one lost everything meanwhile, or the last
    # process died before it finished): again
    rt = Runtime.create(settings)
    await rt.db[RUNTIME_COLLECTION].update_one(
        {"_id": "broker"}, {"$set": {"epoch": "an-older-broker"}}
    )
    await rt.client.close()
    assert await _start_once(settings) == 1
