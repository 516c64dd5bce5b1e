"""Realtime tasks on the real services: sustained Kafka ingestion and submission → call placed.

1. Ingestion: N tasks published on ``tasks.submit.v1`` by a plain aiokafka producer (bare JSON,
   the workspace's API key in each), timed from the first send until campaign-api has persisted
   every one (``rt_tasks``). Their ``startAfter`` is a day away, so the figure is ingestion, not
   dialling.
2. Latency: M tasks due now, one at a time with free slots, each timed from its send to the
   moment the simulated network received the call (the simulator's ``placed_at``, on the wall
   clock): Kafka → campaign-api → planner → allocator → dialer.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from benchmarks import Context, Result, percentile
from campaign_api.realtime import task_id_for
from outbound_core.clock import utc
from outbound_core.devstack import DevStack
from outbound_core.topics import TASKS_SUBMIT


def _task(i: int, *, ws: str, key: str, campaign: str, start_after: int, ref: str) -> bytes:
    return json.dumps(
        {
            "workspace_id": ws,
            "api_key": key,
            "phone": f"+1212{(7360000 + i) % 10_000_000:07d}",
            "campaign": campaign,
            "start": 0,
            "end": 0,
            "startAfter": start_after,
            "task_ref": ref,
            "context": {"name": f"lead {i}"},
            "sim_outcomes": "interested",
        }
    ).encode()


async def _measure(ctx: Context, stack: DevStack, n: int, m: int) -> list[Result]:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=120) as http:
        agent = await http.post("/v1/agents", json={"name": "bench", "language": "en-US"})
        created = await http.post(
            "/v1/campaigns/realtime", json={"name": "bench", "agent": agent.json()["id"]}
        )
        created.raise_for_status()
        campaign = created.json()["id"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.mongo_url, tz_aware=True)
    producer = AIOKafkaProducer(bootstrap_servers=ctx.kafka_url, linger_ms=5, acks=1)
    await producer.start()
    try:
        api_db = client["outbound_campaign_api"]
        doc = await api_db["campaigns"].find_one({"_id": campaign})
        assert doc is not None
        ws = doc["workspace_id"]
        rt = api_db["rt_tasks"]
        base = await rt.estimated_document_count()

        # 1. sustained ingestion
        later = int((time.time() + 86_400) * 1000)
        started = time.perf_counter()
        for i in range(n):
            body = _task(
                i, ws=ws, key=stack.api_key, campaign=campaign, start_after=later, ref=f"in-{i}"
            )
            await producer.send(TASKS_SUBMIT.name, key=f"in-{i}".encode(), value=body)
        await producer.flush()
        sent = time.perf_counter() - started
        deadline = time.perf_counter() + 600
        # metadata count (cheap): the collection holds only this run's tasks
        while await rt.estimated_document_count() < base + n:
            if time.perf_counter() > deadline:
                raise TimeoutError("ingestion did not finish in 600 s")
            await asyncio.sleep(0.2)
        ingest_s = time.perf_counter() - started

        # 2. submission → call placed, with free slots (one task at a time)
        sims = client["outbound_simulator"]["sim_calls"]
        lat: list[float] = []
        for j in range(m):
            ref = f"lat-{j}"
            task_id = task_id_for(workspace_id=ws, task_ref=ref)
            t0 = time.time()
            body = _task(
                n + j,
                ws=ws,
                key=stack.api_key,
                campaign=campaign,
                start_after=int(t0 * 1000),
                ref=ref,
            )
            await producer.send_and_wait(TASKS_SUBMIT.name, key=ref.encode(), value=body)
            for _ in range(5000):
                call = await sims.find_one({"task_id": task_id}, {"placed_at": 1})
                if call is not None:
                    lat.append((utc(call["placed_at"]).timestamp() - t0) * 1000)
                    break
                await asyncio.sleep(0.005)
    finally:
        await producer.stop()
        await client.close()
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    return [
        Result(
            "realtime",
            f"Kafka ingestion, accepted + persisted ({n:,} tasks)",
            n / ingest_s,
            "tasks/s",
            "> 2,000",
            n / ingest_s > 2000,
        ),
        Result("realtime", "producer send time (same run)", n / sent, "tasks/s"),
        Result(
            "realtime",
            f"submission → call placed p50 ({len(lat)} tasks, free slots)",
            p50,
            "ms",
        ),
        Result(
            "realtime",
            f"submission → call placed p99 ({len(lat)} tasks, free slots)",
            p99,
            "ms",
            "< 100 ms",
            p99 < 100,
        ),
    ]


async def run(ctx: Context) -> list[Result]:
    n, m = (1_000, 20) if ctx.quick else (5_000, 100)
    stack = DevStack(
        data_dir=Path(ctx.data_dir) / "realtime",
        api_key=f"ob_bench_{secrets.token_urlsafe(12)}",
        kafka_url=ctx.kafka_url,
        mongo_url=ctx.mongo_url,
        free_ports=True,
        extra_env={
            "SLOT_ALLOCATOR_DEFAULT_ORG_SLOTS": "500",
            "DIALER_SIM_RING_SECONDS_MIN": "0",
            "DIALER_SIM_RING_SECONDS_MAX": "0",
            "OUTBOUND_LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        },
    )
    await asyncio.to_thread(stack.start)
    try:
        return await _measure(ctx, stack, n, m)
    finally:
        await asyncio.to_thread(stack.stop)
