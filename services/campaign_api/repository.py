"""campaign-api's own collections: orgs, workspaces, api_keys, agents, campaigns, leads (a
projection of planner lead updates), calls (one per call attempt, marked with the counters it
was added to), suppressed (a projection of the org opt-out list from suppressions.v1) and
outbox."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]
# Every request looks its key up and most read the workspace's rate: a few seconds of caching
# saves those round trips on hot reads. A key revoked here is forgotten at once; another API
# instance may honour it for at most KEY_CACHE_SECONDS more.
KEY_CACHE_SECONDS = 5.0
RATE_CACHE_SECONDS = 60.0


class ApiRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.orgs = db["orgs"]
        self.workspaces = db["workspaces"]
        self.keys = db["api_keys"]
        self.agents = db["agents"]
        self.campaigns = db["campaigns"]
        self.leads = db["leads"]
        self.outbox = db["outbox"]
        self.calls = db["calls"]
        self.phone_maps = db["campaign_phones"]
        self.numbers = db["numbers"]
        self.suppressed = db["suppressed"]
        self.idempotency = db["idempotency"]
        self._key_cache: dict[str, tuple[float, Doc | None]] = {}
        self._rate_cache: dict[str, tuple[float, float]] = {}

    async def ensure_indexes(self) -> None:
        await self.keys.create_index([("hash", ASCENDING)], unique=True)
        await self.campaigns.create_index([("workspace_id", ASCENDING), ("created_at", DESCENDING)])
        await self.campaigns.create_index([("completion_pending.since", ASCENDING)], sparse=True)
        await self.campaigns.create_index([("status", ASCENDING)])
        await self.leads.create_index([("campaign_id", ASCENDING), ("status", ASCENDING)])
        await self.phone_maps.create_index([("campaign_id", ASCENDING)])
        await self.leads.create_index([("campaign_id", ASCENDING), ("_id", ASCENDING)])
        await self.calls.create_index([("task_id", ASCENDING)])
        await self.workspaces.create_index([("org_id", ASCENDING)])
        await self.keys.create_index([("workspace_id", ASCENDING)])
        await self.numbers.create_index([("key", ASCENDING)], unique=True)
        await self.numbers.create_index([("workspace_id", ASCENDING), ("pool", ASCENDING)])

    # tenancy -------------------------------------------------------------------------------------
    async def key_by_hash(self, digest: str) -> Doc | None:
        now = time.monotonic()
        hit = self._key_cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = await self.keys.find_one({"hash": digest})
        if doc is not None:  # an unknown key is not cached: it may be created next
            if len(self._key_cache) > 10_000:
                self._key_cache.clear()
            self._key_cache[digest] = (now + KEY_CACHE_SECONDS, doc)
        return doc

    async def ensure_tenant(
        self, *, org_id: str, workspace_id: str, key_id: str, digest: str, now: datetime
    ) -> None:
        await self.orgs.update_one(
            {"_id": org_id},
            {"$setOnInsert": {"name": "Development org", "created_at": now}},
            upsert=True,
        )
        await self.workspaces.update_one(
            {"_id": workspace_id},
            {"$setOnInsert": {"org_id": org_id, "name": "Development", "created_at": now}},
            upsert=True,
        )
        try:
            await self.keys.insert_one(
                {
                    "_id": key_id,
                    "hash": digest,
                    "org_id": org_id,
                    "workspace_id": workspace_id,
                    "role": "org_admin",
                    "name": "bootstrap",
                    "created_at": now,
                }
            )
        except DuplicateKeyError:
            pass

    async def create_org(self, *, org_id: str, name: str, now: datetime) -> None:
        await self.orgs.insert_one({"_id": org_id, "name": name, "created_at": now})

    async def insert_workspace(self, doc: Doc) -> None:
        await self.workspaces.insert_one(doc)

    async def workspace(self, *, org_id: str, workspace_id: str) -> Doc | None:
        return await self.workspaces.find_one({"_id": workspace_id, "org_id": org_id})

    async def workspaces_of(self, *, org_id: str) -> list[Doc]:
        return [w async for w in self.workspaces.find({"org_id": org_id}).sort("_id", ASCENDING)]

    async def insert_key(self, doc: Doc) -> None:
        await self.keys.insert_one(doc)

    async def keys_of(self, *, workspace_id: str) -> list[Doc]:
        return [k async for k in self.keys.find({"workspace_id": workspace_id})]

    async def revoke_key(self, *, workspace_id: str, key_id: str, now: datetime) -> Doc | None:
        doc = await self.keys.find_one_and_update(
            {"_id": key_id, "workspace_id": workspace_id},
            {"$set": {"revoked": True, "revoked_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            self._key_cache.pop(doc["hash"], None)
        return doc

    async def has_number(self, *, workspace_id: str, number: str) -> bool:
        return await self.numbers.find_one({"key": f"{workspace_id}:{number}"}) is not None

    async def caller_numbers(
        self, *, workspace_id: str, number: str | None, pool: str | None
    ) -> list[Doc]:
        """The workspace's numbers a campaign calls from: ``number``, then the pool's."""
        docs: list[Doc] = []
        if number is not None:
            one = await self.numbers.find_one({"key": f"{workspace_id}:{number}"})
            docs += [one] if one is not None else []
        if pool is not None:
            flt = {"workspace_id": workspace_id, "pool": pool}
            docs += [d async for d in self.numbers.find(flt).sort("number", 1)]
        return docs

    async def has_pool(self, *, workspace_id: str, pool: str) -> bool:
        doc = await self.numbers.find_one({"workspace_id": workspace_id, "pool": pool})
        return doc is not None

    # agents -------------------------------------------------------------------------------------
    async def insert_agent(self, doc: Doc) -> None:
        await self.agents.insert_one(doc)

    async def agent(self, *, workspace_id: str, agent_id: str) -> Doc | None:
        return await self.agents.find_one({"_id": agent_id, "workspace_id": workspace_id})

    async def agents_of(self, *, workspace_id: str) -> list[Doc]:
        return [a async for a in self.agents.find({"workspace_id": workspace_id})]

    # campaigns ----------------------------------------------------------------------------------
    async def insert_campaign(self, doc: Doc) -> None:
        await self.campaigns.insert_one(doc)

    async def campaign(self, *, workspace_id: str, campaign_id: str) -> Doc | None:
        return await self.campaigns.find_one({"_id": campaign_id, "workspace_id": workspace_id})

    async def list_campaigns(
        self,
        *,
        workspace_id: str,
        status: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Doc], int]:
        flt: Doc = {"workspace_id": workspace_id}
        if status:
            flt["status"] = status
        if created_from or created_to:
            flt["created_at"] = {
                **({"$gte": created_from} if created_from else {}),
                **({"$lte": created_to} if created_to else {}),
            }
        total = await self.campaigns.count_documents(flt)
        cursor = self.campaigns.find(flt).sort("created_at", DESCENDING).skip(offset).limit(limit)
        return [c async for c in cursor], int(total)

    async def set_status(
        self, *, campaign_id: str, expect: Sequence[str], status: str, fields: Doc | None = None
    ) -> Doc | None:
        return await self.campaigns.find_one_and_update(
            {"_id": campaign_id, "status": {"$in": list(expect)}},
            {"$set": {"status": status, **(fields or {})}},
            return_document=ReturnDocument.AFTER,
        )

    async def due_to_start(self, *, now: datetime) -> list[Doc]:
        return [
            c
            async for c in self.campaigns.find(
                {"status": "scheduled", "schedule_start": {"$lte": now}}
            )
        ]

    async def due_to_end(self, *, now: datetime) -> list[Doc]:
        return [
            c
            async for c in self.campaigns.find(
                {
                    "status": {"$in": ["running", "paused", "scheduled"]},
                    "schedule_end": {"$lte": now},
                }
            )
        ]

    # projections --------------------------------------------------------------------------------
    async def count_once(self, *, campaign_id: str, key: str, inc: dict[str, float]) -> Doc | None:
        """Add ``inc`` to the campaign's counters unless ``key`` is among the keys it counted
        lately, and note ``key`` there, in one write: a counter is never bumped without its
        guard, nor guarded without its bump. The lasting guard is the call's ``counted``
        marker (:meth:`mark_counted`), written next; until it is, a redelivered event finds
        the key here. Returns the campaign's counters after the write (None if it was
        already counted)."""
        return await self.campaigns.find_one_and_update(
            {"_id": campaign_id, "counting": {"$ne": key}},
            {"$inc": inc, "$push": {"counting": key}},
            projection={"disposition_summary": 1, "completion_pending": 1, "status": 1},
            return_document=ReturnDocument.AFTER,
        )

    async def inc_campaign(self, *, campaign_id: str, inc: dict[str, float]) -> None:
        await self.campaigns.update_one({"_id": campaign_id}, {"$inc": inc})

    async def mark_counted(self, *, call_id: str, what: str) -> None:
        await self.calls.update_one({"_id": call_id}, {"$addToSet": {"counted": what}})

    async def forget_counting(self, keys: dict[str, list[str]]) -> None:
        """Drop keys whose call carries its lasting marker from their campaigns' short list."""
        for campaign_id, done in keys.items():
            await self.campaigns.update_one(
                {"_id": campaign_id}, {"$pull": {"counting": {"$in": done}}}
            )

    async def pending_completions(self, *, older_than: float) -> list[Doc]:
        return [
            c
            async for c in self.campaigns.find(
                {"completion_pending.since": {"$lte": older_than}}, {"_id": 1, "status": 1}
            )
        ]

    async def insert_leads(self, docs: list[Doc]) -> None:
        """Idempotent: a redelivered batch leaves existing leads as they are."""
        if docs:
            try:
                await self.leads.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    async def phone_map(self, *, campaign_id: str | None) -> dict[str, tuple[str, str]]:
        """Every phone of the campaign's contacts → (task id, map document id). A handful of
        documents per campaign (one per batch of contacts) instead of a multikey index on
        10,000 leads, because a contact batch is written on the request path."""
        if campaign_id is None:
            return {}
        out: dict[str, tuple[str, str]] = {}
        async for d in self.phone_maps.find({"campaign_id": campaign_id}):
            for phone, task_id in d.get("phones", {}).items():
                out[phone] = (task_id, d["_id"])
        return out

    async def add_phone_map(self, *, campaign_id: str, phones: dict[str, str]) -> None:
        if phones:
            await self.phone_maps.insert_one(
                # named after the batch's first task: unique, and stable for a retried batch
                {
                    "_id": f"{campaign_id}:{next(iter(phones.values()))}",
                    "campaign_id": campaign_id,
                    "phones": phones,
                }
            )

    async def drop_phones(self, *, entries: list[tuple[str, str]]) -> None:
        """Forget (map document id, phone) entries: those contacts left the campaign."""
        by_doc: dict[str, list[str]] = {}
        for doc_id, phone in entries:
            by_doc.setdefault(doc_id, []).append(phone)
        for doc_id, phones in by_doc.items():
            await self.phone_maps.update_one(
                {"_id": doc_id}, {"$unset": {f"phones.{p}": "" for p in phones}}
            )

    async def leads_by_id(self, *, campaign_id: str, lead_ids: list[str]) -> list[Doc]:
        cursor = self.leads.find(
            {"_id": {"$in": lead_ids}, "campaign_id": campaign_id},
            {"phones": 1, "status": 1, "attempt": 1, "removed": 1},
        )
        return [d async for d in cursor]

    async def mark_removed(self, *, lead_ids: list[str]) -> None:
        await self.leads.update_many(
            {"_id": {"$in": lead_ids}},
            {"$set": {"removed": True, "status": "archived", "reason": "removed"}},
        )

    async def apply_suppression(
        self, *, org_id: str, phone: str, active: bool, at: datetime, reason: str | None
    ) -> bool:
        """Record the number's suppression state as of ``at``, unless a state as recent is
        already there (a redelivered or older event). True when it changed something."""
        try:
            res = await self.suppressed.update_one(
                {"_id": f"{org_id}:{phone}", "at": {"$lt": at}},
                {"$set": {"active": active, "at": at, "reason": reason}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the number holds a state at least as recent
        return bool(res.upserted_id is not None or res.modified_count)

    async def suppressed_among(self, *, org_id: str, phones: list[str]) -> set[str]:
        """Which of ``phones`` are on the org's suppression list (as projected from
        ``suppressions.v1``)."""
        if not phones:
            return set()
        if await self.suppressed.estimated_document_count() == 0:
            return set()
        ids = [f"{org_id}:{p}" for p in phones]
        return {
            str(d["_id"]).split(":", 1)[1]
            async for d in self.suppressed.find({"_id": {"$in": ids}, "active": True}, {"_id": 1})
        }

    async def reserve_contacts(self, *, campaign_id: str, count: int, limit: int) -> Doc | None:
        """Add ``count`` to the campaign total if it stays within ``limit`` (atomic)."""
        return await self.campaigns.find_one_and_update(
            {"_id": campaign_id, "total_contacts": {"$lte": limit - count}},
            {"$inc": {"total_contacts": count}},
            return_document=ReturnDocument.AFTER,
        )

    async def upsert_call(self, *, call_id: str, fields: Doc, on_insert: Doc | None = None) -> Doc:
        """Store what an event says of a call; the call as it is now (with the counters it
        has already been added to, ``counted``)."""
        update: Doc = {"$set": fields}
        if on_insert:
            update["$setOnInsert"] = on_insert
        doc: Doc | None = await self.calls.find_one_and_update(
            {"_id": call_id},
            update,
            upsert=True,
            projection={"counted": 1},
            return_document=ReturnDocument.AFTER,
        )
        return doc or {"_id": call_id}

    async def has_earlier_call(self, *, task_id: str, call_id: str) -> bool:
        """Whether the lead had a call before this one in the campaign's current run."""
        doc = await self.calls.find_one(
            {"task_id": task_id, "_id": {"$ne": call_id}, "earlier_run": {"$ne": True}},
            {"_id": 1},
        )
        return doc is not None

    async def calls_of(self, *, task_id: str) -> list[Doc]:
        cursor = self.calls.find({"task_id": task_id}).sort("started_at", ASCENDING)
        return [c async for c in cursor]

    async def lead(self, *, campaign_id: str, lead_id: str) -> Doc | None:
        return await self.leads.find_one({"_id": lead_id, "campaign_id": campaign_id})

    async def rate_of(self, *, workspace_id: str) -> float:
        """The workspace's per-minute rate (set when the workspace is created)."""
        now = time.monotonic()
        hit = self._rate_cache.get(workspace_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        ws = await self.workspaces.find_one({"_id": workspace_id}, {"per_minute_rate": 1})
        rate = float((ws or {}).get("per_minute_rate", 0.0))
        if len(self._rate_cache) > 10_000:
            self._rate_cache.clear()
        self._rate_cache[workspace_id] = (now + RATE_CACHE_SECONDS, rate)
        return rate

    async def apply_lead(self, *, lead_id: str, seq: int, fields: Doc) -> None:
        try:
            await self.leads.update_one(
                {"_id": lead_id, "seq": {"$lt": seq}},
                {"$set": {**fields, "seq": seq}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # a newer state is already there

    async def reset_for_restart(self, *, campaign_id: str) -> None:
        """Every lead back to pending before a restart. ``seq`` stays: the planner's next
        updates carry higher ones and still apply. The calls so far belong to the earlier
        run: the first call of the new one is not a retry."""
        await self.calls.update_many(
            {"campaign_id": campaign_id, "earlier_run": {"$ne": True}},
            {"$set": {"earlier_run": True}},
        )
        await self.leads.update_many(
            {"campaign_id": campaign_id},
            {
                "$set": {
                    "status": "pending",
                    "attempt": 0,
                    "phone_index": 0,
                    "pass_number": 1,
                    "last_disposition": None,
                    "next_attempt_at": None,
                    "reason": None,
                }
            },
        )

    async def leads_of(
        self,
        *,
        campaign_id: str,
        status: str | None,
        limit: int,
        offset: int,
        disposition: str | None = None,
    ) -> tuple[list[Doc], int]:
        flt: Doc = {"campaign_id": campaign_id}
        if status:
            flt["status"] = status
        if disposition:
            flt["last_disposition"] = disposition
        total = await self.leads.count_documents(flt)
        cursor = self.leads.find(flt).sort("_id", ASCENDING).skip(offset).limit(limit)
        return [d async for d in cursor], int(total)

    def all_leads(self, *, campaign_id: str) -> Any:
        return self.leads.find({"campaign_id": campaign_id}).sort("_id", ASCENDING)
