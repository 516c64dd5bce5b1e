"""A broker that restarts empty (the embedded one keeps nothing) is repaired by the service
itself: topics recreated, producer and consumers reconnected, consumption goes on. Uses a
broker of its own, since it restarts it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outbound_core.embedded import embedded_kafka, free_port, start_and_wait
from outbound_core.events import CampaignDrained, Envelope
from outbound_core.kafka import (
    Consumer,
    EventBus,
    build_broker,
    ensure_topics,
    repair_after_broker_loss,
)
from outbound_core.settings import ServiceSettings
from outbound_core.topics import LEADS
from tests.conftest import Infra

pytestmark = pytest.mark.integration


async def test_a_service_repairs_itself_after_the_broker_restarts_empty(
    tmp_path: Path, infra: Infra
) -> None:
    port = free_port()
    kafka = embedded_kafka(port, tmp_path)
    start_and_wait(kafka, port)
    settings = ServiceSettings(
        service_name=f"it-{uuid.uuid4().hex[:6]}",
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        mongodb_url=infra.mongo_url,
    )
    broker = build_broker(settings)
    bus = EventBus(broker=broker, producer=settings.service_name, now=lambda: None)
    seen: list[str] = []

    async def on_drained(env: Envelope, ev: CampaignDrained) -> None:
        seen.append(ev.campaign_id)

    Consumer(
        broker=broker,
        bus=bus,
        settings=settings,
        topic=LEADS,
        handlers={CampaignDrained.TYPE: (CampaignDrained, on_drained)},
        group_id=f"{settings.service_name}.leads",
    ).register()

    async def publish_and_see(campaign_id: str) -> None:
        env = EventBus(broker=broker, producer="it", now=lambda: datetime.now(UTC)).envelope(
            CampaignDrained(campaign_id=campaign_id, total_tasks=1), org_id="o", workspace_id="w"
        )
        async with asyncio.timeout(60):
            while campaign_id not in seen:
                with contextlib.suppress(Exception):  # the broker may still be coming back
                    await bus.publish(LEADS, env, key=campaign_id)
                await asyncio.sleep(1.0)

    try:
        await ensure_topics(settings)
        epoch = await repair_after_broker_loss(settings, broker, None)
        assert await repair_after_broker_loss(settings, broker, epoch) == epoch  # nothing lost
        await broker.start()
        await publish_and_see("cmp_before")
        kafka.kill()
        kafka.stop()
        start_and_wait(kafka, port)
        # a broker that restarted empty has a new epoch, whichever service noticed first
        assert await repair_after_broker_loss(settings, broker, epoch) != epoch
        await publish_and_see("cmp_after")
    finally:
        await broker.stop()
        kafka.stop()
