"""The sender: sends due deliveries, signs them, records attempts and schedules retries.

Order: deliveries of one (subscription, order key) go out strictly by ``seq`` — only the oldest
pending one of a key may be sent; the others are deferred behind it and woken when it finishes.
Isolation: every send is its own asyncio task, bounded overall and per subscription, so a slow
or dead endpoint only ever holds its own share of the capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from outbound_core.clock import Clock, utc
from webhook.batching import GroupWriter
from webhook.domain import outcome_of, parse_retry_after, retry_delay
from webhook.metrics import DELIVERIES, DELIVERY_SECONDS, EVENT_TO_DELIVERY_SECONDS
from webhook.repository import Doc, WebhookRepository
from webhook.settings import WebhookSettings
from webhook.signing import signed_headers
from webhook.urlsafety import UnsafeURL, check_url, pinned_request

log = structlog.get_logger(__name__)


class Missing:
    """Marks an argument that was not given (``None`` means "no such subscription")."""


MISSING = Missing()


class Sender:
    def __init__(
        self,
        *,
        repo: WebhookRepository,
        settings: WebhookSettings,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.clock = clock
        self.client = client or httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.request_timeout_seconds),
            limits=httpx.Limits(max_connections=settings.max_concurrency * 2),
            headers={"user-agent": "Outbound-Webhooks/1.0"},
        )
        self.kick: Callable[[], None] = lambda: None
        self.writer = GroupWriter(lambda ops: repo.write(ops=ops))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._keys: set[tuple[str, str]] = set()
        self._per_sub: Counter[str] = Counter()

    def _claim_until(self, now: datetime) -> datetime:
        # The claim must outlast one attempt; the attempt takes real seconds, the clock may run
        # faster than real time.
        real = self.settings.request_timeout_seconds + 5.0
        return now + timedelta(seconds=real * max(1.0, self.clock.speed))

    async def tick(self) -> None:
        """Start sending every due delivery that order and capacity allow.

        A handful of round trips per tick whatever the number of deliveries it starts: the
        due read, one read of the pending deliveries of the keys involved (order), one of
        their subscriptions, one bulk claim plus its read-back, one bulk defer."""
        free = self.settings.max_concurrency - len(self._tasks)
        if free <= 0:
            return
        cap = self.settings.per_endpoint_concurrency
        now = self.clock.now()
        saturated = [s for s, n in self._per_sub.items() if n >= cap]
        limit = min(self.settings.sender_batch_size, max(free + cap, 64))
        due = await self.repo.due(now=now, limit=limit, exclude=saturated)
        until = self._claim_until(now)
        defers: list[tuple[str, int, datetime]] = []
        candidates: dict[tuple[str, str], Doc] = {}
        for d in due:
            key = (d["subscription_id"], d["order_key"])
            if d["_id"] in self._tasks:
                continue
            if key in self._keys:
                # Behind a delivery of its key that is being sent: out of the due window until
                # that one finishes and wakes it, so it never hides other endpoints' deliveries.
                defers.append((d["_id"], d.get("version", 0), until))
                continue
            other = candidates.get(key)
            if other is None or d["seq"] < other["seq"]:
                if other is not None:
                    defers.append((other["_id"], other.get("version", 0), until))
                candidates[key] = d
            else:
                defers.append((d["_id"], d.get("version", 0), until))
        # Order: only the oldest pending delivery of a key may go. One read for all keys.
        heads: dict[tuple[str, str], Doc] = {}
        for p in await self.repo.pending_of_keys(keys=list(candidates)):
            key = (p["subscription_id"], p["order_key"])
            if key not in heads or p["seq"] < heads[key]["seq"]:
                heads[key] = p
        chosen: dict[str, tuple[tuple[str, str], int]] = {}
        for key, d in candidates.items():
            if len(chosen) >= free:
                break
            if self._per_sub[key[0]] >= cap:
                continue
            head = heads.get(key)
            if head is None:
                continue  # finished meanwhile
            if head["_id"] != d["_id"]:
                head_at = head.get("next_attempt_at")
                if head_at is None or utc(head_at) > now:
                    # Behind an older delivery that is not due (a retry): wait for it; it
                    # wakes this one when it finishes.
                    if head_at is not None:
                        defers.append((d["_id"], d.get("version", 0), utc(head_at)))
                    continue
                if head["_id"] in self._tasks:
                    continue
                d = head  # the older one is due too: it goes first (its version is read back)
            self._reserve(key)
            chosen[d["_id"]] = (key, int(head.get("version", 0)))
        claimed = await self._claim(chosen, until)
        subs = await self.repo.subscriptions_by_ids(
            ids=sorted({d["subscription_id"] for d in claimed})
        )
        for d in claimed:
            self._tasks[d["_id"]] = asyncio.create_task(
                self._run(d, subs.get(d["subscription_id"])), name=f"webhook-send-{d['_id']}"
            )
        if defers:
            await self.repo.defer_many(items=defers)

    async def _claim(
        self, chosen: dict[str, tuple[tuple[str, str], int]], until: datetime
    ) -> list[Doc]:
        """Claim the chosen deliveries; release the keys of those another sender won."""
        token = uuid.uuid4().hex
        items = [(i, v) for i, (_, v) in chosen.items()]
        try:
            claimed = await self.repo.claim_many(items=items, until=until, token=token)
        except Exception:
            for key, _ in chosen.values():
                self._release(key)
            raise
        won = {d["_id"] for d in claimed}
        for i, (key, _) in chosen.items():
            if i not in won:
                self._release(key)
        return claimed

    def _reserve(self, key: tuple[str, str]) -> None:
        self._keys.add(key)
        self._per_sub[key[0]] += 1

    def _release(self, key: tuple[str, str]) -> None:
        self._keys.discard(key)
        self._per_sub[key[0]] -= 1
        if self._per_sub[key[0]] <= 0:
            del self._per_sub[key[0]]

    async def _run(self, d: Doc, sub: Doc | None) -> None:
        key = (d["subscription_id"], d["order_key"])
        try:
            await self.attempt(d, sub=sub)
        except Exception:
            log.exception("delivery attempt failed unexpectedly", delivery_id=d["_id"])
        finally:
            self._tasks.pop(d["_id"], None)
            self._release(key)
            self.kick()

    async def send_now(self, d: Doc) -> Doc | None:
        """Send a delivery inline (the test endpoint) and return it as stored afterwards."""
        claimed = await self.repo.claim(
            delivery_id=d["_id"],
            version=d.get("version", 0),
            until=self._claim_until(self.clock.now()),
        )
        if claimed is not None:
            await self.attempt(claimed)
        return await self.repo.get_delivery(delivery_id=d["_id"])

    async def attempt(self, d: Doc, *, sub: Doc | Missing | None = MISSING) -> None:
        """One attempt at a claimed delivery, recorded with its outcome. ``sub`` is the
        subscription as the tick read it (read here when not given)."""
        if isinstance(sub, Missing):
            sub = await self.repo.subscription_by_id(subscription_id=d["subscription_id"])
        if sub is None or (not sub.get("enabled") and d["event_type"] != "ping"):
            # Dead rather than dropped: once the endpoint is enabled again they can be listed
            # and re-sent; nothing vanishes silently.
            reason = (
                "subscription deleted"
                if sub is None
                else f"subscription disabled ({sub.get('status', 'disabled')})"
            )
            await self.repo.finish_without_attempt(
                delivery_id=d["_id"], status="dead", reason=reason, at=self.clock.now()
            )
            DELIVERIES.labels("cancelled").inc()
            await self.writer.submit([self._wake_op(d)])
            return

        number = int(d.get("attempt_count", 0)) + 1
        started_at = self.clock.now()
        result = await self._post(sub, d)
        outcome = outcome_of(result.get("status_code"))
        if (result.get("error") or "").startswith("refused:"):
            DELIVERIES.labels("refused").inc()
        attempt = {"number": number, "at": started_at, **result}

        now = self.clock.now()
        next_at: datetime | None = None
        if outcome == "succeeded":
            status = "succeeded"
            if d.get("created_at") is not None:
                EVENT_TO_DELIVERY_SECONDS.observe(
                    max(0.0, self.clock.real_seconds(now - utc(d["created_at"])))
                )
            if sub.get("failing_since") is not None:
                await self.repo.mark_healthy(subscription_id=sub["_id"])
        elif outcome == "gone":
            status = "failed"
            attempt["error"] = "410 Gone: subscription disabled"
            await self.repo.mark_gone(subscription_id=sub["_id"], at=now)
            log.info("subscriber answered 410; subscription disabled", subscription_id=sub["_id"])
        else:
            await self._note_failure(sub, now)
            delay = retry_delay(
                # A re-sent delivery starts the schedule again.
                attempts_made=number - int(d.get("resend_base", 0)),
                schedule=self.settings.retry_schedule_seconds,
                retry_after=result.get("retry_after"),
                jitter=self.settings.retry_jitter,
                max_retry_after=self.settings.max_retry_after_seconds,
                max_attempts=d.get("max_attempts"),
            )
            status = "dead" if delay is None else "pending"
            next_at = None if delay is None else now + delay
            outcome = "dead" if delay is None else "retry"
        DELIVERIES.labels(outcome).inc()
        ops = [
            self.repo.attempt_op(
                delivery_id=d["_id"],
                attempt=attempt,
                status=status,
                next_attempt_at=next_at,
                at=now,
            )
        ]
        if status != "pending":
            ops.append(self._wake_op(d))
        # Batched with the other attempts finishing meanwhile (one round trip for all).
        await self.writer.submit(ops)

    async def _note_failure(self, sub: Doc, now: datetime) -> None:
        """Remember since when the endpoint fails; past the limit, disable it."""
        since = sub.get("failing_since")
        if since is None:
            await self.repo.mark_failing(subscription_id=sub["_id"], since=now)
            return
        if (now - utc(since)).total_seconds() >= self.settings.disable_after_failing_seconds:
            if await self.repo.disable_failing(subscription_id=sub["_id"], at=now):
                log.warning(
                    "endpoint failing for too long; subscription disabled",
                    subscription_id=sub["_id"],
                    failing_since=str(since),
                )

    def _wake_op(self, d: Doc) -> Any:
        return self.repo.wake_op(
            subscription_id=d["subscription_id"],
            order_key=d["order_key"],
            after_seq=int(d["seq"]),
            now=self.clock.now(),
        )

    async def _post(self, sub: Doc, d: Doc) -> dict[str, Any]:
        """POST the stored body; returns status_code/latency_ms/error/response/retry_after."""
        url = sub["url"]
        try:
            address = await check_url(
                url,
                allow_private=self.settings.allow_private_urls,
                require_https=self.settings.require_https,
            )
        except UnsafeURL as exc:
            return {"status_code": None, "latency_ms": 0.0, "error": f"refused: {exc}"}
        # Connect to the address just checked, not to a fresh resolution of the name.
        target = pinned_request(url, address)
        body: str = d["body"]
        headers = signed_headers(
            secret=sub["secret"],
            previous_secret=self._previous_secret(sub),
            msg_id=d["msg_id"],
            body=body,
            at=datetime.now(UTC),
        )
        headers.update(target.headers)
        out: dict[str, Any] = {"status_code": None, "error": None, "response": None}
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                async with self.client.stream(
                    "POST",
                    target.url,
                    content=body.encode(),
                    headers=headers,
                    extensions=target.extensions,
                ) as resp:
                    out["status_code"] = resp.status_code
                    out["retry_after"] = parse_retry_after(resp.headers.get("retry-after"))
                    out["response"] = await self._read_capped(resp)
        except TimeoutError:
            out["error"] = "timeout"
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"[:300]
        elapsed = time.perf_counter() - t0
        DELIVERY_SECONDS.observe(elapsed)
        out["latency_ms"] = round(elapsed * 1000, 2)
        return out

    def _previous_secret(self, sub: Doc) -> str | None:
        """The rotated-out secret while its grace period lasts (service clock)."""
        until = sub.get("previous_secret_expires_at")
        if sub.get("previous_secret") and until is not None and utc(until) > self.clock.now():
            return str(sub["previous_secret"])
        return None

    async def _read_capped(self, resp: httpx.Response) -> str:
        cap = self.settings.max_response_bytes
        buf = bytearray()
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) >= cap:
                break
        return bytes(buf[: min(cap, 1024)]).decode("utf-8", "replace")

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.client.aclose()
