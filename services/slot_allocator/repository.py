"""The allocator's own collections: ``queue`` (ready tasks) and ``leases``. Leases are kept
after they end (status released/expired) so that a TaskQueued for an attempt that was already
dispatched is recognised and ignored; (task_id, attempt) is unique."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class AllocatorRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.queue = db["queue"]
        self.leases = db["leases"]
        self.config = db["slot_config"]

    async def ensure_indexes(self) -> None:
        await self.leases.create_index(
            [("task_id", ASCENDING), ("attempt", ASCENDING)], unique=True
        )
        await self.leases.create_index([("status", ASCENDING)])
        await self.queue.create_index([("campaign_id", ASCENDING)])
        await self.queue.create_index([("task_id", ASCENDING)])

    async def was_dispatched(self, *, task_id: str, attempt: int) -> bool:
        return (
            await self.leases.find_one({"task_id": task_id, "attempt": attempt}, {"_id": 1})
            is not None
        )

    async def save_queued(self, *, doc: Doc) -> None:
        await self.queue.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def drop_queued(self, *, ids: list[str]) -> None:
        if ids:
            await self.queue.delete_many({"_id": {"$in": ids}})

    async def drop_campaign(self, *, campaign_id: str) -> None:
        await self.queue.delete_many({"campaign_id": campaign_id})

    async def insert_lease(self, *, doc: Doc) -> bool:
        try:
            await self.leases.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def end_lease(self, *, lease_id: str, status: str, at: datetime) -> bool:
        res = await self.leases.update_one(
            {"_id": lease_id, "status": "active"}, {"$set": {"status": status, "ended_at": at}}
        )
        return res.modified_count == 1

    async def expired_leases(self) -> list[Doc]:
        return [d async for d in self.leases.find({"status": "expired"})]

    async def active_leases(self) -> list[Doc]:
        return [d async for d in self.leases.find({"status": "active"})]

    async def save_config(self, *, org_id: str, revision: int, doc: Doc) -> bool:
        """Store an org's slot settings unless a newer revision is already stored."""
        res = await self.config.update_one(
            {"_id": org_id, "revision": {"$lt": revision}},
            {"$set": {**doc, "revision": revision}},
            upsert=False,
        )
        if res.modified_count == 1:
            return True
        try:
            await self.config.insert_one({"_id": org_id, **doc, "revision": revision})
            return True
        except DuplicateKeyError:
            return False  # stored already with this or a newer revision

    async def configs(self) -> list[Doc]:
        return [d async for d in self.config.find({})]

    async def queued(self) -> list[Doc]:
        return [d async for d in self.queue.find({})]
