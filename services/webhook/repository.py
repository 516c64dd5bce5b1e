"""MongoDB access for the webhook service: ``subscriptions`` and ``deliveries``.

Every delivery carries a ``version`` that each state change increments; the sender claims a
delivery with an optimistic update on it, so two replicas never send the same attempt twice.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _changes_subscriptions(fn: F) -> F:
    """Clear the intake's subscription cache once the change is written."""

    @functools.wraps(fn)
    async def wrapper(self: WebhookRepository, **kwargs: Any) -> Any:
        try:
            return await fn(self, **kwargs)
        finally:
            self.forget_subscriptions()

    return cast(F, wrapper)


class WebhookRepository:
    def __init__(self, db: AsyncDatabase[Doc], *, subscription_cache_seconds: float = 0.0) -> None:
        self.subscriptions = db["subscriptions"]
        self.deliveries = db["deliveries"]
        # Intake reads a workspace's enabled subscriptions for every event; a short cache saves
        # that round trip. This process's own changes clear it at once; another replica's
        # changes are seen after at most ``subscription_cache_seconds``.
        self._cache_seconds = subscription_cache_seconds
        self._enabled: dict[str, tuple[float, list[Doc]]] = {}

    async def ensure_indexes(self) -> None:
        await self.subscriptions.create_index([("workspace_id", ASCENDING), ("enabled", ASCENDING)])
        await self.deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.deliveries.create_index(
            [
                ("subscription_id", ASCENDING),
                ("order_key", ASCENDING),
                ("status", ASCENDING),
                ("seq", ASCENDING),
            ]
        )
        await self.deliveries.create_index([("subscription_id", ASCENDING), ("seq", DESCENDING)])
        # The delivery log filtered by status (``?status=dead``) and the bulk resend.
        await self.deliveries.create_index(
            [("subscription_id", ASCENDING), ("status", ASCENDING), ("seq", DESCENDING)]
        )

    # -- subscriptions ---------------------------------------------------------------------

    @_changes_subscriptions
    async def create_subscription(self, *, doc: Doc) -> None:
        await self.subscriptions.insert_one(doc)

    async def list_subscriptions(self, *, workspace_id: str) -> list[Doc]:
        cursor = self.subscriptions.find({"workspace_id": workspace_id})
        return [d async for d in cursor]

    async def get_subscription(self, *, workspace_id: str, subscription_id: str) -> Doc | None:
        return await self.subscriptions.find_one(
            {"_id": subscription_id, "workspace_id": workspace_id}
        )

    async def subscription_by_id(self, *, subscription_id: str) -> Doc | None:
        return await self.subscriptions.find_one({"_id": subscription_id})

    @_changes_subscriptions
    async def update_subscription(
        self, *, workspace_id: str, subscription_id: str, changes: Doc
    ) -> Doc | None:
        return await self.subscriptions.find_one_and_update(
            {"_id": subscription_id, "workspace_id": workspace_id},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )

    @_changes_subscriptions
    async def delete_subscription(self, *, workspace_id: str, subscription_id: str) -> bool:
        res = await self.subscriptions.delete_one(
            {"_id": subscription_id, "workspace_id": workspace_id}
        )
        return res.deleted_count == 1

    async def enabled_subscriptions(self, *, workspace_id: str) -> list[Doc]:
        hit = self._enabled.get(workspace_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        cursor = self.subscriptions.find({"workspace_id": workspace_id, "enabled": True})
        docs = [d async for d in cursor]
        if self._cache_seconds > 0:
            self._enabled[workspace_id] = (time.monotonic() + self._cache_seconds, docs)
        return docs

    def forget_subscriptions(self) -> None:
        self._enabled.clear()

    @_changes_subscriptions
    async def mark_gone(self, *, subscription_id: str, at: datetime) -> None:
        await self.subscriptions.update_one(
            {"_id": subscription_id},
            {"$set": {"enabled": False, "status": "disabled_gone", "updated_at": at}},
        )

    async def mark_failing(self, *, subscription_id: str, since: datetime) -> None:
        """Record the first failure of a run of failures (kept until a success clears it)."""
        await self.subscriptions.update_one(
            {"_id": subscription_id, "failing_since": None}, {"$set": {"failing_since": since}}
        )

    async def mark_healthy(self, *, subscription_id: str) -> None:
        await self.subscriptions.update_one(
            {"_id": subscription_id}, {"$set": {"failing_since": None}}
        )

    @_changes_subscriptions
    async def disable_failing(self, *, subscription_id: str, at: datetime) -> bool:
        """Disable an endpoint that has failed for too long; True if this call disabled it."""
        res = await self.subscriptions.update_one(
            {"_id": subscription_id, "enabled": True},
            {"$set": {"enabled": False, "status": "disabled_failing", "updated_at": at}},
        )
        return res.modified_count == 1

    @_changes_subscriptions
    async def rotate_secret(
        self,
        *,
        workspace_id: str,
        subscription_id: str,
        secret: str,
        previous_secret: str,
        previous_expires_at: datetime,
        at: datetime,
    ) -> Doc | None:
        return await self.subscriptions.find_one_and_update(
            {"_id": subscription_id, "workspace_id": workspace_id},
            {
                "$set": {
                    "secret": secret,
                    "previous_secret": previous_secret,
                    "previous_secret_expires_at": previous_expires_at,
                    "updated_at": at,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def next_seq(self, *, subscription_id: str) -> int:
        """A per-subscription counter that orders its deliveries by creation."""
        doc = await self.subscriptions.find_one_and_update(
            {"_id": subscription_id},
            {"$inc": {"delivery_seq": 1}},
            projection={"delivery_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["delivery_seq"]) if doc else 0

    # -- deliveries --------------------------------------------------------------------------

    async def insert_delivery(self, *, doc: Doc) -> bool:
        """Store a delivery once; False if it already exists (a redelivered event)."""
        try:
            await self.deliveries.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def insert_deliveries(self, *, docs: list[Doc]) -> int:
        """Store deliveries, skipping those that already exist; returns how many were new."""
        try:
            res = await self.deliveries.insert_many(docs, ordered=False)
            return len(res.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    async def exists(self, *, delivery_id: str) -> bool:
        return await self.deliveries.find_one({"_id": delivery_id}, {"_id": 1}) is not None

    async def due(self, *, now: datetime, limit: int, exclude: list[str]) -> list[Doc]:
        query: Doc = {"status": "pending", "next_attempt_at": {"$lte": now}}
        if exclude:
            query["subscription_id"] = {"$nin": exclude}
        cursor = (
            self.deliveries.find(query, {"body": 0, "attempts": 0})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
        )
        return [d async for d in cursor]

    async def pending_of_keys(self, *, keys: list[tuple[str, str]]) -> list[Doc]:
        """Every pending delivery of the given (subscription, order key) pairs, small fields
        only: one read that tells the sender the oldest pending delivery of each key."""
        if not keys:
            return []
        cursor = self.deliveries.find(
            {
                "status": "pending",
                "subscription_id": {"$in": sorted({s for s, _ in keys})},
                "order_key": {"$in": sorted({k for _, k in keys})},
            },
            {
                "_id": 1,
                "subscription_id": 1,
                "order_key": 1,
                "seq": 1,
                "next_attempt_at": 1,
                "version": 1,
            },
        )
        wanted = set(keys)
        return [d async for d in cursor if (d["subscription_id"], d["order_key"]) in wanted]

    async def subscriptions_by_ids(self, *, ids: list[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        cursor = self.subscriptions.find({"_id": {"$in": sorted(set(ids))}})
        return {d["_id"]: d async for d in cursor}

    async def claim_many(
        self, *, items: list[tuple[str, int]], until: datetime, token: str
    ) -> list[Doc]:
        """Claim several pending deliveries (id, version) in one write and read back the ones
        this call won, whole: two round trips whatever their number."""
        if not items:
            return []
        ops = [
            UpdateOne(
                {"_id": i, "status": "pending", "version": v},
                {"$set": {"next_attempt_at": until, "claim": token}, "$inc": {"version": 1}},
            )
            for i, v in items
        ]
        res = await self.deliveries.bulk_write(ops, ordered=False)
        if res.modified_count == 0:
            return []
        cursor = self.deliveries.find({"_id": {"$in": [i for i, _ in items]}, "claim": token})
        return [d async for d in cursor]

    async def defer_many(self, *, items: list[tuple[str, int, datetime]]) -> None:
        if items:
            await self.deliveries.bulk_write(
                [
                    UpdateOne(
                        {"_id": i, "status": "pending", "version": v},
                        {"$set": {"next_attempt_at": until}, "$inc": {"version": 1}},
                    )
                    for i, v, until in items
                ],
                ordered=False,
            )

    async def write(self, *, ops: list[Any]) -> None:
        """Apply the sender's batched writes (attempt records, wake-ups) in one round trip."""
        if ops:
            await self.deliveries.bulk_write(ops, ordered=False)

    @staticmethod
    def attempt_op(
        *,
        delivery_id: str,
        attempt: Doc,
        status: str,
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> UpdateOne:
        return UpdateOne(
            {"_id": delivery_id},
            {
                "$push": {"attempts": attempt},
                "$set": {
                    "status": status,
                    "next_attempt_at": next_attempt_at,
                    "updated_at": at,
                    "last_status_code": attempt.get("status_code"),
                    "last_error": attempt.get("error"),
                },
                "$inc": {"version": 1, "attempt_count": 1},
            },
        )

    @staticmethod
    def wake_op(*, subscription_id: str, order_key: str, after_seq: int, now: datetime) -> Any:
        """Make the deliveries waiting behind a finished one due now (the sender claims only
        the oldest of them; the others wait again)."""
        return UpdateMany(
            {
                "subscription_id": subscription_id,
                "order_key": order_key,
                "status": "pending",
                "seq": {"$gt": after_seq},
                "next_attempt_at": {"$gt": now},
            },
            {"$set": {"next_attempt_at": now}, "$inc": {"version": 1}},
        )

    async def head_of_key(self, *, subscription_id: str, order_key: str) -> Doc | None:
        """The oldest pending delivery of one (subscription, order key)."""
        return await self.deliveries.find_one(
            {"subscription_id": subscription_id, "order_key": order_key, "status": "pending"},
            {"_id": 1, "next_attempt_at": 1, "seq": 1, "version": 1},
            sort=[("seq", ASCENDING)],
        )

    async def claim(self, *, delivery_id: str, version: int, until: datetime) -> Doc | None:
        """Take a pending delivery for one attempt; None if someone else changed it first.
        Until the attempt is recorded it is not due again before ``until`` (a crash mid-send
        makes it due again then: at least once)."""
        return await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "status": "pending", "version": version},
            {"$set": {"next_attempt_at": until}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def defer(self, *, delivery_id: str, version: int, until: datetime) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id, "status": "pending", "version": version},
            {"$set": {"next_attempt_at": until}, "$inc": {"version": 1}},
        )

    async def record_attempt(
        self,
        *,
        delivery_id: str,
        attempt: Doc,
        status: str,
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id},
            {
                "$push": {"attempts": attempt},
                "$set": {
                    "status": status,
                    "next_attempt_at": next_attempt_at,
                    "updated_at": at,
                    "last_status_code": attempt.get("status_code"),
                    "last_error": attempt.get("error"),
                },
                "$inc": {"version": 1, "attempt_count": 1},
            },
        )

    async def finish_without_attempt(
        self, *, delivery_id: str, status: str, reason: str, at: datetime
    ) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id},
            {
                "$set": {
                    "status": status,
                    "next_attempt_at": None,
                    "last_error": reason,
                    "updated_at": at,
                },
                "$inc": {"version": 1},
            },
        )

    async def wake_next(self, *, subscription_id: str, order_key: str, now: datetime) -> None:
        """Make the next delivery of a key due now (it waited behind the one just finished)."""
        head = await self.head_of_key(subscription_id=subscription_id, order_key=order_key)
        if head is not None and head.get("next_attempt_at") is not None:
            await self.deliveries.update_one(
                {"_id": head["_id"], "status": "pending", "attempt_count": 0},
                {"$set": {"next_attempt_at": now}, "$inc": {"version": 1}},
            )

    async def get_delivery(self, *, delivery_id: str) -> Doc | None:
        return await self.deliveries.find_one({"_id": delivery_id})

    async def list_deliveries(
        self, *, subscription_id: str, limit: int, status: str | None = None
    ) -> list[Doc]:
        query: Doc = {"subscription_id": subscription_id}
        if status is not None:
            query["status"] = status
        cursor = self.deliveries.find(query, {"body": 0}).sort("seq", DESCENDING).limit(limit)
        return [d async for d in cursor]

    async def resend(self, *, subscription_id: str, delivery_id: str, now: datetime) -> Doc | None:
        """Make a dead (or failed) delivery pending again with a fresh retry schedule; None if
        it is not one of this subscription's finished-unsuccessfully deliveries."""
        doc = await self.deliveries.find_one(
            {"_id": delivery_id, "subscription_id": subscription_id},
            {"status": 1, "version": 1, "attempt_count": 1},
        )
        if doc is None or doc.get("status") not in ("dead", "failed"):
            return None
        return await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "version": doc.get("version", 0)},
            {
                "$set": {
                    "status": "pending",
                    "next_attempt_at": now,
                    "resend_base": int(doc.get("attempt_count", 0)),
                    "updated_at": now,
                },
                "$inc": {"version": 1, "resend_count": 1},
            },
            projection={"body": 0},
            return_document=ReturnDocument.AFTER,
        )

    async def dead_ids(self, *, subscription_id: str, limit: int) -> list[str]:
        cursor = self.deliveries.find(
            {"subscription_id": subscription_id, "status": "dead"}, {"_id": 1}
        ).limit(limit)
        return [d["_id"] async for d in cursor]
