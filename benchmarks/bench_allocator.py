"""Dispatch decisions of the pure allocator (in-process, no broker or database): decisions per
second and per-decision latency with 10k / 100k / 1M queued tasks across 1,000 campaigns in 20
workspaces (half hard, half soft), and memory per queued task.

Each decision is a ``grant`` followed, as in a running system, by the release of the oldest
lease (a call ending) and a new TaskQueued, so the queue stays at its size and every decision
competes under full slots, caps and allocations."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from collections import deque
from datetime import UTC, datetime, timedelta

from benchmarks import Context, Result, percentile
from slot_allocator.domain import Allocator, QueuedTask, WorkspaceSlots

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CAMPAIGNS = 1_000
WORKSPACES = 20
ORG = "org_bench"
PRIORITIES = ("low", "normal", "high")


def _task(rng: random.Random, i: int) -> QueuedTask:
    c = rng.randrange(CAMPAIGNS)
    return QueuedTask(
        task_id=f"t{i}",
        attempt=1,
        org_id=ORG,
        workspace_id=f"ws{c % WORKSPACES}",
        campaign_id=f"c{c}",
        campaign_priority=PRIORITIES[c % 3],
        attempt_priority=rng.randrange(1, 4),
        callback=rng.random() < 0.01,
        eligible_at=T0 + timedelta(seconds=rng.randrange(86_400)),
        max_slots=5 if c % 4 == 0 else None,
        tiebreak=rng.random(),
    )


def _build(n: int, seed: int = 7) -> tuple[Allocator, random.Random]:
    rng = random.Random(seed)
    a = Allocator(default_org_slots=0)
    a.configure(
        ORG,
        total_slots=2_000,
        workspaces={
            f"ws{w}": WorkspaceSlots(80, "hard" if w % 2 else "soft") for w in range(WORKSPACES)
        },
    )
    for i in range(n):
        a.enqueue(_task(rng, i))
    return a, rng


def _measure(n: int, decisions: int) -> tuple[float, list[float]]:
    a, rng = _build(n)
    leases: deque[str] = deque()
    lease_ids = iter(range(10**9))
    while a.grant(ORG, f"warm{next(lease_ids)}") is not None:  # fill every slot first
        pass
    leases.extend(a.org(ORG).leases)
    samples: list[float] = []
    next_task = n
    gc.collect()
    for _ in range(decisions):
        a.release(ORG, leases.popleft())
        a.enqueue(_task(rng, next_task))
        next_task += 1
        t = time.thread_time_ns()
        got = a.grant(ORG, f"l{next(lease_ids)}")
        samples.append((time.thread_time_ns() - t) / 1e6)
        if got is not None:
            leases.append(got[1].lease_id)
    return decisions / (sum(samples) / 1000), samples


def _memory_per_task(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    a, _ = _build(n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert a.org(ORG).queued == n
    return (after - before) / n


async def run(ctx: Context) -> list[Result]:
    sizes = [10_000, 100_000] if ctx.quick else [10_000, 100_000, 1_000_000]
    decisions = 5_000 if ctx.quick else 50_000
    results: list[Result] = []
    for n in sizes:
        rate, samples = _measure(n, decisions)
        big = n == 1_000_000
        p99 = percentile(samples, 99)
        results.append(
            Result(
                "allocator",
                f"decisions/s at {n:,} queued",
                rate,
                "1/s",
                "> 50,000" if big else "",
                (rate > 50_000) if big else None,
            )
        )
        results.append(
            Result(
                "allocator",
                f"decision p99 at {n:,} queued",
                p99,
                "ms",
                "< 1" if big else "",
                (p99 < 1.0) if big else None,
            )
        )
    mem_n = 20_000 if ctx.quick else 100_000
    results.append(
        Result(
            "allocator",
            f"memory per queued task ({mem_n:,} queued)",
            _memory_per_task(mem_n),
            "bytes",
        )
    )
    ctx.notes.append(
        "allocator: pure domain in-process; each decision is one grant measured alone, in thread "
        "CPU time, because wall time on a shared machine is mostly preemption (a release "
        "and a new TaskQueued happen between decisions, untimed, so the queue keeps its size); "
        f"{CAMPAIGNS:,} campaigns in {WORKSPACES} workspaces (half hard, half soft), 2,000 slots."
    )
    return results
