"""Scale: many concurrent campaigns and a large queue on the real services (issue #10), with
zero-length calls; memory of each service. Sizes follow ``--scale`` (1.0 = 100 campaigns,
1,000,000 queued tasks, 500 slots), on a database of its own."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from benchmarks import Context, Result
from benchmarks.bench_e2e import memory, run_campaigns
from outbound_core.devstack import DevStack


async def run(ctx: Context) -> list[Result]:
    campaigns = 100
    tasks = max(campaigns * 10, round(1_000_000 * ctx.scale * (0.01 if ctx.quick else 1)))
    slots = max(10, round(500 * min(1.0, ctx.scale * 10)))
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
    try:
        total = await run_campaigns(stack, contacts=tasks, campaigns=campaigns, limit_s=3600)
        label = f"{campaigns} campaigns, {tasks:,} tasks, {slots} slots"
        return [
            Result("scale", f"total time ({label})", total, "s"),
            Result("scale", f"attempts/s ({label})", tasks / total, "1/s"),
            *memory(stack, "scale"),
        ]
    finally:
        await asyncio.to_thread(stack.stop)
