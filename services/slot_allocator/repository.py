"""The allocator's own collections: ``queue`` (ready tasks), ``leases``, ``slot_config`` and
``org_owners``.

Leases are kept after they end (status released/expired) so that a TaskQueued for an attempt
that was already dispatched is recognised and ignored; (task_id, attempt) is unique.

``org_owners`` holds one document per org: the fencing ``epoch`` of its current owner (the
allocator instance whose Kafka partition the org's events land on) and ``leases``, the org's
granted and not yet ended leases. An instance that takes an org over increments the epoch and
reads the map in the same atomic step; every grant adds its lease to the map with a write that
matches only the epoch it holds. So a stale instance can never grant once the org has moved,
and the new owner sees every lease granted before it took over, also one whose lease document
the old owner had not written yet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReplaceOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class AllocatorRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.queue = db["queue"]
        self.leases = db["leases"]
        self.config = db["slot_config"]
        self.owners = db["org_owners"]
        self.holds = db["campaign_holds"]

    async def ensure_indexes(self) -> None:
        await self.leases.create_index(
            [("task_id", ASCENDING), ("attempt", ASCENDING)], unique=True
        )
        await self.leases.create_index([("status", ASCENDING)])
        await self.leases.create_index([("org_id", ASCENDING), ("status", ASCENDING)])
        await self.queue.create_index([("campaign_id", ASCENDING)])
        await self.queue.create_index([("task_id", ASCENDING)])
        await self.queue.create_index([("org_id", ASCENDING)])
        await self.holds.create_index([("org_id", ASCENDING)])

    # ownership and fencing -----------------------------------------------------------------------
    async def claim(self, *, org_id: str, owner: str, at: float) -> tuple[int, dict[str, Doc]]:
        """Take an org over: a new epoch, and the leases granted under every earlier one."""
        doc = await self.owners.find_one_and_update(
            {"_id": org_id},
            {"$inc": {"epoch": 1}, "$set": {"owner": owner, "claimed_at": at}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return int(doc["epoch"]), dict(doc.get("leases") or {})

    async def fence_grant(self, *, org_id: str, epoch: int, lease_id: str, lease: Doc) -> bool:
        """Record a grant, only while ``epoch`` is still the org's: False = fenced off."""
        res = await self.owners.update_one(
            {"_id": org_id, "epoch": epoch}, {"$set": {f"leases.{lease_id}": lease}}
        )
        return res.matched_count == 1

    async def is_owner(self, *, org_id: str, epoch: int) -> bool:
        return await self.owners.find_one({"_id": org_id, "epoch": epoch}, {"_id": 1}) is not None

    async def unfence_lease(self, *, org_id: str, lease_id: str) -> None:
        await self.owners.update_one({"_id": org_id}, {"$unset": {f"leases.{lease_id}": ""}})

    async def org_ids(self) -> set[str]:
        """Every org the allocator holds anything for."""
        ids: set[str] = {str(d["_id"]) async for d in self.owners.find({}, {"_id": 1})}
        ids |= {str(d["_id"]) async for d in self.config.find({}, {"_id": 1})}
        ids |= {str(o) for o in await self.leases.distinct("org_id", {"status": "active"})}
        ids |= {str(o) for o in await self.queue.distinct("org_id")}
        return ids

    # queue ---------------------------------------------------------------------------------------
    async def leases_of(self, *, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Doc]:
        """The leases granted for these (task, attempt) pairs (active or ended): one per
        attempt."""
        tasks = sorted({task for task, _ in keys})
        wanted = set(keys)
        return {
            key: d
            async for d in self.leases.find({"task_id": {"$in": tasks}})
            if (key := (d["task_id"], d["attempt"])) in wanted
        }

    async def save_queued_many(self, *, docs: list[Doc]) -> None:
        if docs:
            await self.queue.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False
            )

    async def drop_queued(self, *, ids: list[str]) -> None:
        if ids:
            await self.queue.delete_many({"_id": {"$in": ids}})

    async def drop_campaign(self, *, campaign_id: str) -> None:
        await self.queue.delete_many({"campaign_id": campaign_id})

    async def queued(self, *, org_id: str) -> list[Doc]:
        return [d async for d in self.queue.find({"org_id": org_id})]

    # leases --------------------------------------------------------------------------------------
    async def insert_lease(self, *, doc: Doc) -> bool:
        try:
            await self.leases.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def end_lease(
        self,
        *,
        lease_id: str,
        status: str,
        at: datetime,
        due_by: tuple[datetime, float] | None = None,
    ) -> bool:
        """End an active lease. With ``due_by`` (virtual now, real now) only if it is still
        due then: a renewal stored first wins over an expiry decided on older deadlines."""
        flt: Doc = {"_id": lease_id, "status": "active"}
        if due_by is not None:
            flt["expires_at"] = {"$lte": due_by[0]}
            flt["real_deadline"] = {"$lte": due_by[1]}
        res = await self.leases.update_one(flt, {"$set": {"status": status, "ended_at": at}})
        return res.modified_count == 1

    async def get_lease(self, *, lease_id: str) -> Doc | None:
        return await self.leases.find_one({"_id": lease_id})

    async def renew_lease(
        self,
        *,
        lease_id: str,
        task_id: str,
        attempt: int,
        expires_at: datetime,
        real_deadline: float,
        at: datetime,
    ) -> bool:
        """Extend a lease, only while it is active and held for (task, attempt): the fence
        against a stale holder and against reviving an expired lease."""
        res = await self.leases.update_one(
            {"_id": lease_id, "task_id": task_id, "attempt": attempt, "status": "active"},
            {
                "$set": {
                    "expires_at": expires_at,
                    "real_deadline": real_deadline,
                    "renewed_at": at,
                },
                "$inc": {"renewals": 1},
            },
        )
        return res.matched_count == 1

    async def lease_statuses(self, *, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        return {
            str(d["_id"]): str(d["status"])
            async for d in self.leases.find({"_id": {"$in": ids}}, {"status": 1})
        }

    async def expired_leases(self) -> list[Doc]:
        return [d async for d in self.leases.find({"status": "expired"})]

    async def all_active_leases(self) -> list[Doc]:
        return [d async for d in self.leases.find({"status": "active"})]

    async def active_leases(self, *, org_id: str) -> list[Doc]:
        return [d async for d in self.leases.find({"org_id": org_id, "status": "active"})]

    # campaigns on hold (not running: nothing of theirs is dispatched) -----------------------------
    async def set_hold(self, *, campaign_id: str, org_id: str, held: bool, at: datetime) -> bool:
        """Record a campaign's hold unless a later status change is stored already."""
        doc = {"org_id": org_id, "held": held, "at": at}
        res = await self.holds.update_one({"_id": campaign_id, "at": {"$lte": at}}, {"$set": doc})
        if res.matched_count == 1:
            return True
        try:
            await self.holds.insert_one({"_id": campaign_id, **doc})
            return True
        except DuplicateKeyError:
            return False  # an older status change, delivered late

    async def held_campaigns(self, *, org_id: str) -> set[str]:
        return {
            str(d["_id"])
            async for d in self.holds.find({"org_id": org_id, "held": True}, {"_id": 1})
        }

    # settings ------------------------------------------------------------------------------------
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

    async def config_of(self, *, org_id: str) -> Doc | None:
        return await self.config.find_one({"_id": org_id})
