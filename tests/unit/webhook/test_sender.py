from __future__ import annotations

import asyncio
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from webhook_fakes import FakeRepo

from outbound_core.events import Envelope, LeadUpdated
from webhook import urlsafety
from webhook.handlers import WebhookHandlers
from webhook.sender import Sender
from webhook.settings import WebhookSettings
from webhook.signing import new_secret


class ManualClock:
    speed = 1.0

    def __init__(self) -> None:
        self.t = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def real_seconds(self, virtual: Any) -> float:
        return 0.0

    async def sleep(self, virtual: Any) -> None:
        return None


class Subscriber:
    """Records requests; answers with ``responses[url]`` (a list consumed in order)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.responses: dict[str, list[httpx.Response]] = {}
        self.hang: set[str] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in self.hang:
            await asyncio.sleep(3600)
        self.requests.append(request)
        queue = self.responses.get(url)
        return queue.pop(0) if queue else httpx.Response(200, text="ok")


@pytest.fixture
def world() -> tuple[FakeRepo, Sender, WebhookHandlers, Subscriber, ManualClock]:
    repo = FakeRepo()
    clock = ManualClock()
    sub = Subscriber()
    settings = WebhookSettings(allow_private_urls=True, retry_jitter=0, request_timeout_seconds=0.5)
    client = httpx.AsyncClient(transport=httpx.MockTransport(sub), follow_redirects=False)
    sender = Sender(repo=repo, settings=settings, clock=clock, client=client)  # type: ignore[arg-type]
    handlers = WebhookHandlers(repo=repo, now=clock.now, kick=lambda: None)  # type: ignore[arg-type]
    return repo, sender, handlers, sub, clock


def add_sub(repo: FakeRepo, sid: str, url: str, events: list[str] | None = None) -> str:
    secret = new_secret()
    repo.subs[sid] = {
        "_id": sid,
        "org_id": "org_1",
        "workspace_id": "ws_1",
        "url": url,
        "events": events or ["*"],
        "enabled": True,
        "status": "active",
        "secret": secret,
    }
    return secret


def lead_env(
    clock: ManualClock, task: str, seq: int, ws: str = "ws_1"
) -> tuple[Envelope, LeadUpdated]:
    p = LeadUpdated(task_id=task, campaign_id="cmp_1", seq=seq, status="queued")
    env = Envelope(
        id=f"evt_{task}_{seq}",
        type=p.TYPE,
        occurred_at=clock.now(),
        producer="test",
        org_id="org_1",
        workspace_id=ws,
        correlation_id="c",
        data=p.model_dump(mode="json"),
    )
    return env, p


async def drain(sender: Sender, rounds: int = 20) -> None:
    for _ in range(rounds):
        await sender.tick()
        await asyncio.sleep(0.01)


async def test_delivery_is_signed_and_idempotent(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    secret = add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    env, p = lead_env(clock, "tsk_1", 1)
    await handlers.on_lead_updated(env, p)
    await handlers.on_lead_updated(env, p)  # Kafka redelivery
    assert len(repo.dels) == 1
    await drain(sender)
    [req] = sub.requests
    body = req.content
    payload = Webhook(secret).verify(body, dict(req.headers))
    assert payload["type"] == "campaign.lead.updated"
    assert payload["data"]["lead_id"] == "tsk_1"
    assert next(iter(repo.dels.values()))["status"] == "succeeded"


async def test_filters_and_workspace_isolation(world: Any) -> None:
    repo, _sender, handlers, _sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a", ["call.*"])
    add_sub(repo, "wh_b", "http://127.0.0.1:9/b", ["campaign.lead.updated"])
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await handlers.on_lead_updated(*lead_env(clock, "tsk_2", 1, ws="ws_other"))
    assert [d["subscription_id"] for d in repo.dels.values()] == ["wh_b"]


async def test_retry_then_dead_after_schedule(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    sub.responses["http://127.0.0.1:9/a"] = [
        httpx.Response(503, headers={"retry-after": "60"}) for _ in range(10)
    ]
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await drain(sender, 3)
    [d] = repo.dels.values()
    assert d["status"] == "pending"
    assert d["next_attempt_at"] == clock.now() + timedelta(seconds=60)  # Retry-After > 5 s
    for _ in range(6):
        clock.t += timedelta(hours=11)
        await drain(sender, 3)
    assert d["status"] == "dead"
    assert d["attempt_count"] == 7
    assert len({r.headers["webhook-id"] for r in sub.requests}) == 1  # stable across retries


async def test_410_disables_subscription(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    sub.responses["http://127.0.0.1:9/a"] = [httpx.Response(410)]
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await drain(sender, 3)
    assert repo.subs["wh_a"]["status"] == "disabled_gone"
    assert not repo.subs["wh_a"]["enabled"]
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 2))
    assert len(repo.dels) == 1


async def test_same_key_in_order_other_keys_independent(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    sub.responses["http://127.0.0.1:9/a"] = [httpx.Response(500)]  # the first send fails
    for seq in (1, 2, 3):
        await handlers.on_lead_updated(*lead_env(clock, "tsk_1", seq))
    await handlers.on_lead_updated(*lead_env(clock, "tsk_2", 1))
    await drain(sender)
    sent = [json.loads(r.content)["data"] for r in sub.requests]
    # tsk_1 seq 1 failed and waits 5 s; tsk_1 2 and 3 wait behind it; tsk_2 went out
    assert [(d["lead_id"], d["seq"]) for d in sent] == [("tsk_1", 1), ("tsk_2", 1)]
    clock.t += timedelta(seconds=6)
    await drain(sender)
    sent = [json.loads(r.content)["data"] for r in sub.requests]
    assert [(d["lead_id"], d["seq"]) for d in sent if d["lead_id"] == "tsk_1"] == [
        ("tsk_1", 1),
        ("tsk_1", 1),
        ("tsk_1", 2),
        ("tsk_1", 3),
    ]


async def test_hanging_endpoint_does_not_block_others(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_slow", "http://127.0.0.1:9/slow")
    add_sub(repo, "wh_fast", "http://127.0.0.1:9/fast")
    sub.hang.add("http://127.0.0.1:9/slow")
    for i in range(20):
        await handlers.on_lead_updated(*lead_env(clock, f"tsk_{i}", 1))
    await drain(sender, 10)
    fast = [r for r in sub.requests if r.url.path == "/fast"]
    assert len(fast) == 20
    assert (
        sum(
            1
            for d in repo.dels.values()
            if d["subscription_id"] == "wh_fast" and d["status"] == "succeeded"
        )
        == 20
    )
    await sender.close()


async def test_the_connection_goes_to_the_checked_address(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sender, handlers, sub, clock = world
    sender.settings = WebhookSettings(allow_private_urls=False, retry_jitter=0)
    answers = iter(["93.184.215.14", "127.0.0.1"])  # a rebinding DNS server

    async def rebinding(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address(next(answers))]

    monkeypatch.setattr(urlsafety, "resolve", rebinding)
    add_sub(repo, "wh_a", "http://hooks.example.com/a")
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await drain(sender, 3)
    [req] = sub.requests
    assert req.url.host == "93.184.215.14"
    assert req.headers["host"] == "hooks.example.com"
    # The next send resolves again; the private answer is refused, never connected to.
    await handlers.on_lead_updated(*lead_env(clock, "tsk_2", 1))
    await drain(sender, 3)
    assert len(sub.requests) == 1
    refused = next(d for d in repo.dels.values() if d["order_key"] == "tsk_2")
    assert "127.0.0.1, a loopback address" in refused["last_error"]


async def test_rotation_grace_sends_both_signatures(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    new = add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    old = new_secret()
    repo.subs["wh_a"].update(
        previous_secret=old, previous_secret_expires_at=clock.now() + timedelta(hours=1)
    )
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await drain(sender, 3)
    clock.t += timedelta(hours=2)  # the grace period is over
    await handlers.on_lead_updated(*lead_env(clock, "tsk_2", 1))
    await drain(sender, 3)
    first, second = sub.requests
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(first.content, dict(first.headers))
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(second.content, dict(second.headers))


async def test_an_endpoint_failing_for_days_is_disabled(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    sub.responses["http://127.0.0.1:9/a"] = [httpx.Response(500) for _ in range(100)]
    for day in range(7):
        await handlers.on_lead_updated(*lead_env(clock, f"tsk_{day}", 1))
        await drain(sender, 3)
        clock.t += timedelta(days=1)
        await drain(sender, 3)
    s = repo.subs["wh_a"]
    assert (s["status"], s["enabled"]) == ("disabled_failing", False)
    assert s["failing_since"] is not None
    # Its pending deliveries are dead, not dropped: they can be re-sent once it is fixed.
    clock.t += timedelta(days=1)
    await drain(sender, 3)
    assert {d["status"] for d in repo.dels.values()} == {"dead"}


async def test_a_success_clears_the_failing_run(world: Any) -> None:
    repo, sender, handlers, sub, clock = world
    add_sub(repo, "wh_a", "http://127.0.0.1:9/a")
    sub.responses["http://127.0.0.1:9/a"] = [httpx.Response(500)]
    await handlers.on_lead_updated(*lead_env(clock, "tsk_1", 1))
    await drain(sender, 3)
    assert repo.subs["wh_a"]["failing_since"] == clock.now()
    clock.t += timedelta(seconds=10)
    await drain(sender, 3)
    assert repo.subs["wh_a"]["failing_since"] is None


async def test_deliveries_queued_behind_a_hanging_send_do_not_hide_other_endpoints(
    world: Any,
) -> None:
    repo, sender, handlers, sub, clock = world
    sender.settings = WebhookSettings(allow_private_urls=True, sender_batch_size=4)
    add_sub(repo, "wh_slow", "http://127.0.0.1:9/slow", ["campaign.lead.updated"])
    sub.hang.add("http://127.0.0.1:9/slow")
    for seq in range(1, 13):  # one lead's changes, all due, all behind the hanging first one
        await handlers.on_lead_updated(*lead_env(clock, "tsk_1", seq))
    add_sub(repo, "wh_fast", "http://127.0.0.1:9/fast", ["campaign.lead.updated"])
    await handlers.on_lead_updated(*lead_env(clock, "tsk_2", 1))
    await drain(sender, 10)
    assert [r.url.path for r in sub.requests] == ["/fast"]
    await sender.close()
