"""MongoDB access for the dialer's own collections: calls, aborted dispatches, campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class CallRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.calls = db["calls"]
        # Keyed by lease: a new dispatch of the same attempt (after the planner re-queued an
        # aborted one) gets a new lease and is judged afresh; a redelivery is not.
        self.aborts = db["aborted_dispatches"]

    async def ensure_indexes(self) -> None:
        # The guarantee "at most one call per (task, attempt)" lives here.
        await self.calls.create_index([("task_id", 1), ("attempt", 1)], unique=True)
        await self.calls.create_index([("status", 1)])

    async def stuck_dialing(self, *, before: datetime) -> list[Doc]:
        """Calls recorded before ``before`` that the provider never confirmed placing."""
        return [
            d async for d in self.calls.find({"status": "dialing", "created_at": {"$lt": before}})
        ]

    async def live(self) -> list[Doc]:
        """Calls being placed or in progress (their leases are renewed)."""
        fields = {
            "status": 1,
            "lease_id": 1,
            "task_id": 1,
            "attempt": 1,
            "org_id": 1,
            "workspace_id": 1,
            "created_at": 1,
            "dialed_at": 1,
            "lease_renewed_at": 1,
            "lease_ttl_seconds": 1,
            "correlation_id": 1,
        }
        return [
            d async for d in self.calls.find({"status": {"$in": ["dialing", "active"]}}, fields)
        ]

    async def mark_renewed(self, *, call_id: str, lease_id: str, at: datetime) -> None:
        await self.calls.update_one(
            {"_id": call_id, "lease_id": lease_id, "status": {"$in": ["dialing", "active"]}},
            {"$set": {"lease_renewed_at": at}},
        )

    async def insert(self, *, doc: Doc) -> bool:
        """Record a call before it is dialled; False if this attempt already has one."""
        try:
            await self.calls.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def get(self, *, call_id: str) -> Doc | None:
        return await self.calls.find_one({"_id": call_id})

    def iter_all(self) -> AsyncIterator[Doc]:
        return aiter(self.calls.find({}, batch_size=2000))

    async def mark_active(self, *, call_id: str, at: datetime) -> bool:
        res = await self.calls.update_one(
            {"_id": call_id, "status": "dialing"}, {"$set": {"status": "active", "dialed_at": at}}
        )
        return res.modified_count == 1

    async def finish(self, *, call_id: str, fields: Doc) -> bool:
        """Store how the call ended; False if it had ended already."""
        res = await self.calls.update_one(
            {"_id": call_id, "status": {"$ne": "ended"}}, {"$set": {"status": "ended", **fields}}
        )
        return res.modified_count == 1

    async def mark_answered(
        self, *, call_id: str, at: datetime, provider_call_id: str | None
    ) -> bool:
        """The provider says the call started; False if the dialer never recorded it."""
        res = await self.calls.update_one(
            {"_id": call_id},
            {"$set": {"answered_at": at, "provider_call_id": provider_call_id}},
        )
        return res.matched_count == 1

    async def close_expired(self, *, call_id: str, lease_id: str, at: datetime) -> bool:
        """Close a call whose lease expired before its end arrived; False if it had ended."""
        res = await self.calls.update_one(
            {"_id": call_id, "lease_id": lease_id, "status": {"$ne": "ended"}},
            {
                "$set": {
                    "status": "ended",
                    "result_status": "failed",
                    "closed_by": "lease_expired",
                    "ended_at": at,
                }
            },
        )
        return res.modified_count == 1

    async def abandon(self, *, call_id: str, reason: str, at: datetime) -> bool:
        """A call recorded but never confirmed dialled that must not be placed any more:
        closed without a result (the attempt is handed back to the planner)."""
        res = await self.calls.update_one(
            {"_id": call_id, "status": "dialing"},
            {
                "$set": {
                    "status": "ended",
                    "closed_by": "aborted",
                    "failure": reason,
                    "ended_at": at,
                }
            },
        )
        return res.modified_count == 1

    async def record_late(self, *, call_id: str, fields: Doc) -> None:
        """Keep a result that arrived after the call was closed (its lease expired, or it was
        aborted after the network took it): published as the attempt's late end."""
        await self.calls.update_one({"_id": call_id}, {"$set": {"late_result": fields}})

    async def record_abort(self, *, lease_id: str, doc: Doc) -> bool:
        try:
            await self.aborts.insert_one({"_id": lease_id, **doc})
            return True
        except DuplicateKeyError:
            return False

    async def get_abort(self, *, lease_id: str) -> Doc | None:
        return await self.aborts.find_one({"_id": lease_id})

    def iter_aborts(self) -> AsyncIterator[Doc]:
        return aiter(self.aborts.find({}, batch_size=2000))


class CampaignRepository:
    """The dialer's projection of campaigns.v1."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.campaigns = db["campaigns"]

    async def upsert_created(self, *, campaign_id: str, doc: Doc) -> None:
        # The status only on insert: a replayed campaign.created never resets a later status.
        fields = {k: v for k, v in doc.items() if k != "status"}
        await self.campaigns.update_one(
            {"_id": campaign_id},
            {"$set": fields, "$setOnInsert": {"status": doc.get("status")}},
            upsert=True,
        )

    async def update_settings(self, *, campaign_id: str, fields: Doc) -> None:
        await self.campaigns.update_one({"_id": campaign_id}, {"$set": fields})

    async def set_status(self, *, campaign_id: str, status: str, at: datetime) -> None:
        await self.campaigns.update_one(
            {"_id": campaign_id}, {"$set": {"status": status, "status_at": at}}, upsert=True
        )

    async def get(self, *, campaign_id: str) -> Doc | None:
        return await self.campaigns.find_one({"_id": campaign_id})

    async def get_status(self, *, campaign_id: str) -> str | None:
        doc = await self.campaigns.find_one({"_id": campaign_id}, {"status": 1})
        return None if doc is None else doc.get("status")


class SuppressionRepository:
    """The dialer's projection of suppressions.v1: numbers it must never dial, per org."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.suppressed = db["suppressed_numbers"]

    async def add(self, *, org_id: str, phone: str, reason: str) -> None:
        await self.suppressed.update_one(
            {"_id": f"{org_id}:{phone}"}, {"$set": {"reason": reason}}, upsert=True
        )

    async def remove(self, *, org_id: str, phone: str) -> None:
        await self.suppressed.delete_one({"_id": f"{org_id}:{phone}"})

    async def is_suppressed(self, *, org_id: str, phone: str) -> bool:
        return await self.suppressed.find_one({"_id": f"{org_id}:{phone}"}, {"_id": 1}) is not None
