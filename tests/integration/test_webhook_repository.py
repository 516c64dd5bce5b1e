"""The webhook service's queries against the real (embedded or external) MongoDB: intake,
the sender's due/head-of-key/claim/wake cycle, ordering per lead, retries and the delivery log.
The unit tests use an in-memory fake; this is what proves the real queries match it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from outbound_core.events import Envelope, LeadUpdated
from tests.conftest import Infra
from webhook.handlers import WebhookHandlers
from webhook.repository import WebhookRepository
from webhook.sender import Sender
from webhook.settings import WebhookSettings
from webhook.signing import new_secret

pytestmark = pytest.mark.integration


class ManualClock:
    speed = 1.0

    def __init__(self) -> None:
        self.t = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def real_seconds(self, virtual: Any) -> float:
        return 0.0

    async def sleep(self, virtual: Any) -> None:
        return None


class Answers:
    """An in-process subscriber: records requests, answers from a per-path queue."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.responses: dict[str, list[int]] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.responses.get(request.url.path)
        return httpx.Response(queue.pop(0) if queue else 200)

    def sent(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.content)["data"] for r in self.requests if r.url.path == path]


class World:
    def __init__(self, infra: Infra) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            infra.mongo_url, tz_aware=True
        )
        self.repo = WebhookRepository(self.client[f"it_webhook_{uuid.uuid4().hex[:8]}"])
        self.clock = ManualClock()
        self.answers = Answers()
        self.settings = WebhookSettings(
            allow_private_urls=True, retry_jitter=0, request_timeout_seconds=2
        )
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.answers))
        self.sender = Sender(repo=self.repo, settings=self.settings, clock=self.clock, client=http)
        self.handlers = WebhookHandlers(repo=self.repo, now=self.clock.now, kick=lambda: None)

    async def add_sub(self, path: str, events: list[str] | None = None) -> str:
        sid = f"wh_{uuid.uuid4().hex[:12]}"
        await self.repo.create_subscription(
            doc={
                "_id": sid,
                "org_id": "org_1",
                "workspace_id": "ws_1",
                "url": f"http://127.0.0.1:9{path}",
                "events": events or ["*"],
                "enabled": True,
                "status": "active",
                "secret": new_secret(),
                "delivery_seq": 0,
                "created_at": self.clock.now(),
            }
        )
        return sid

    async def lead(self, task: str, seq: int) -> None:
        p = LeadUpdated(task_id=task, campaign_id="cmp_1", seq=seq, status="queued")
        env = Envelope(
            id=f"evt_{task}_{seq}",
            type=p.TYPE,
            occurred_at=self.clock.now(),
            producer="test",
            org_id="org_1",
            workspace_id="ws_1",
            correlation_id="c",
            data=p.model_dump(mode="json"),
        )
        await self.handlers.on_lead_updated(env, p)

    async def drain(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await self.sender.tick()
            while self.sender._tasks:
                await asyncio.gather(*self.sender._tasks.values(), return_exceptions=True)


@pytest.fixture
async def world(infra: Infra) -> AsyncIterator[World]:
    w = World(infra)
    await w.repo.ensure_indexes()
    yield w
    await w.sender.close()
    await w.client.close()


async def test_in_order_per_lead_with_a_failing_head(world: World) -> None:
    await world.add_sub("/a")
    world.answers.responses["/a"] = [500]
    for seq in (1, 2, 3):
        await world.lead("tsk_1", seq)
    await world.drain()  # tsk_1's head is answered 500; seq 2 and 3 wait behind it
    await world.lead("tsk_2", 1)
    await world.lead("tsk_2", 1)  # a redelivered event makes no second delivery
    await world.drain()
    assert [(d["lead_id"], d["seq"]) for d in world.answers.sent("/a")] == [
        ("tsk_1", 1),
        ("tsk_2", 1),
    ]
    world.clock.t += timedelta(seconds=6)
    await world.drain()
    got = [(d["lead_id"], d["seq"]) for d in world.answers.sent("/a") if d["lead_id"] == "tsk_1"]
    assert got == [("tsk_1", 1), ("tsk_1", 1), ("tsk_1", 2), ("tsk_1", 3)]


async def test_retries_until_dead_and_log(world: World) -> None:
    sid = await world.add_sub("/dead")
    world.answers.responses["/dead"] = [503] * 10
    await world.lead("tsk_1", 1)
    for _ in range(8):
        await world.drain(3)
        world.clock.t += timedelta(hours=11)
    [d] = await world.repo.list_deliveries(subscription_id=sid, limit=10)
    assert d["status"] == "dead"
    assert d["attempt_count"] == 7
    assert [a["status_code"] for a in d["attempts"]] == [503] * 7


async def test_dead_endpoint_does_not_delay_another(world: World) -> None:
    await world.add_sub("/dead")
    await world.add_sub("/ok")
    world.answers.responses["/dead"] = [503] * 1000
    for i in range(30):
        await world.lead(f"tsk_{i}", 1)
    await world.drain(5)
    assert len(world.answers.sent("/ok")) == 30


async def test_resend_and_disable_failing_on_the_real_database(world: World) -> None:
    sid = await world.add_sub("/down")
    world.answers.responses["/down"] = [503] * 7
    await world.lead("tsk_1", 1)
    for _ in range(8):
        await world.drain(3)
        world.clock.t += timedelta(hours=11)
    [dead] = await world.repo.list_deliveries(subscription_id=sid, limit=10, status="dead")
    assert await world.repo.list_deliveries(subscription_id=sid, limit=10, status="pending") == []
    sub = await world.repo.subscription_by_id(subscription_id=sid)
    assert sub is not None and sub["failing_since"] is not None
    assert sub["status"] == "active"  # failing for ~3 days: not yet disabled

    assert await world.repo.dead_ids(subscription_id=sid, limit=10) == [dead["_id"]]
    resent = await world.repo.resend(
        subscription_id=sid, delivery_id=dead["_id"], now=world.clock.now()
    )
    assert resent is not None and resent["status"] == "pending"
    assert (
        await world.repo.resend(subscription_id=sid, delivery_id=dead["_id"], now=world.clock.now())
        is None
    )  # already pending again
    await world.drain(3)
    done = await world.repo.get_delivery(delivery_id=dead["_id"])
    assert done is not None
    assert (done["status"], done["attempt_count"], done["resend_count"]) == ("succeeded", 8, 1)
    sub = await world.repo.subscription_by_id(subscription_id=sid)
    assert sub is not None and sub["failing_since"] is None

    assert await world.repo.disable_failing(subscription_id=sid, at=world.clock.now())
    assert not await world.repo.disable_failing(subscription_id=sid, at=world.clock.now())
    sub = await world.repo.subscription_by_id(subscription_id=sid)
    assert sub is not None and (sub["status"], sub["enabled"]) == ("disabled_failing", False)
