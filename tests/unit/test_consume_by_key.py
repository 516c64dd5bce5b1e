"""Per-key concurrent application of a fetch's events (outbound_core.kafka.by_key_concurrently):
one key's events in order, different keys overlapping, a failure raised only after every other
key was applied (so the redelivered batch finds them done)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from outbound_core.events import Envelope, LeaseExpired, make_envelope
from outbound_core.kafka import by_key_concurrently, handler_table

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _event(task: str, attempt: int) -> tuple[Envelope, LeaseExpired]:
    ev = LeaseExpired(lease_id=f"l{task}{attempt}", task_id=task, campaign_id="c", attempt=attempt)
    env = make_envelope(ev, producer="test", org_id="o", workspace_id="w", occurred_at=T0)
    return env, ev


def _key(p: LeaseExpired) -> str:
    return p.task_id


async def test_one_keys_events_in_order_and_keys_overlap() -> None:
    applied: list[tuple[str, int]] = []
    both_started = asyncio.Event()
    started: set[str] = set()

    async def on_expired(env: Envelope, ev: LeaseExpired) -> None:
        started.add(ev.task_id)
        if len(started) == 2:
            both_started.set()
        # the first event of each key waits until the other key has started: only possible
        # if the keys run concurrently (sequential handling would time out here)
        await asyncio.wait_for(both_started.wait(), timeout=5)
        applied.append((ev.task_id, ev.attempt))

    handle = by_key_concurrently(handler_table((LeaseExpired, on_expired)), key=_key, concurrency=8)
    await handle([_event("a", 1), _event("b", 1), _event("a", 2), _event("a", 3), _event("b", 2)])
    assert [a for t, a in applied if t == "a"] == [1, 2, 3]
    assert [a for t, a in applied if t == "b"] == [1, 2]


async def test_a_failing_key_raises_after_the_others_were_applied() -> None:
    applied: list[str] = []

    async def on_expired(env: Envelope, ev: LeaseExpired) -> None:
        if ev.task_id == "bad":
            raise RuntimeError("boom")
        await asyncio.sleep(0)
        applied.append(ev.task_id)

    handle = by_key_concurrently(handler_table((LeaseExpired, on_expired)), key=_key, concurrency=2)
    with pytest.raises(RuntimeError, match="boom"):
        await handle([_event("bad", 1), *(_event(f"t{i}", 1) for i in range(5))])
    assert sorted(applied) == [f"t{i}" for i in range(5)]


async def test_concurrency_is_bounded() -> None:
    running = 0
    peak = 0

    async def on_expired(env: Envelope, ev: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    handle = by_key_concurrently(handler_table((LeaseExpired, on_expired)), key=_key, concurrency=3)
    await handle([_event(f"t{i}", 1) for i in range(20)])
    assert peak == 3
