"""The shared Kafka/MongoDB mechanisms against the real (embedded or external) servers:
at-least-once consumption with retries, dead-lettering of poison and of handlers that keep
failing, and the outbox that never loses an event published from an HTTP request."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from outbound_core.events import CampaignDrained, Envelope
from outbound_core.kafka import Consumer, EventBus, build_broker, ensure_topics
from outbound_core.outbox import Outbox, Outgoing
from outbound_core.settings import ServiceSettings
from outbound_core.topics import DEADLETTER, LEADS, Topic
from tests.conftest import Infra

pytestmark = pytest.mark.integration


def _settings(infra: Infra, **kw: Any) -> ServiceSettings:
    return ServiceSettings(
        service_name=f"it-{uuid.uuid4().hex[:6]}",
        kafka_bootstrap_servers=infra.kafka_url,
        mongodb_url=infra.mongo_url,
        handler_max_attempts=3,
        **kw,
    )


async def _deadletters(infra: Infra, marker: str, want: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        DEADLETTER.name,
        bootstrap_servers=infra.kafka_url,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < want:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        data = json.loads(r.value)["data"]
                        if marker in data["raw"]:
                            found.append(data)
    finally:
        await consumer.stop()
    return found


async def test_consumer_retries_transient_errors_and_deadletters_persistent_ones(
    infra: Infra,
) -> None:
    settings = _settings(infra)
    await ensure_topics(settings)
    marker = uuid.uuid4().hex
    topic = Topic(f"it.consumer.{marker[:8]}", "k", "test topic")
    await ensure_topics(settings, (topic,))
    broker = build_broker(settings)
    bus = EventBus(broker=broker, producer=settings.service_name, now=settings.clock().now)
    calls: dict[str, int] = {}
    handled: list[str] = []
    last_handled = asyncio.Event()

    async def handler(env: Envelope, payload: CampaignDrained) -> None:
        calls[payload.campaign_id] = calls.get(payload.campaign_id, 0) + 1
        if payload.campaign_id.startswith("flaky") and calls[payload.campaign_id] <= 2:
            raise AutoReconnect("database restarting")  # infrastructure: retried, not dropped
        if payload.campaign_id.startswith("bug"):
            raise ValueError("a bug in the handler")  # retried 3 times, then dead-lettered
        handled.append(payload.campaign_id)
        if payload.campaign_id.startswith("ok"):
            last_handled.set()

    Consumer(
        broker=broker,
        bus=bus,
        settings=settings,
        topic=topic,
        handlers={CampaignDrained.TYPE: (CampaignDrained, handler)},
        group_id=f"it-{marker}",
    ).register()
    await broker.start()
    try:
        for cid in (f"bug-{marker}", f"flaky-{marker}", f"ok-{marker}"):
            await bus.emit(
                topic,
                CampaignDrained(campaign_id=cid, total_tasks=1),
                key="same",
                org_id="org_t",
                workspace_id="ws_t",
            )
        await asyncio.wait_for(last_handled.wait(), 60)
    finally:
        await broker.stop()
    assert handled == [f"flaky-{marker}", f"ok-{marker}"]  # in order, none lost, once each
    assert calls[f"bug-{marker}"] == 3
    assert calls[f"flaky-{marker}"] == 3
    dead = await _deadletters(infra, f"bug-{marker}", 1)
    assert dead[0]["reason"] == "handler_error"
    assert "a bug in the handler" in dead[0]["error"]
    assert dead[0]["source_topic"] == topic.name


def _campaign_id(value: bytes) -> str | None:
    """The campaign id of an envelope; None for anything else on the topic (the dead-letter
    test publishes poison to leads.v1 on the same broker)."""
    try:
        env = json.loads(value)
    except ValueError:
        return None
    return env.get("data", {}).get("campaign_id") if isinstance(env, dict) else None


async def test_outbox_relays_events_whose_publish_failed(infra: Infra) -> None:
    settings = _settings(infra)
    await ensure_topics(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    collection = client[f"it_outbox_{uuid.uuid4().hex[:8]}"]["outbox"]
    broker = build_broker(settings)
    bus = EventBus(broker=broker, producer="it", now=settings.clock().now)
    marker = f"cmp_{uuid.uuid4().hex[:12]}"
    env = bus.envelope(
        CampaignDrained(campaign_id=marker, total_tasks=2), org_id="org_t", workspace_id="ws_t"
    )
    outbox = Outbox(collection, bus, relay_after_seconds=0.0)
    # The broker connection is not started: publishing fails, the request still succeeds.
    await outbox.publish([Outgoing(LEADS, env, marker)])
    assert await collection.count_documents({}) == 1

    consumer = AIOKafkaConsumer(
        LEADS.name, bootstrap_servers=infra.kafka_url, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    await broker.start()
    try:
        await outbox.relay()
        assert await collection.count_documents({}) == 0
        seen: list[str] = []
        async with asyncio.timeout(30):
            while marker not in seen:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen += [_campaign_id(r.value) for r in records]
    finally:
        await consumer.stop()
        await broker.stop()
        await client.close()
