"""Scale (issue #10): 100 concurrent campaigns over a large queue on the real services, with
zero-length calls, on a database and broker of its own. Sizes follow ``--scale`` (1.0 = 100
campaigns, 1,000,000 tasks, 500 slots).

What a large queue costs is measured, not how long it takes to drain it: the campaigns are
created (every contact a task), started, and then dialled for a fixed window in which the
attempts per second, the slot utilisation and each service's memory are read. Draining a million
zero-length calls would only repeat the end-to-end benchmark for hours."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks import Context, Result
from benchmarks.bench_e2e import _contacts, memory
from outbound_core.clock import utc
from outbound_core.devstack import DevStack

CAMPAIGNS = 100


async def _create(http: httpx.AsyncClient, agent: str, contacts: list[dict[str, str]]) -> list[str]:
    per = -(-len(contacts) // CAMPAIGNS)
    ids: list[str] = []
    for k in range(CAMPAIGNS):
        body = {
            "name": f"scale {k}",
            "script_id": agent,
            "language": "en-US",
            "contacts": contacts[k * per : (k + 1) * per],
            "calling_hours": {"start": "00:00", "end": "00:00"},
        }
        created = await http.post("/v1/campaigns", json=body)
        created.raise_for_status()
        ids.append(created.json()["id"])
    return ids


async def _window(
    client: AsyncMongoClient[dict[str, Any]], since: float, until: float
) -> tuple[int, float]:
    """Calls placed in [since, until) (real seconds; the clock runs at ×1) and the slot-seconds
    held in it."""
    sims = client["outbound_simulator"]["sim_calls"].find({}, {"placed_at": 1})
    placed = [t async for d in sims if since <= (t := utc(d["placed_at"]).timestamp()) < until]
    held = 0.0
    async for d in client["outbound_slot_allocator"]["leases"].find(
        {}, {"granted_at": 1, "ended_at": 1}
    ):
        g = utc(d["granted_at"]).timestamp()
        e = utc(d["ended_at"]).timestamp() if d.get("ended_at") else until
        held += max(0.0, min(e, until) - max(g, since))
    return len(placed), held


async def run(ctx: Context) -> list[Result]:
    tasks = max(CAMPAIGNS * 10, round(1_000_000 * ctx.scale * (0.01 if ctx.quick else 1)))
    slots = max(10, round(500 * min(1.0, ctx.scale * 10)))
    window_s = 20.0 if ctx.quick else 60.0
    stack = DevStack(
        data_dir=Path(ctx.data_dir) / "scale",
        api_key=f"ob_bench_{secrets.token_urlsafe(12)}",
        free_ports=True,  # its own broker and database: nothing of the other benchmarks
        extra_env={
            "SLOT_ALLOCATOR_DEFAULT_ORG_SLOTS": str(slots),
            "DIALER_SIM_RING_SECONDS_MIN": "0",
            "DIALER_SIM_RING_SECONDS_MAX": "0",
            "OUTBOUND_LOG_LEVEL": "WARNING",
        },
    )
    await asyncio.to_thread(stack.start)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=600) as http:
            agent = await http.post("/v1/agents", json={"name": "bench", "language": "en-US"})
            t0 = time.time()
            ids = await _create(http, agent.json()["id"], _contacts(tasks))
            created_s = time.time() - t0
            planner = client["outbound_task_planner"]["tasks"]
            for _ in range(3600):
                if await planner.estimated_document_count() >= tasks:
                    break
                await asyncio.sleep(1.0)
            stored_s = time.time() - t0
            first_start = time.time()
            for cid in ids:
                (
                    await http.patch(f"/v1/campaigns/{cid}", json={"action": "start"})
                ).raise_for_status()
            started = time.time()
            await asyncio.sleep(window_s / 3)  # the first grants: every slot taken
            since = time.time()
            await asyncio.sleep(window_s)
            until = time.time()
            placed, held = await _window(client, since, until)
            results = memory(stack, "scale")
            for cid in ids:
                await http.patch(f"/v1/campaigns/{cid}", json={"action": "stop"})
        label = f"{CAMPAIGNS} campaigns, {tasks:,} tasks, {slots} slots"
        return [
            Result("scale", f"create the campaigns over the API ({label})", created_s, "s"),
            Result(
                "scale", "every task stored by the planner (from the first create)", stored_s, "s"
            ),
            Result("scale", "tasks stored per second", tasks / stored_s, "1/s"),
            Result(
                "scale", f"start the {CAMPAIGNS} campaigns over the API", started - first_start, "s"
            ),
            Result(
                "scale",
                "first call placed after the first start",
                await _first_call(client, first_start),
                "s",
            ),
            Result(
                "scale", f"attempts/s over {window_s:.0f} s of dialling", placed / window_s, "1/s"
            ),
            Result(
                "scale",
                "slot utilisation over the window",
                held / (slots * window_s) * 100,
                "%",
                "≥ 99%",
                held / (slots * window_s) >= 0.99,
            ),
            *results,
        ]
    finally:
        await client.close()
        await asyncio.to_thread(stack.stop)


async def _first_call(client: AsyncMongoClient[dict[str, Any]], started: float) -> float:
    first = await client["outbound_simulator"]["sim_calls"].find_one(
        {}, {"placed_at": 1}, sort=[("placed_at", 1)]
    )
    return utc(first["placed_at"]).timestamp() - started if first else float("nan")
