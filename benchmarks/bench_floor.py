"""The floor every end-to-end figure is compared with: produce→consume round trips on the same
broker, and an indexed single-document write on the same database."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from benchmarks import Context, Result, percentile


async def _round_trips(ctx: Context, n: int) -> list[float]:
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=ctx.kafka_url, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=ctx.kafka_url,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    await consumer.getone()
    samples: list[float] = []
    try:
        for i in range(n):
            started = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode())
            await consumer.getone()
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return samples


async def run(ctx: Context) -> list[Result]:
    n = 50 if ctx.quick else 300
    one = await _round_trips(ctx, n)
    two = [a + b for a, b in zip(one[::2], one[1::2], strict=False)]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(ctx.mongo_url)
    coll = client["bench_floor"]["docs"]
    writes: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await coll.update_one({"_id": i % 50}, {"$inc": {"n": 1}}, upsert=True)
        writes.append((time.perf_counter() - started) * 1000)
    await client.close()
    await asyncio.sleep(0)
    return [
        Result("floor", "broker round trip p50", percentile(one, 50), "ms"),
        Result("floor", "broker round trip p99", percentile(one, 99), "ms"),
        Result("floor", "two broker hops p50", percentile(two, 50), "ms"),
        Result("floor", "two broker hops p99", percentile(two, 99), "ms"),
        Result("floor", "indexed upsert p50", percentile(writes, 50), "ms"),
        Result("floor", "indexed upsert p99", percentile(writes, 99), "ms"),
    ]
