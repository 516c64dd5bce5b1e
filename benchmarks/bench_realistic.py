"""Realistic mix (issue #10): call durations drawn uniformly from 30–150 s (median and mean
90 s), 2,000 slots, a clock fast enough to run in minutes; slot utilisation and the campaign's
time against the ideal (contacts × mean call time / slots). Sizes follow ``--scale``."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from benchmarks import Context, Result
from benchmarks.bench_e2e import memory, run_campaigns
from outbound_core.clock import utc
from outbound_core.devstack import DevStack

MEAN_CALL_S = 90.0
SPEED = 60.0  # virtual seconds per real second


async def run(ctx: Context) -> list[Result]:
    slots = max(20, round(2_000 * ctx.scale * (0.1 if ctx.quick else 1)))
    contacts = slots * 10  # ten calls per slot: long enough to reach a steady state
    stack = DevStack(
        data_dir=Path(ctx.data_dir) / "realistic",
        api_key=f"ob_bench_{secrets.token_urlsafe(12)}",
        free_ports=True,
        clock_speed=SPEED,
        extra_env={
            "SLOT_ALLOCATOR_DEFAULT_ORG_SLOTS": str(slots),
            "DIALER_SIM_RING_SECONDS_MIN": "30",
            "DIALER_SIM_RING_SECONDS_MAX": "150",
            "OUTBOUND_LOG_LEVEL": "WARNING",
        },
    )
    await asyncio.to_thread(stack.start)
    try:
        total = await run_campaigns(stack, contacts=contacts, limit_s=3600)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
        try:
            leases = [
                d
                async for d in client["outbound_slot_allocator"]["leases"].find(
                    {}, {"granted_at": 1, "ended_at": 1}
                )
            ]
        finally:
            await client.close()
        spans = [
            (utc(d["granted_at"]).timestamp(), utc(d["ended_at"]).timestamp())
            for d in leases
            if d.get("ended_at")
        ]
        last_grant = max(g for g, _ in spans)
        first_grant = min(g for g, _ in spans)
        busy = sum(min(e, last_grant) - g for g, e in spans if g < last_grant)
        window = last_grant - first_grant
        utilisation = busy / (slots * window) if window > 0 else float("nan")
        ideal = contacts * MEAN_CALL_S / slots / SPEED
        label = f"{contacts:,} contacts, {slots} slots, clock ×{SPEED:.0f}"
        return [
            Result(
                "realistic mix",
                f"slot utilisation while work was queued ({label})",
                utilisation * 100,
                "%",
                "≥ 99%",
                utilisation >= 0.99,
            ),
            Result("realistic mix", "campaign time", total, "s"),
            Result("realistic mix", "ideal time (contacts × 90 s / slots, real)", ideal, "s"),
            Result("realistic mix", "campaign time over ideal", total / ideal, "x"),
            *memory(stack, "realistic mix"),
        ]
    finally:
        await asyncio.to_thread(stack.stop)
