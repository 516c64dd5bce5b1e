"""Transactional-outbox-style publishing for events that originate outside Kafka (HTTP
requests, timers). The events are written to the service's own ``outbox`` collection first,
then published in order and deleted; a relay publishes whatever a crash or a broker outage
left behind. Delivery is at least once and consumers are idempotent, so a double publish is
harmless, while an HTTP request that succeeded never loses its events."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from outbound_core.events import Envelope
from outbound_core.kafka import EventBus
from outbound_core.topics import ALL_TOPICS, Topic

log = structlog.get_logger(__name__)
_TOPICS = {t.name: t for t in ALL_TOPICS}
_counter = itertools.count()


@dataclass(frozen=True)
class Outgoing:
    topic: Topic
    envelope: Envelope
    key: str


class Outbox:
    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        bus: EventBus,
        relay_after_seconds: float = 5.0,
    ) -> None:
        self.collection = collection
        self.bus = bus
        self.relay_after = relay_after_seconds

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("seq", ASCENDING)])

    async def stage(self, items: list[Outgoing]) -> list[str]:
        if not items:
            return []
        base = time.time_ns()
        docs = [
            {
                "_id": it.envelope.id,
                "topic": it.topic.name,
                "key": it.key,
                "envelope": it.envelope.model_dump_json(),
                "seq": (base, next(_counter)),
                "staged_at": time.time(),
            }
            for it in items
        ]
        await self.collection.insert_many(docs, ordered=True)
        return [str(d["_id"]) for d in docs]

    async def publish(self, items: list[Outgoing]) -> None:
        """Stage, then publish at once. If publishing fails the relay finishes the job."""
        ids = await self.stage(items)
        try:
            for it, doc_id in zip(items, ids, strict=True):
                await self.bus.publish(it.topic, it.envelope, key=it.key)
                await self.collection.delete_one({"_id": doc_id})
        except Exception as exc:
            log.warning("publish failed; the outbox relay will retry", error=repr(exc))

    async def relay(self) -> None:
        cutoff = time.time() - self.relay_after
        async for doc in self.collection.find({"staged_at": {"$lt": cutoff}}).sort("seq", 1):
            env = Envelope.model_validate_json(doc["envelope"])
            await self.bus.publish(_TOPICS[doc["topic"]], env, key=doc["key"])
            await self.collection.delete_one({"_id": doc["_id"]})
