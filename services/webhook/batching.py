"""Group commit: writes submitted while a previous batch is in flight go out together.

A lone write goes out at once (no added latency when idle); under load, every attempt that
finishes while the database is busy with the previous batch joins the next one, so the number
of round trips per delivery falls as the load grows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class GroupWriter:
    def __init__(self, write: Callable[[list[Any]], Awaitable[None]], *, max_ops: int = 500):
        self._write = write
        self._max_ops = max_ops
        self._pending: list[tuple[list[Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, ops: list[Any]) -> None:
        """Apply ``ops`` (with others' ops, maybe); returns once they are written."""
        if not ops:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ops, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-writer")
        await fut

    async def _flush(self) -> None:
        while self._pending:
            batch: list[tuple[list[Any], asyncio.Future[None]]] = []
            count = 0
            while self._pending and (
                not batch or count + len(self._pending[0][0]) <= self._max_ops
            ):
                item = self._pending.pop(0)
                batch.append(item)
                count += len(item[0])
            try:
                await self._write([op for ops, _ in batch for op in ops])
            except Exception as exc:  # every writer of the batch sees the failure
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
