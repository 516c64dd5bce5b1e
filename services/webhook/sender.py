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
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from outbound_core.clock import Clock, utc
from webhook.domain import outcome_of, parse_retry_after, retry_delay
from webhook.metrics import DELIVERIES, DELIVERY_SECONDS
from webhook.repository import Doc, WebhookRepository
from webhook.settings import WebhookSettings
from webhook.signing import signed_headers
from webhook.urlsafety import UnsafeURL, check_url, pinned_request

log = structlog.get_logger(__name__)


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
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._keys: set[tuple[str, str]] = set()
        self._per_sub: Counter[str] = Counter()

    def _claim_until(self, now: datetime) -> datetime:
        # The claim must outlast one attempt; the attempt takes real seconds, the clock may run
        # faster than real time.
        real = self.settings.request_timeout_seconds + 5.0
        return now + timedelta(seconds=real * max(1.0, self.clock.speed))

    async def tick(self) -> None:
        """Start sending every due delivery that order and capacity allow."""
        free = self.settings.max_concurrency - len(self._tasks)
        if free <= 0:
            return
        cap = self.settings.per_endpoint_concurrency
        now = self.clock.now()
        saturated = [s for s, n in self._per_sub.items() if n >= cap]
        # Read only a few: on the embedded database every returned document costs, and this
        # runs again after every finished attempt, so a short read keeps the pipeline moving.
        limit = min(self.settings.sender_batch_size, free + cap, 64)
        due = await self.repo.due(now=now, limit=limit, exclude=saturated)
        # Choose in memory first (one per key, within the caps), reserving the key and the
        # endpoint's share; then check order and claim the chosen ones concurrently: on the
        # embedded database each check is a round trip of a few milliseconds.
        chosen: list[Doc] = []
        waiting: list[Doc] = []
        for d in due:
            if len(chosen) >= free:
                break
            key = (d["subscription_id"], d["order_key"])
            if d["_id"] in self._tasks:
                continue
            if key in self._keys:
                # Behind a delivery of its key that is being sent: out of the due window until
                # that one finishes and wakes it, so it never hides other endpoints' deliveries.
                waiting.append(d)
                continue
            if self._per_sub[key[0]] >= cap:
                continue
            self._reserve(key)
            chosen.append(d)
        until = self._claim_until(now)
        await asyncio.gather(
            *(self._try_start(d, now) for d in chosen),
            *(
                self.repo.defer(delivery_id=d["_id"], version=d.get("version", 0), until=until)
                for d in waiting
            ),
        )

    def _reserve(self, key: tuple[str, str]) -> None:
        self._keys.add(key)
        self._per_sub[key[0]] += 1

    def _release(self, key: tuple[str, str]) -> None:
        self._keys.discard(key)
        self._per_sub[key[0]] -= 1
        if self._per_sub[key[0]] <= 0:
            del self._per_sub[key[0]]

    async def _try_start(self, d: Doc, now: datetime) -> None:
        key = (d["subscription_id"], d["order_key"])
        try:
            claimed = await self._claim_head(d, now)
        except Exception:
            self._release(key)
            raise
        if claimed is None:
            self._release(key)
            return
        self._tasks[claimed["_id"]] = asyncio.create_task(
            self._run(claimed), name=f"webhook-send-{claimed['_id']}"
        )

    async def _claim_head(self, d: Doc, now: datetime) -> Doc | None:
        """Claim the oldest pending delivery of ``d``'s key: ``d`` itself, or the older one it
        must wait for when that one is due too. A ``d`` behind a not-yet-due delivery is
        deferred to it; the older one wakes it when it finishes."""
        head = await self.repo.head_of_key(
            subscription_id=d["subscription_id"], order_key=d["order_key"]
        )
        if head is None:
            return None
        if head["_id"] != d["_id"]:
            head_at = head.get("next_attempt_at")
            if head_at is None or utc(head_at) > now:
                if head_at is not None:
                    await self.repo.defer(
                        delivery_id=d["_id"], version=d.get("version", 0), until=utc(head_at)
                    )
                return None
            if head["_id"] in self._tasks:
                return None
            d = head
        return await self.repo.claim(
            delivery_id=d["_id"], version=d.get("version", 0), until=self._claim_until(now)
        )

    async def _run(self, d: Doc) -> None:
        key = (d["subscription_id"], d["order_key"])
        try:
            await self.attempt(d)
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

    async def attempt(self, d: Doc) -> None:
        """One attempt at a claimed delivery, recorded with its outcome."""
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
            await self._wake_next(d)
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
        await self.repo.record_attempt(
            delivery_id=d["_id"], attempt=attempt, status=status, next_attempt_at=next_at, at=now
        )
        if status != "pending":
            await self._wake_next(d)

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

    async def _wake_next(self, d: Doc) -> None:
        await self.repo.wake_next(
            subscription_id=d["subscription_id"], order_key=d["order_key"], now=self.clock.now()
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
