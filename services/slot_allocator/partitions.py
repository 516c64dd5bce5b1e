"""Which ``allocator.v1`` partition an org's events land on, and the rebalance listener that
hands orgs over between allocator instances as Kafka moves partitions.

Everything the allocator consumes is keyed by ``org_id``; the producers use Kafka's default
partitioner (murmur2 of the key), so the partition of an org is known without reading a
message, and an instance can take over every org of a partition it was just given (also an org
with no new event: its queue and leases still need an owner)."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from slot_allocator.service import SlotService

log = structlog.get_logger(__name__)


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition of ``key`` (the Java client's and aiokafka's murmur2)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class OrgRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, svc: SlotService, topic: str, default_partitions: int) -> None:
        self.svc = svc
        self.topic = topic
        self.partitions = default_partitions
        self.consumer: Any = None  # outbound_core.kafka.Consumer, set once registered

    def partition_of(self, org_id: str) -> int:
        return partition_for(org_id, self.partitions)

    def _count(self) -> None:
        aio = getattr(getattr(self.consumer, "subscriber", None), "consumer", None)
        known = aio.partitions_for_topic(self.topic) if aio is not None else None
        if known:
            self.partitions = len(known)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.svc.on_revoked({tp.partition for tp in revoked if tp.topic == self.topic})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._count()
        mine = {tp.partition for tp in assigned if tp.topic == self.topic}
        try:
            await self.svc.on_assigned(mine)
        except Exception:
            # the orgs not taken over now are taken over by their next event or the next
            # rebalance; a failure here must not break the consumer
            log.exception("taking over assigned orgs failed", partitions=sorted(mine))
