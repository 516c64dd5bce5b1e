from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from disposition.domain import CustomKind

Doc = dict[str, Any]


def _sid(org_id: str, phone: str) -> str:
    return f"{org_id}:{phone}"


class DispositionRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.dispositions = db["dispositions"]
        self.suppressions = db["suppressions"]
        self.breakers = db["breakers"]
        self.expiries = db["lease_expiries"]
        self.labels = db["custom_labels"]

    async def ensure_indexes(self) -> None:
        await self.suppressions.create_index([("org_id", 1), ("phone", 1)], unique=True)
        await self.dispositions.create_index([("task_id", 1)])
        await self.breakers.create_index([("state", 1), ("resume_at", 1)])

    async def record(self, *, call_id: str, doc: Doc) -> bool:
        """Store the disposition of a call once; False if it was already recorded."""
        try:
            await self.dispositions.insert_one({"_id": call_id, **doc})
            return True
        except DuplicateKeyError:
            return False

    def iter_all(self) -> AsyncIterator[Doc]:
        return aiter(self.dispositions.find({}, batch_size=2000))

    async def get(self, call_id: str) -> Doc | None:
        return await self.dispositions.find_one({"_id": call_id})

    # suppression list ---------------------------------------------------------------------------
    async def suppress(
        self, *, org_id: str, phone: str, reason: str, at: datetime, source: str | None = None
    ) -> bool:
        """Add a number to the org's list; False if it was there already (first reason kept)."""
        res = await self.suppressions.update_one(
            {"_id": _sid(org_id, phone)},
            {
                "$setOnInsert": {
                    "org_id": org_id,
                    "phone": phone,
                    "reason": reason,
                    "source": source,
                    "at": at,
                }
            },
            upsert=True,
        )
        return res.upserted_id is not None

    async def unsuppress(self, *, org_id: str, phone: str) -> bool:
        res = await self.suppressions.delete_one({"_id": _sid(org_id, phone)})
        return res.deleted_count == 1

    async def suppression(self, *, org_id: str, phone: str) -> Doc | None:
        return await self.suppressions.find_one({"_id": _sid(org_id, phone)})

    # circuit breaker ----------------------------------------------------------------------------
    async def push_attempt(
        self,
        *,
        campaign_id: str,
        failed: bool,
        window: int,
        org_id: str,
        workspace_id: str,
        began_at: datetime | None = None,
    ) -> Doc | None:
        """Append one attempt's result to the campaign's window; returns the breaker, or None
        when it does not count: while the breaker is open (calls that were in flight when it
        tripped), and while it is half-open for an attempt that began (``began_at``: its call
        started, its lease was granted) before the probe did."""
        match: Doc = {"_id": campaign_id, "state": {"$ne": "open"}}
        if began_at is not None:
            match["probe_from"] = {"$not": {"$gt": began_at}}
        try:
            return await self.breakers.find_one_and_update(
                match,
                {
                    "$push": {"recent": {"$each": [failed], "$slice": -window}},
                    "$setOnInsert": {"org_id": org_id, "workspace_id": workspace_id},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None  # it exists, and is open or probing attempts begun later

    async def trip(self, *, campaign_id: str, at: datetime, resume_at: datetime | None) -> bool:
        """Open the breaker once (False: a concurrent outcome opened it first). A fresh window
        after a trip: a resumed campaign must fail anew to trip again."""
        res = await self.breakers.update_one(
            {"_id": campaign_id, "state": {"$ne": "open"}},
            {
                "$set": {"recent": [], "state": "open", "tripped_at": at, "resume_at": resume_at},
                "$inc": {"trips": 1, "streak": 1},
            },
        )
        return res.modified_count == 1

    async def close(self, *, campaign_id: str) -> None:
        """The probe passed: the next trip starts the cool-downs from the shortest again."""
        await self.breakers.update_one(
            {"_id": campaign_id, "state": "half_open"},
            {"$set": {"state": "closed", "streak": 0}, "$unset": {"probe_from": ""}},
        )

    async def due_resumes(self, *, now: datetime) -> list[Doc]:
        cursor = self.breakers.find({"state": "open", "resume_at": {"$lte": now}})
        return [d async for d in cursor]

    async def half_open(
        self, *, campaign_id: str, at: datetime, trips: int | None = None, by_resume: bool = False
    ) -> bool:
        """The campaign is resumed at ``at``: after trip number ``trips`` (the cool-down), or
        by anyone (``by_resume``: only a resume after the trip counts). The probe counts the
        attempts begun from ``at``: a call that was live across the pause says nothing about
        the provider now."""
        match: Doc = {"_id": campaign_id, "state": "open"}
        if trips is not None:
            match["trips"] = trips
        if by_resume:
            match["tripped_at"] = {"$lt": at}
        res = await self.breakers.update_one(
            match,
            {"$set": {"state": "half_open", "recent": [], "resume_at": None, "probe_from": at}},
        )
        return res.modified_count == 1

    # custom labels, per workspace ------------------------------------------------------------
    async def set_labels(self, *, org_id: str, workspace_id: str, labels: dict[str, str]) -> None:
        await self.labels.replace_one(
            {"_id": workspace_id}, {"org_id": org_id, "labels": labels}, upsert=True
        )

    async def labels_of(self, *, workspace_id: str) -> dict[str, CustomKind]:
        doc = await self.labels.find_one({"_id": workspace_id})
        stored = (doc.get("labels") or {}) if doc else {}
        return {k: "retryable" if v == "retryable" else "terminal" for k, v in stored.items()}

    async def note_expiry(self, *, lease_id: str, doc: Doc) -> bool:
        """Remember a lease expiry once; False if it was noted before (a redelivery)."""
        try:
            await self.expiries.insert_one({"_id": lease_id, **doc})
            return True
        except DuplicateKeyError:
            return False
