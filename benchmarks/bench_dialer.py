"""The dialer with the simulator at zero call duration, driven in-process: calls started per
second, and the time from a slot becoming free (the lease released) to the next call being
placed, against the floor of two broker hops measured in the same run.

The harness plays the slot-allocator with no processing time of its own: it keeps ``SLOTS``
leases out, and as soon as it reads a LeaseReleased it publishes the next TaskDispatched. So
"slot free → next call placed" is one hop to the dialer, the dialer's work (guard, insert the
call, place it, publish), and one hop back — the floor is two broker round trips."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from benchmarks import Context, Result, percentile
from benchmarks.bench_floor import _round_trips
from dialer.app import build_app
from dialer.settings import DialerSettings
from outbound_core.events import (
    AgentSnapshot,
    CampaignCreated,
    DialRequest,
    Payload,
    TaskDispatched,
    make_envelope,
)
from outbound_core.topics import ALLOCATOR, CALLS, CAMPAIGNS, DISPATCH

SLOTS = 20
ORG, WS = "org_bench", "ws_bench"


def _bytes(payload: Payload) -> bytes:
    env = make_envelope(
        payload, producer="bench", org_id=ORG, workspace_id=WS, occurred_at=datetime.now(UTC)
    )
    return env.model_dump_json().encode()


async def run(ctx: Context) -> list[Result]:
    seconds = 10.0 if ctx.quick else 30.0
    run_id = uuid.uuid4().hex[:8]
    settings = DialerSettings(
        kafka_bootstrap_servers=ctx.kafka_url,
        mongodb_url=ctx.mongo_url,
        database=f"bench_dialer_{run_id}",
        sim_database=f"bench_sim_{run_id}",
        sim_ring_seconds_min=0.0,
        sim_ring_seconds_max=0.0,
        sim_tick_seconds=0.005,
        guard_calling_window=False,
        log_level="WARNING",
    )
    app = build_app(settings)
    rt = app.state.runtime
    campaign_id = f"cmp_bench_{run_id}"
    producer = AIOKafkaProducer(bootstrap_servers=ctx.kafka_url, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(
        CALLS.name,
        ALLOCATOR.name,
        bootstrap_servers=ctx.kafka_url,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
    )
    async with rt.lifespan(app):
        await producer.start()
        await consumer.start()
        for tp in consumer.assignment():
            await consumer.position(tp)
        try:
            created = CampaignCreated(
                campaign_id=campaign_id,
                name="bench",
                status="running",
                agent=AgentSnapshot(agent_id="agt_bench", name="Bench", language="en"),
                language="en",
            )
            await producer.send_and_wait(CAMPAIGNS.name, _bytes(created), key=campaign_id.encode())
            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(ctx.mongo_url)
            projection = client[settings.database]["campaigns"]
            for _ in range(1200):  # up to a minute for the dialer to project the campaign
                if await projection.find_one({"_id": campaign_id}) is not None:
                    break
                await asyncio.sleep(0.05)
            await client.close()
            latencies, started, elapsed = await _drive(producer, consumer, campaign_id, seconds)
        finally:
            await consumer.stop()
            await producer.stop()
    floor_one = await _round_trips(ctx, 50 if ctx.quick else 200)
    floor_two = [a + b for a, b in zip(floor_one[::2], floor_one[1::2], strict=False)]
    f50, f99 = percentile(floor_two, 50), percentile(floor_two, 99)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    ctx.notes.append(
        f"bench_dialer: {SLOTS} slots kept busy for {elapsed:.0f} s; {started} calls placed "
        f"with the simulator at zero call duration; the harness stands in for the allocator."
    )
    return [
        Result("dialer", "calls started per second", started / elapsed, "calls/s"),
        Result("dialer", "slot free → next call placed p50", p50, "ms"),
        Result("dialer", "slot free → next call placed p99", p99, "ms"),
        Result("dialer", "two broker hops p50 (same run)", f50, "ms"),
        Result("dialer", "two broker hops p99 (same run)", f99, "ms"),
        Result(
            "dialer",
            "p50 over the two-hop floor",
            p50 / f50 if f50 else float("nan"),
            "x",
            target="≤ 3x",
            met=bool(f50) and p50 <= 3 * f50,
        ),
    ]


async def _drive(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, campaign_id: str, seconds: float
) -> tuple[list[float], int, float]:
    freed_at: dict[str, float] = {}
    latencies: list[float] = []
    started = 0
    n = 0

    async def dispatch(free_since: float | None) -> None:
        nonlocal n
        n += 1
        task_id = f"tsk_bench_{campaign_id}_{n}"
        if free_since is not None:
            freed_at[task_id] = free_since
        d = TaskDispatched(
            lease_id=f"lease_{task_id}",
            task_id=task_id,
            campaign_id=campaign_id,
            attempt=1,
            lease_expires_at=datetime.now(UTC) + timedelta(days=1),
            dial=DialRequest(phone="+12125550123", sim_outcomes=["no_answer"]),
        )
        await producer.send_and_wait(DISPATCH.name, _bytes(d), key=task_id.encode())

    # Warm-up: one call through, so that consumer-group joins are not measured.
    await dispatch(None)
    warm_until = time.perf_counter() + 120
    warm = False
    while not warm and time.perf_counter() < warm_until:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            warm = warm or any(b'"lease.released"' in r.value for r in records)
    for _ in range(SLOTS - 1):
        await dispatch(None)
    begin = time.perf_counter()
    deadline = begin + seconds
    while time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for rec in records:
                now = time.perf_counter()
                with contextlib.suppress(ValueError, KeyError):
                    env = json.loads(rec.value)
                    data = env["data"]
                    if env["type"] == "call.started" and data["campaign_id"] == campaign_id:
                        started += 1
                        t0 = freed_at.pop(data["task_id"], None)
                        if t0 is not None:
                            latencies.append((now - t0) * 1000)
                    elif env["type"] == "lease.released" and data["task_id"].startswith(
                        f"tsk_bench_{campaign_id}_"
                    ):
                        if now < deadline:
                            await dispatch(now)
    return latencies, started, time.perf_counter() - begin
