"""An in-memory stand-in for WebhookRepository (the subset the sender and intake use)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

Doc = dict[str, Any]


class FakeRepo:
    def __init__(self) -> None:
        self.subs: dict[str, Doc] = {}
        self.dels: dict[str, Doc] = {}
        self.writes: list[int] = []

    async def subscription_by_id(self, *, subscription_id: str) -> Doc | None:
        return copy.deepcopy(self.subs.get(subscription_id))

    async def enabled_subscriptions(self, *, workspace_id: str) -> list[Doc]:
        return [
            copy.deepcopy(s)
            for s in self.subs.values()
            if s["workspace_id"] == workspace_id and s["enabled"]
        ]

    async def mark_gone(self, *, subscription_id: str, at: datetime) -> None:
        self.subs[subscription_id].update(enabled=False, status="disabled_gone", updated_at=at)

    async def mark_failing(self, *, subscription_id: str, since: datetime) -> None:
        s = self.subs[subscription_id]
        if s.get("failing_since") is None:
            s["failing_since"] = since

    async def mark_healthy(self, *, subscription_id: str) -> None:
        self.subs[subscription_id]["failing_since"] = None

    async def disable_failing(self, *, subscription_id: str, at: datetime) -> bool:
        s = self.subs[subscription_id]
        if not s["enabled"]:
            return False
        s.update(enabled=False, status="disabled_failing", updated_at=at)
        return True

    async def next_seq(self, *, subscription_id: str) -> int:
        s = self.subs[subscription_id]
        s["delivery_seq"] = s.get("delivery_seq", 0) + 1
        return int(s["delivery_seq"])

    async def insert_delivery(self, *, doc: Doc) -> bool:
        if doc["_id"] in self.dels:
            return False
        self.dels[doc["_id"]] = copy.deepcopy(doc)
        return True

    async def insert_deliveries(self, *, docs: list[Doc]) -> int:
        return sum([await self.insert_delivery(doc=d) for d in docs])

    async def exists(self, *, delivery_id: str) -> bool:
        return delivery_id in self.dels

    async def due(self, *, now: datetime, limit: int, exclude: list[str]) -> list[Doc]:
        rows = [
            d
            for d in self.dels.values()
            if d["status"] == "pending"
            and d["next_attempt_at"] is not None
            and d["next_attempt_at"] <= now
            and d["subscription_id"] not in exclude
        ]
        rows.sort(key=lambda d: d["next_attempt_at"])
        return [copy.deepcopy(d) for d in rows[:limit]]

    async def pending_of_keys(self, *, keys: list[tuple[str, str]]) -> list[Doc]:
        wanted = set(keys)
        return [
            copy.deepcopy(d)
            for d in self.dels.values()
            if d["status"] == "pending" and (d["subscription_id"], d["order_key"]) in wanted
        ]

    async def subscriptions_by_ids(self, *, ids: list[str]) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.subs[i]) for i in ids if i in self.subs}

    async def claim_many(
        self, *, items: list[tuple[str, int]], until: datetime, token: str
    ) -> list[Doc]:
        out = []
        for i, v in items:
            got = await self.claim(delivery_id=i, version=v, until=until)
            if got is not None:
                out.append(got)
        return out

    async def defer_many(self, *, items: list[tuple[str, int, datetime]]) -> None:
        for i, v, until in items:
            await self.defer(delivery_id=i, version=v, until=until)

    @staticmethod
    def attempt_op(**kwargs: Any) -> tuple[str, Doc]:
        return ("attempt", kwargs)

    @staticmethod
    def wake_op(**kwargs: Any) -> tuple[str, Doc]:
        return ("wake", kwargs)

    async def write(self, *, ops: list[tuple[str, Doc]]) -> None:
        self.writes.append(len(ops))
        for kind, kw in ops:
            if kind == "attempt":
                await self.record_attempt(**kw)
                continue
            for d in self.dels.values():
                if (
                    d["subscription_id"] == kw["subscription_id"]
                    and d["order_key"] == kw["order_key"]
                    and d["status"] == "pending"
                    and d["seq"] > kw["after_seq"]
                    and d["next_attempt_at"] is not None
                    and d["next_attempt_at"] > kw["now"]
                ):
                    d["next_attempt_at"] = kw["now"]
                    d["version"] += 1

    async def head_of_key(self, *, subscription_id: str, order_key: str) -> Doc | None:
        rows = [
            d
            for d in self.dels.values()
            if d["subscription_id"] == subscription_id
            and d["order_key"] == order_key
            and d["status"] == "pending"
        ]
        return copy.deepcopy(min(rows, key=lambda d: d["seq"])) if rows else None

    async def claim(self, *, delivery_id: str, version: int, until: datetime) -> Doc | None:
        d = self.dels.get(delivery_id)
        if d is None or d["status"] != "pending" or d["version"] != version:
            return None
        d.update(next_attempt_at=until, version=version + 1)
        return copy.deepcopy(d)

    async def defer(self, *, delivery_id: str, version: int, until: datetime) -> None:
        d = self.dels[delivery_id]
        if d["status"] == "pending" and d["version"] == version:
            d.update(next_attempt_at=until, version=version + 1)

    async def record_attempt(
        self,
        *,
        delivery_id: str,
        attempt: Doc,
        status: str,
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        d = self.dels[delivery_id]
        d["attempts"].append(copy.deepcopy(attempt))
        d.update(
            status=status,
            next_attempt_at=next_attempt_at,
            updated_at=at,
            last_status_code=attempt.get("status_code"),
            last_error=attempt.get("error"),
        )
        d["version"] += 1
        d["attempt_count"] += 1

    async def finish_without_attempt(
        self, *, delivery_id: str, status: str, reason: str, at: datetime
    ) -> None:
        self.dels[delivery_id].update(status=status, next_attempt_at=None, last_error=reason)

    async def wake_next(self, *, subscription_id: str, order_key: str, now: datetime) -> None:
        head = await self.head_of_key(subscription_id=subscription_id, order_key=order_key)
        if head is not None and self.dels[head["_id"]]["attempt_count"] == 0:
            self.dels[head["_id"]]["next_attempt_at"] = now

    async def get_delivery(self, *, delivery_id: str) -> Doc | None:
        return copy.deepcopy(self.dels.get(delivery_id))

    # -- subscription CRUD (API tests) --------------------------------------------------------

    async def create_subscription(self, *, doc: Doc) -> None:
        self.subs[doc["_id"]] = copy.deepcopy(doc)

    async def list_subscriptions(self, *, workspace_id: str) -> list[Doc]:
        return [copy.deepcopy(s) for s in self.subs.values() if s["workspace_id"] == workspace_id]

    async def get_subscription(self, *, workspace_id: str, subscription_id: str) -> Doc | None:
        s = self.subs.get(subscription_id)
        return copy.deepcopy(s) if s and s["workspace_id"] == workspace_id else None

    async def update_subscription(
        self, *, workspace_id: str, subscription_id: str, changes: Doc
    ) -> Doc | None:
        s = self.subs.get(subscription_id)
        if not s or s["workspace_id"] != workspace_id:
            return None
        s.update(changes)
        return copy.deepcopy(s)

    async def delete_subscription(self, *, workspace_id: str, subscription_id: str) -> bool:
        return self.subs.pop(subscription_id, None) is not None

    async def list_deliveries(
        self, *, subscription_id: str, limit: int, status: str | None = None
    ) -> list[Doc]:
        rows = [
            d
            for d in self.dels.values()
            if d["subscription_id"] == subscription_id and status in (None, d["status"])
        ]
        rows.sort(key=lambda d: -d["seq"])
        return [copy.deepcopy(d) for d in rows[:limit]]
