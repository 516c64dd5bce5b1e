"""The dialer's dispatch pool: bounded in-flight work, per-attempt order, a drain on stop."""

from __future__ import annotations

import asyncio

from dialer.pool import DispatchPool


async def _noop(_busy: set[str], _age: float) -> None:
    return None


def test_at_most_limit_dispatches_run_at_once_and_all_finish() -> None:
    async def run() -> None:
        pool = DispatchPool(limit=3, resume=_noop)
        running = peak = done = 0
        gate = asyncio.Event()

        async def work() -> None:
            nonlocal running, peak, done
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            done += 1

        submits = [
            asyncio.create_task(pool.submit((f"t{i}", 1), f"call_{i}", work())) for i in range(10)
        ]
        await asyncio.sleep(0.01)
        assert pool.busy == 3  # the consumer waits for a free place
        assert sum(s.done() for s in submits) == 3
        gate.set()
        await asyncio.gather(*submits)
        await pool.stop()
        assert (peak, done, pool.busy) == (3, 10, 0)

    asyncio.run(run())


def test_events_of_one_attempt_wait_for_its_dispatch() -> None:
    async def run() -> None:
        pool = DispatchPool(limit=5, resume=_noop)
        order: list[str] = []
        gate = asyncio.Event()

        async def dispatch() -> None:
            await gate.wait()
            order.append("dispatch")

        async def redelivery() -> None:
            order.append("redelivery")

        await pool.submit(("t1", 1), "call_1", dispatch())
        assert pool.call_ids() == {"call_1"}
        settled = asyncio.create_task(pool.settle(("t1", 1)))
        again = asyncio.create_task(pool.submit(("t1", 1), "call_1", redelivery()))
        await asyncio.sleep(0.01)
        assert not settled.done() and not again.done()
        gate.set()
        await asyncio.gather(settled, again)
        await pool.stop()
        assert order == ["dispatch", "redelivery"]

    asyncio.run(run())


def test_stop_lets_dispatches_in_progress_finish() -> None:
    async def run() -> None:
        pool = DispatchPool(limit=5, resume=_noop, drain_seconds=5)
        finished = []

        async def work(i: int) -> None:
            await asyncio.sleep(0.01)
            finished.append(i)

        for i in range(4):
            await pool.submit((f"t{i}", 1), f"c{i}", work(i))
        await pool.stop()
        assert sorted(finished) == [0, 1, 2, 3]

    asyncio.run(run())


def test_a_failing_dispatch_frees_its_place() -> None:
    async def run() -> None:
        pool = DispatchPool(limit=1, resume=_noop)

        async def boom() -> None:
            raise RuntimeError("database gone")

        async def fine() -> None:
            return None

        await pool.submit(("t1", 1), "c1", boom())
        await asyncio.wait_for(pool.submit(("t2", 1), "c2", fine()), timeout=2)
        await pool.stop()
        assert pool.busy == 0

    asyncio.run(run())
