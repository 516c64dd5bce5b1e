"""End-to-end campaign benchmark on the real services: N contacts, S slots, zero-length calls.

Reports attempts per second sustained, total time, slot utilisation while eligible work exists,
and "slot freed → next call placed" (from the allocator's lease records and the simulator's
record of every call that reached the phone network), next to the floor measured in the same
run: two produce→consume round trips on the same broker."""

from __future__ import annotations

import asyncio
import bisect
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks import Context, Result, cpu_seconds, percentile
from benchmarks.bench_floor import _round_trips
from outbound_core.clock import utc
from outbound_core.devstack import DevStack


def _contacts(n: int) -> list[dict[str, str]]:
    # Valid New York numbers, all distinct.
    return [
        {"phone": f"+1212{7360000 + i:07d}", "name": f"c{i}", "sim_outcomes": "no_answer"}
        for i in range(n)
    ]


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


def memory(stack: DevStack, bench: str) -> list[Result]:
    """Peak RSS of every service of the stack, read before it stops."""
    return [
        Result(bench, f"peak memory: {name}", peak_rss_mib(svc.proc.pid), "MiB")
        for name, svc in stack.services.items()
        if svc.proc is not None
    ]


async def run_campaigns(
    stack: DevStack, *, contacts: int, campaigns: int = 1, limit_s: float = 1800
) -> float:
    """Create ``campaigns`` campaigns sharing ``contacts`` contacts, start them all, wait until
    every one completed; returns the wall seconds from the first start."""
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=300) as http:
        agent = await http.post("/v1/agents", json={"name": "bench", "language": "en-US"})
        everyone = _contacts(contacts)
        per = -(-contacts // campaigns)
        ids = []
        for k in range(campaigns):
            body = {
                "name": f"bench {k}",
                "script_id": agent.json()["id"],
                "language": "en-US",
                "contacts": everyone[k * per : (k + 1) * per],
                "calling_hours": {"start": "00:00", "end": "00:00"},
            }
            created = await http.post("/v1/campaigns", json=body)
            created.raise_for_status()
            ids.append(created.json()["id"])
        started = time.time()
        for cid in ids:
            (await http.patch(f"/v1/campaigns/{cid}", json={"action": "start"})).raise_for_status()
        pending = set(ids)
        while pending:
            for cid in list(pending):
                c = (await http.get(f"/v1/campaigns/{cid}")).json()
                if c["status"] == "completed":
                    pending.discard(cid)
            if time.time() - started > limit_s:
                raise TimeoutError(f"{len(pending)} campaigns not completed after {limit_s} s")
            await asyncio.sleep(1.0)
    return time.time() - started


def _pids(ctx: Context, stack: DevStack) -> dict[str, int]:
    pids = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc is not None}
    return {**pids, **ctx.infra_pids}


