"""campaign-api's realtime collections: ``rt_tasks`` (every accepted submission: its producer
``task_ref``, phone, campaign and effective configuration; ``_id`` is derived from the
``task_ref``, so a unique index makes submission idempotent) and ``producer_tokens``
(per-workspace credentials for Kafka producers, stored as SHA-256 hashes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

Doc = dict[str, Any]


class RealtimeRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.tasks = db["rt_tasks"]
        self.tokens = db["producer_tokens"]
        self.campaigns = db["campaigns"]
        self.agents = db["agents"]
        self.numbers = db["numbers"]
        self.keys = db["api_keys"]
        self.leads = db["leads"]

    async def ensure_indexes(self) -> None:
        await self.tasks.create_index([("campaign_id", ASCENDING), ("created_at", DESCENDING)])
        await self.tokens.create_index([("hash", ASCENDING)], unique=True)

    async def campaigns_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        cursor = self.campaigns.find(
            {"_id": {"$in": list(ids)}},
            {"workspace_id": 1, "org_id": 1, "kind": 1, "status": 1, "script_id": 1},
        )
        return {d["_id"]: d async for d in cursor}

    async def agents_by_id(self, *, workspace_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        cursor = self.agents.find({"_id": {"$in": list(ids)}, "workspace_id": workspace_id})
        return {d["_id"]: d async for d in cursor}

    async def numbers_of(self, *, workspace_id: str, numbers: Sequence[str]) -> set[str]:
        if not numbers:
            return set()
        keys = [f"{workspace_id}:{n}" for n in numbers]
        cursor = self.numbers.find({"key": {"$in": keys}}, {"number": 1})
        return {d["number"] async for d in cursor}

    async def existing(self, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {d["_id"]: d async for d in self.tasks.find({"_id": {"$in": list(ids)}})}

    async def insert(self, docs: list[Doc]) -> set[str]:
        """Insert what is new; returns the ids that were already there (a concurrent
        submission of the same task_ref won the race)."""
        if not docs:
            return set()
        try:
            await self.tasks.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def task(self, *, workspace_id: str, task_id: str) -> Doc | None:
        return await self.tasks.find_one({"_id": task_id, "workspace_id": workspace_id})

    async def tasks_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        return await self.existing(ids)

    async def leads_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {d["_id"]: d async for d in self.leads.find({"_id": {"$in": list(ids)}})}

    async def lead_page(
        self,
        *,
        campaign_id: str,
        statuses: list[str] | None,
        disposition: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Doc], int]:
        flt: Doc = {"campaign_id": campaign_id}
        if statuses:
            flt["status"] = {"$in": statuses}
        if disposition:
            flt["last_disposition"] = disposition
        total = await self.leads.count_documents(flt)
        cursor = self.leads.find(flt).sort("_id", ASCENDING).skip(offset).limit(limit)
        return [d async for d in cursor], int(total)

    # credentials ---------------------------------------------------------------------------
    async def credential(self, digest: str) -> Doc | None:
        """An API key or a producer token with this hash (either may submit tasks)."""
        doc = await self.tokens.find_one({"hash": digest})
        if doc is None:
            doc = await self.keys.find_one({"hash": digest})
        return doc

    async def insert_token(self, doc: Doc) -> None:
        await self.tokens.insert_one(doc)
