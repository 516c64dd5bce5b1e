from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webhook.batching import GroupWriter


async def test_writes_submitted_during_a_flush_go_out_together() -> None:
    batches: list[list[Any]] = []
    gate = asyncio.Event()

    async def write(ops: list[Any]) -> None:
        batches.append(ops)
        if len(batches) == 1:
            await gate.wait()

    w = GroupWriter(write)
    first = asyncio.create_task(w.submit([1]))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(w.submit([i])) for i in range(2, 6)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *rest)
    assert batches == [[1], [2, 3, 4, 5]]


async def test_a_failed_batch_fails_each_of_its_writers() -> None:
    async def write(ops: list[Any]) -> None:
        raise RuntimeError("db down")

    w = GroupWriter(write)
    with pytest.raises(RuntimeError, match="db down"):
        await w.submit([1])
