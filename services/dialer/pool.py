"""Concurrent dispatch handling with a bound on calls being set up at once.

The consumer hands each TaskDispatched to :class:`DispatchPool` and goes on to the next one;
up to ``limit`` dispatches are worked on at once (guards, the call record, the provider's
answer), and the consumer waits when all are busy, so a burst never opens unbounded work.

Exactly one call per (task, attempt) still holds: it is the unique index on the call record,
not the order of handling. What the concurrency changes is what a crash can leave behind, and
each case is repaired:

- acknowledged but not yet recorded: no call exists; the lease expires and the planner counts
  the attempt as failed (retryable), as for a dispatch the dialer never saw;
- recorded (``dialing``) but the provider never asked: :meth:`resume_stuck` (every
  ``sweep_seconds``) asks the provider again under the same call id, its idempotency key.

Events of one attempt keep their order: a lease expiry for an attempt whose dispatch is still
being worked on waits for it (:meth:`settle`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from outbound_core.service import Ticker

log = structlog.get_logger(__name__)

Key = tuple[str, int]


class DispatchPool(Ticker):
    def __init__(
        self,
        *,
        limit: int,
        resume: Callable[[set[str], float], Awaitable[Any]],
        sweep_seconds: float = 15.0,
        drain_seconds: float = 10.0,
    ) -> None:
        super().__init__("dialing-recovery", self._sweep, sweep_seconds)
        self._free = asyncio.Semaphore(limit)
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._resume = resume
        self._started = time.time()
        self.sweep_seconds = sweep_seconds
        self.drain_seconds = drain_seconds
        self.limit = limit
        self._closing = False

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def call_ids(self) -> set[str]:
        return {str(t.get_name()) for t in self._tasks.values()}

    async def submit(self, key: Key, call_id: str, work: Awaitable[None]) -> None:
        """Start ``work`` once fewer than ``limit`` are running; returns when it has started."""
        await self.settle(key)  # a redelivery of an attempt in progress waits for it
        if self._closing:
            # shutting down: work in the consumer's own call, which the broker waits for
            # before it closes the producer
            await self._work(work)
            return
        await self._free.acquire()
        task = asyncio.create_task(self._work(work), name=call_id)
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._done, key))

    async def _work(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            # the call record (if any) is resumed by the sweep; the lease expires otherwise
            log.exception("dispatch failed; the sweep or the lease expiry repairs it")

    def _done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        self._free.release()

    async def settle(self, key: Key) -> None:
        task = self._tasks.get(key)
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(task)

    async def _sweep(self) -> None:
        # calls recorded more than one sweep ago and not being worked on here
        await self._resume(self.call_ids(), self.sweep_seconds)

    async def stop(self, grace: float = 0.0) -> None:
        """Before the broker stops: let dispatches in progress finish (they publish)."""
        self._closing = True
        pending = list(self._tasks.values())
        if pending:
            log.info("waiting for dispatches in progress", count=len(pending))
            _, late = await asyncio.wait(pending, timeout=grace or self.drain_seconds)
            for task in late:
                task.cancel()
        await super().stop(grace)