async def top(client: AsyncMongoClient[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """The database server's (count, microseconds) of operations per namespace so far."""
    totals = (await client.admin.command("top"))["totals"]
    return {
        ns: (int(v["total"]["count"]), int(v["total"]["time"]))
        for ns, v in totals.items()
        if ns != "note" and isinstance(v, dict)
    }


def database_work(
    bench: str, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], per: int
) -> list[Result]:
    """Operations and server time per attempt, by service (database) and by busiest
    collection: where the embedded document server's CPU goes."""
    by_db: dict[str, list[int]] = {}
    by_ns: dict[str, list[int]] = {}
    for ns, (count, us) in after.items():
        c0, t0 = before.get(ns, (0, 0))
        if count - c0 <= 0:
            continue
        db = ns.split(".", 1)[0].removeprefix("outbound_")
        for table, key in ((by_db, db), (by_ns, ns.removeprefix("outbound_"))):
            acc = table.setdefault(key, [0, 0])
            acc[0] += count - c0
            acc[1] += us - t0
    per = max(per, 1)
    note = "counted by the server (`top`), over the whole run"
    results = [
        Result(
            bench,
            "database operations per attempt (all services)",
            sum(c for c, _ in by_db.values()) / per,
            "ops",
            note=note,
        ),
        *(
            Result(bench, f"database operations per attempt: {db}", c / per, "ops", note=note)
            for db, (c, _) in sorted(by_db.items(), key=lambda kv: -kv[1][0])
        ),
        *(
            Result(bench, f"database time per attempt: {ns}", us / 1000 / per, "ms", note=note)
            for ns, (_, us) in sorted(by_ns.items(), key=lambda kv: -kv[1][1])[:8]
        ),
    ]
    return results


async def _measure(ctx: Context, stack: DevStack, n: int, slots: int) -> list[Result]:
    pids = _pids(ctx, stack)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.mongo_url or ctx.mongo_url, tz_aware=True
    )
    top0 = await top(client)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    total = await run_campaigns(stack, contacts=n)
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    top1 = await top(client)
    try:
        sims = client["outbound_simulator"]["sim_calls"].find({}, {"placed_at": 1})
        placed = sorted([utc(d["placed_at"]).timestamp() async for d in sims])
        leases = [
            d
            async for d in client["outbound_slot_allocator"]["leases"].find(
                {}, {"granted_at": 1, "ended_at": 1}
            )
        ]
    finally:
        await client.close()
    grants = sorted(utc(d["granted_at"]).timestamp() for d in leases)
    ends = sorted(utc(d["ended_at"]).timestamp() for d in leases if d.get("ended_at"))
    span = placed[-1] - placed[0] if len(placed) > 1 else float("nan")
    # Slot utilisation while eligible work existed: the work is queued from the first grant
    # until the last grant; the held slot-seconds over that span, over the slots available.
    busy = sum(
        min(e, grants[-1]) - g
        for g, e in (
            (utc(d["granted_at"]).timestamp(), utc(d["ended_at"]).timestamp())
            for d in leases
            if d.get("ended_at")
        )
        if g < grants[-1]
    )
    window = grants[-1] - grants[0]
    utilisation = busy / (slots * window) if window > 0 else float("nan")
    # For each freed slot while work remained: time until the next call reached the network.
    gaps = []
    for e in ends:
        if e >= grants[-1]:
            break
        i = bisect.bisect_right(placed, e)
        if i < len(placed):
            gaps.append((placed[i] - e) * 1000)
    floor = await _round_trips(ctx, 60)
    two = [a + b for a, b in zip(floor[::2], floor[1::2], strict=False)]
    label = f"{n:,} contacts, {slots} slots"
    return [
        Result("e2e campaign", f"attempts/s sustained ({label})", len(placed) / span, "1/s"),
        Result("e2e campaign", f"total time ({label})", total, "s"),
        Result(
            "e2e campaign",
            f"calls placed ({label})",
            len(placed),
            "calls",
            f"= {n}",
            len(placed) == n,
        ),
        Result(
            "e2e campaign",
            "slot utilisation while work was queued",
            utilisation * 100,
            "%",
            "≥ 99%",
            utilisation >= 0.99,
        ),
        Result(
            "e2e campaign",
            "slot freed → next call placed p50",
            percentile(gaps, 50),
            "ms",
            "≤ 5 ms",
            percentile(gaps, 50) <= 5,
        ),
        Result(
            "e2e campaign",
            "slot freed → next call placed p99",
            percentile(gaps, 99),
            "ms",
            "≤ 25 ms",
            percentile(gaps, 99) <= 25,
        ),
        Result("e2e campaign", "floor: two broker hops p50", percentile(two, 50), "ms"),
        Result("e2e campaign", "floor: two broker hops p99", percentile(two, 99), "ms"),
        *(
            Result(
                "e2e campaign",
                f"CPU per attempt: {name}",
                seconds * 1000 / max(len(placed), 1),
                "ms",
                note="CPU time over the campaign (load-independent); the services wait on the "
                "broker and the database for the rest",
            )
            for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])
        ),
        *database_work("e2e campaign", top0, top1, len(placed)),
    ]


async def run(ctx: Context) -> list[Result]:
    n, slots = (1_000, 100) if ctx.quick else (10_000, 500)
    n, slots = max(100, round(n * ctx.scale)), max(10, round(slots * ctx.scale))
    stack = DevStack(
        data_dir=Path(ctx.data_dir) / "e2e",
        api_key=f"ob_bench_{secrets.token_urlsafe(12)}",
        kafka_url=ctx.kafka_url,
        mongo_url=ctx.mongo_url,
        free_ports=True,
        extra_env={
            "SLOT_ALLOCATOR_DEFAULT_ORG_SLOTS": str(slots),
            "DIALER_SIM_RING_SECONDS_MIN": "0",
            "DIALER_SIM_RING_SECONDS_MAX": "0",
            "OUTBOUND_LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        },
    )
    await asyncio.to_thread(stack.start)
    try:
        results = await _measure(ctx, stack, n, slots)
        return results + memory(stack, "e2e campaign")
    finally:
        await asyncio.to_thread(stack.stop)
