"""The simulated phone network.

Every call is a document in ``sim_calls`` (the simulator's own database): that collection is
"what reached the phone network", which invariant checkers read. A background ticker ends the
calls whose ``ends_at`` has passed on the shared (virtual) clock and reports them to the dialer.

A test harness can declare an outage of the whole network: a document ``{"_id": "outage",
"until": <epoch seconds>, "outcome": "error_5xx"}`` in ``sim_controls``. Until then every new
call fails with that provider error (read at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dialer.providers.base import CallResult, DialOrder, ProviderError, VoiceProvider
from dialer.providers.sim_script import pick_outcome, plan_call
from dialer.settings import DialerSettings
from outbound_core.clock import Clock, utc
from outbound_core.phones import mask_phone
from outbound_core.service import Runtime, Ticker

log = structlog.get_logger(__name__)

END_CONCURRENCY = 32
PROVIDER_ERRORS = {"timeout": "provider_timeout", "error_5xx": "provider_5xx"}
CONTROL_READ_SECONDS = 1.0


class SimProvider(VoiceProvider):
    name = "sim"

    def __init__(
        self, *, db: AsyncDatabase[dict[str, Any]], clock: Clock, settings: DialerSettings
    ) -> None:
        super().__init__()
        self.calls = db["sim_calls"]
        self.controls = db["sim_controls"]
        self._outage: dict[str, Any] | None = None
        self._outage_read_at = float("-inf")
        self.clock = clock
        self.settings = settings
        self._due: list[tuple[datetime, str]] = []
        self._ticker: Ticker | None = None
        self._last_rescan = 0.0

    def install(self, rt: Runtime) -> None:
        rt.startup.append(self.start)
        self._ticker = rt.every("sim-call-ender", self.tick, self.settings.sim_tick_seconds)

    async def start(self) -> None:
        await self.calls.create_index([("status", 1), ("ends_at", 1)])
        await self.calls.create_index([("task_id", 1), ("attempt", 1)])
        await self._rescan(due_only=False)

    async def dial(self, order: DialOrder) -> None:
        """Record the request in ``sim_calls`` first (the log of what reached the network),
        then "dial". A provider fault (timeout, 5xx) is recorded as ``rejected``: nothing rang.
        A hanging call is cut by the network after ``max_call_seconds`` (``cut_at``) but its end
        is never reported: the dialer hears of it only through its lease expiring."""
        placed_at = self.clock.now()
        outcome = pick_outcome(
            script=order.sim_outcomes,
            attempt=order.attempt,
            phone=order.to,
            weights=self.settings.sim_outcome_weights,
        )
        down = await self._network_down()
        if down and await self.calls.find_one({"_id": order.call_id}, {"_id": 1}) is None:
            outcome = down  # a call asked again keeps what the network did the first time
        base = {
            "_id": order.call_id,
            "call_id": order.call_id,
            "to": order.to,
            "from": order.from_number,
            "task_id": order.task_id,
            "attempt": order.attempt,
            "outcome": outcome,
            "placed_at": placed_at,
        }
        if outcome in PROVIDER_ERRORS:
            # What a gateway that times out or answers 5xx looks like to the dialer.
            log.info("sim provider error", call_id=order.call_id, outcome=outcome)
            with contextlib.suppress(DuplicateKeyError):
                await self.calls.insert_one({**base, "status": "rejected", "ends_at": None})
            raise ProviderError(PROVIDER_ERRORS[outcome])
        plan = plan_call(
            outcome=outcome,
            phone=order.to,
            attempt=order.attempt,
            greeting=order.greeting,
            ring_range=(self.settings.sim_ring_seconds_min, self.settings.sim_ring_seconds_max),
            cost_per_minute=self.settings.sim_cost_per_minute,
        )
        ends_at = plan.ends_at(placed_at)
        doc = {
            **base,
            "ends_at": ends_at,
            "cut_at": None
            if ends_at
            else placed_at + timedelta(seconds=self.settings.max_call_seconds),
            "status": "active",
            "result": {
                "status": plan.status,
                "label": plan.label,
                "turns": plan.turns,
                "duration_seconds": plan.duration_seconds,
                "transcript": plan.transcript,
                "cost": plan.cost,
                "callback_at": plan.callback_at(ends_at) if ends_at else None,
            },
        }
        try:
            await self.calls.insert_one(doc)
        except DuplicateKeyError:
            # Asked again for the same call: one call on the network; just make sure it ends.
            existing = await self.calls.find_one_and_update(
                {"_id": order.call_id}, {"$inc": {"asked_again": 1}}
            )
            if existing is not None and existing["status"] == "rejected":
                raise ProviderError(
                    PROVIDER_ERRORS.get(existing["outcome"], "provider_5xx")
                ) from None
            if existing is None or existing["status"] != "active":
                return
            doc = existing
        log.info(
            "sim call placed",
            call_id=order.call_id,
            to=mask_phone(order.to),
            outcome=outcome,
            ends_at=str(doc["ends_at"]),
        )
        self._schedule(doc)

    async def _network_down(self) -> str | None:
        """The provider error of a declared outage still running, else None."""
        now = time.monotonic()
        if now - self._outage_read_at >= CONTROL_READ_SECONDS:
            self._outage = await self.controls.find_one({"_id": "outage"})
            self._outage_read_at = now
        o = self._outage
        try:
            until = float(o.get("until", 0)) if o is not None else 0.0
        except (TypeError, ValueError):
            log.warning("sim outage control ignored: until is not epoch seconds", control=o)
            return None
        if o is None or until <= time.time():
            return None
        outcome = str(o.get("outcome", "error_5xx"))
        return outcome if outcome in PROVIDER_ERRORS else "error_5xx"

    def _schedule(self, doc: dict[str, Any]) -> None:
        if doc.get("ends_at") is None:
            return  # a hanging call never ends
        heapq.heappush(self._due, (utc(doc["ends_at"]), doc["_id"]))
        if self._ticker is not None:
            self._ticker.kick()

    async def _rescan(self, *, due_only: bool) -> None:
        query: dict[str, Any] = {"status": "active", "ends_at": {"$ne": None}}
        if due_only:
            query["ends_at"] = {"$lte": self.clock.now()}
        known = {call_id for _, call_id in self._due}
        async for doc in self.calls.find(query, {"ends_at": 1}):
            if doc["_id"] not in known:
                heapq.heappush(self._due, (utc(doc["ends_at"]), doc["_id"]))
        self._last_rescan = time.monotonic()

    async def tick(self) -> None:
        """End every call that is due. A call placed by another dialer instance that died is
        picked up by the periodic rescan."""
        if time.monotonic() - self._last_rescan >= self.settings.sim_rescan_seconds:
            await self._rescan(due_only=True)
        now = self.clock.now()
        due: list[tuple[datetime, str]] = []
        while self._due and self._due[0][0] <= now:
            due.append(heapq.heappop(self._due))
        # Calls end independently: report them concurrently (each is a few round trips),
        # at most END_CONCURRENCY at once.
        for start in range(0, len(due), END_CONCURRENCY):
            batch = due[start : start + END_CONCURRENCY]
            results = await asyncio.gather(
                *(self._end(call_id) for _, call_id in batch), return_exceptions=True
            )
            failed = [(item, r) for item, r in zip(batch, results, strict=True) if r is not None]
            for item, _ in failed:
                heapq.heappush(self._due, item)  # try again on a later tick
            if failed:
                for item in due[start + END_CONCURRENCY :]:
                    heapq.heappush(self._due, item)
                err = failed[0][1]
                raise err if isinstance(err, BaseException) else RuntimeError(str(err))

    async def _end(self, call_id: str) -> None:
        doc = await self.calls.find_one({"_id": call_id, "status": "active"})
        if doc is None:
            return  # ended already (by us or by another instance)
        r = doc["result"]
        result = CallResult(
            call_id=call_id,
            status=r["status"],
            outcome=r["label"],
            turns=r["turns"],
            duration_seconds=r["duration_seconds"],
            started_at=utc(doc["placed_at"]),
            ended_at=utc(doc["ends_at"]),
            transcript=r["transcript"],
            cost=r["cost"],
            callback_at=utc(r["callback_at"]) if r.get("callback_at") else None,
        )
        # Report first, then mark ended: a crash in between reports the end twice (the dialer
        # is idempotent), never zero times.
        await self._report_end(result)
        await self.calls.update_one(
            {"_id": call_id, "status": "active"},
            {"$set": {"status": "ended", "ended_at": result.ended_at}},
        )
