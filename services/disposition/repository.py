from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class DispositionRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.dispositions = db["dispositions"]
        self.suppressions = db["suppressions"]

    async def ensure_indexes(self) -> None:
        await self.suppressions.create_index([("org_id", 1), ("phone", 1)], unique=True)
        await self.dispositions.create_index([("task_id", 1)])

    async def record(self, *, call_id: str, doc: dict[str, Any]) -> bool:
        """Store the disposition of a call once; False if it was already recorded."""
        try:
            await self.dispositions.insert_one({"_id": call_id, **doc})
            return True
        except DuplicateKeyError:
            return False

    async def get(self, call_id: str) -> dict[str, Any] | None:
        return await self.dispositions.find_one({"_id": call_id})

    async def suppress(self, *, org_id: str, phone: str, reason: str, at: datetime) -> None:
        await self.suppressions.update_one(
            {"org_id": org_id, "phone": phone},
            {"$setOnInsert": {"org_id": org_id, "phone": phone, "reason": reason, "at": at}},
            upsert=True,
        )
