"""The planner's own collections: ``campaigns`` (its projection of campaign settings) and
``tasks`` (one per contact). Every state change is a compare-and-set on (status, attempt), so
concurrent handlers and redelivered events can never apply the same transition twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from task_planner.domain import SCHEDULABLE_STATUSES

Doc = dict[str, Any]


class PlannerRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.campaigns = db["campaigns"]
        self.tasks = db["tasks"]

    async def ensure_indexes(self) -> None:
        await self.tasks.create_index([("campaign_id", ASCENDING), ("status", ASCENDING)])
        await self.tasks.create_index([("status", ASCENDING)])
        await self.tasks.create_index([("status", ASCENDING), ("announced_at", ASCENDING)])

    # campaigns -------------------------------------------------------------------------------
    async def upsert_campaign(self, *, campaign_id: str, fields: Doc) -> None:
        await self.campaigns.update_one({"_id": campaign_id}, {"$set": fields}, upsert=True)

    async def set_expected_total(self, *, campaign_id: str, total: int) -> None:
        await self.campaigns.update_one(
            {"_id": campaign_id}, {"$max": {"expected_total": total}}, upsert=True
        )

    async def begin_run(self, *, campaign_id: str, event_id: str) -> int | None:
        """Count a restart once per event; returns the new run number, or None if this
        restart event was already applied."""
        doc = await self.campaigns.find_one_and_update(
            {"_id": campaign_id, "restart_events": {"$ne": event_id}},
            {"$push": {"restart_events": event_id}, "$inc": {"run": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else int(doc["run"])

    async def mark_restart_after_call(self, *, task_id: str) -> None:
        await self.tasks.update_one(
            {"_id": task_id, "status": "dialing"}, {"$set": {"restart_after_call": True}}
        )

    async def all_campaigns(self) -> list[Doc]:
        return [c async for c in self.campaigns.find({})]

    # tasks -----------------------------------------------------------------------------------
    async def insert_tasks(self, docs: Sequence[Doc]) -> int:
        if not docs:
            return 0
        try:
            res = await self.tasks.insert_many(list(docs), ordered=False)
            return len(res.inserted_ids)
        except BulkWriteError as exc:  # redelivered batch: the existing ones stay as they are
            return int(exc.details.get("nInserted", 0))

    async def get(self, task_id: str) -> Doc | None:
        return await self.tasks.find_one({"_id": task_id})

    async def get_many(self, task_ids: Sequence[str]) -> list[Doc]:
        return [t async for t in self.tasks.find({"_id": {"$in": list(task_ids)}})]

    async def transition(
        self,
        *,
        task_id: str,
        expect_status: Sequence[str],
        expect_attempt: int | None,
        set_fields: Doc,
        push_history: Doc | None = None,
        inc_attempt: bool = False,
    ) -> Doc | None:
        """Apply a change only if the task is still in one of ``expect_status`` (and at
        ``expect_attempt``); returns the new document, or None if it no longer applies."""
        flt: Doc = {"_id": task_id, "status": {"$in": list(expect_status)}}
        if expect_attempt is not None:
            flt["attempt"] = expect_attempt
        update: Doc = {"$set": set_fields, "$inc": {"seq": 1}}
        if inc_attempt:
            update["$inc"]["attempt"] = 1
        if push_history is not None:
            update["$push"] = {"history": push_history}
        return await self.tasks.find_one_and_update(
            flt, update, return_document=ReturnDocument.AFTER
        )

    async def replace_if_seq(self, *, task_id: str, seq: int, set_fields: Doc) -> Doc | None:
        """Apply a change only if the task is still at ``seq`` (nothing else changed it)."""
        return await self.tasks.find_one_and_update(
            {"_id": task_id, "seq": seq},
            {"$set": set_fields, "$inc": {"seq": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def schedulable(self, *, campaign_id: str | None = None) -> list[Doc]:
        flt: Doc = {"status": {"$in": list(SCHEDULABLE_STATUSES)}}
        if campaign_id is not None:
            flt["campaign_id"] = campaign_id
        return [t async for t in self.tasks.find(flt, {"_id": 1, "due_at": 1, "campaign_id": 1})]

    def iter_schedulable(self) -> AsyncIterator[Doc]:
        """Every waiting task's due time, streamed (start-up with a million tasks must not
        hold the documents, only the heap)."""
        return aiter(
            self.tasks.find(
                {"status": {"$in": list(SCHEDULABLE_STATUSES)}},
                {"_id": 1, "due_at": 1, "campaign_id": 1},
                batch_size=10_000,
            )
        )

    def iter_all(self) -> AsyncIterator[Doc]:
        return aiter(self.tasks.find({}, batch_size=2000))

    async def stale_queued(self, *, before: datetime, limit: int) -> list[Doc]:
        flt: Doc = {"status": "queued", "announced_at": {"$lt": before}}
        return [t async for t in self.tasks.find(flt).limit(limit)]

    async def touch_announced(self, *, task_id: str, attempt: int, at: datetime) -> bool:
        res = await self.tasks.update_one(
            {"_id": task_id, "status": "queued", "attempt": attempt}, {"$set": {"announced_at": at}}
        )
        return res.modified_count == 1

    async def in_status(self, *, campaign_id: str | None, statuses: Sequence[str]) -> list[Doc]:
        flt: Doc = {"status": {"$in": list(statuses)}}
        if campaign_id is not None:
            flt["campaign_id"] = campaign_id
        return [t async for t in self.tasks.find(flt)]

    async def count_active(self, *, campaign_id: str, statuses: Sequence[str]) -> int:
        return int(
            await self.tasks.count_documents(
                {"campaign_id": campaign_id, "status": {"$in": list(statuses)}}
            )
        )

    async def count(self, *, campaign_id: str) -> int:
        return int(await self.tasks.count_documents({"campaign_id": campaign_id}))

    async def count_dispositions(self, *, campaign_id: str) -> int:
        """Calls of the campaign whose disposition is in their task's history."""
        cursor = await self.tasks.aggregate(
            [
                {"$match": {"campaign_id": campaign_id}},
                {"$unwind": "$history"},
                {
                    "$match": {
                        "history.call_id": {"$ne": None},
                        "history.disposition": {"$ne": None},
                    }
                },
                {"$count": "n"},
            ]
        )
        rows = [r async for r in cursor]
        return int(rows[0]["n"]) if rows else 0
