"""Webhook delivery through the whole stack in simulated time, to real local subscribers that
verify every delivery with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from standardwebhooks.webhooks import Webhook

from outbound_core.devstack import DevStack
from outbound_core.topics import LEADS
from tests.conftest import wait_until
from tests.support.subscriber import Received, Subscriber

pytestmark = pytest.mark.e2e

CONTACTS = [
    {"phone": "+12127364001", "name": "Ann", "sim_outcomes": "interested"},
    {"phone": "+12127364002", "name": "Bo", "sim_outcomes": "no_answer,busy,interested"},
    {"phone": "+12127364003", "name": "Cal", "sim_outcomes": "no_answer"},
    {"phone": "+12127364004", "name": "Di", "sim_outcomes": "busy,not_interested"},
]
TERMINAL = {"completed", "not_reachable"}


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    started: list[Subscriber] = []
    yield started
    for s in started:
        s.stop()


def _hook(api: httpx.Client, sub: Subscriber, events: list[str] | None = None) -> dict[str, Any]:
    r = api.post("/v1/webhooks", json={"url": sub.url, "events": events or ["*"]})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    sub.secret = body["secret"]
    return body


def _campaign(api: httpx.Client, contacts: list[dict[str, str]]) -> str:
    agent = api.post(
        "/v1/agents", json={"name": "Hooks", "language": "en-US", "greeting": "Hi {{NAME}}."}
    )
    assert agent.status_code == 201, agent.text
    r = api.post(
        "/v1/campaigns",
        json={
            "name": "Webhooks",
            "script_id": agent.json()["id"],
            "language": "en-US",
            "contacts": contacts,
            "max_attempts": 3,
            "retry_interval_minutes": 30,
            "calling_hours": {"start": "00:00", "end": "00:00"},
        },
    )
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    assert api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    return cid


def _published_lead_changes(stack: DevStack, cid: str) -> dict[str, list[int]]:
    """Every lead change the planner published for campaign ``cid`` (the truth the subscribers
    are compared with), as lead id → seqs in publication order, read back from the broker."""

    async def read() -> dict[str, list[int]]:
        consumer = AIOKafkaConsumer(
            LEADS.name,
            bootstrap_servers=stack.kafka_url,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[str, set[int]] = defaultdict(set)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1500)
                if not batch:
                    break
                for records in batch.values():
                    for rec in records:
                        try:
                            env = json.loads(rec.value)
                        except ValueError:
                            continue  # poison injected by the dead-letter test on this topic
                        if not isinstance(env, dict):
                            continue
                        data = env.get("data", {})
                        if env.get("type") == "lead.updated" and data.get("campaign_id") == cid:
                            out[data["task_id"]].add(int(data["seq"]))
        finally:
            await consumer.stop()
        return {k: sorted(v) for k, v in out.items()}

    return asyncio.run(read())


def _unique(received: list[Received]) -> list[Received]:
    """Deduplicate by webhook-id, as the scheme asks subscribers to (first copy wins)."""
    seen: set[str] = set()
    out = []
    for r in received:
        if r.webhook_id not in seen:
            seen.add(r.webhook_id)
            out.append(r)
    return out


def _lead_updates(sub: Subscriber, cid: str) -> list[Received]:
    return [
        r for r in sub.of_type("campaign.lead.updated") if r.payload["data"]["campaign_id"] == cid
    ]


def _all_final(sub: Subscriber, cid: str, n: int) -> bool:
    latest: dict[str, str] = {}
    for r in _lead_updates(sub, cid):
        latest[r.payload["data"]["lead_id"]] = r.payload["data"]["status"]
    return len(latest) == n and set(latest.values()) <= TERMINAL


def test_every_lead_change_arrives_once_in_order_even_through_an_outage(
    api: httpx.Client, stack: DevStack, subscribers: list[Subscriber]
) -> None:
    healthy = Subscriber().start()
    # Down for its first 12 requests, then back: the retries (5 s, 5 min, 30 min … on the
    # virtual clock) must bring it everything.
    flaky = Subscriber(fail_first=12).start()
    subscribers += [healthy, flaky]
    hooks = [_hook(api, healthy), _hook(api, flaky, ["campaign.*", "call.*"])]

    cid = _campaign(api, CONTACTS)
    wait_until(
        lambda: api.get(f"/v1/campaigns/{cid}").json()["status"] == "completed",
        timeout=120,
        message="campaign completed",
    )
    for sub in (healthy, flaky):
        wait_until(lambda s=sub: _all_final(s, cid, len(CONTACTS)), timeout=90, message="finals")
    assert flaky.attempts > len(flaky.received), "the flaky subscriber did fail at first"

    published = _published_lead_changes(stack, cid)
    assert len(published) == len(CONTACTS)
    for sub in (healthy, flaky):
        received = _lead_updates(sub, cid)
        assert received and all(r.verified for r in received), "every delivery must verify"
        seqs: dict[str, list[int]] = defaultdict(list)
        for r in _unique(received):
            seqs[r.payload["data"]["lead_id"]].append(r.payload["data"]["seq"])
        # Every published change, exactly once per webhook-id, in the order it happened.
        assert dict(seqs) == published

    # The payload carries what a CRM needs.
    last = {
        r.payload["data"]["name"]: r.payload["data"] for r in _unique(_lead_updates(flaky, cid))
    }
    bo = last["Bo"]
    assert (bo["status"], bo["last_disposition"]) == ("completed", "interested")
    assert bo["attempt"] >= 1  # the attempt that reached a person (numbering is the planner's)
    assert bo["campaign_id"] == cid
    assert bo["current_phone"] == "+12127364002"
    assert {"pass", "next_attempt_at", "variables"} <= set(bo)

    # The other event types reached the subscriber that asked for them.
    types = {r.payload["type"] for r in flaky.received}
    assert {"campaign.status.changed", "call.completed", "call.disposition_set"} <= types
    statuses = [
        r.payload["data"]["status"]
        for r in _unique(flaky.of_type("campaign.status.changed"))
        if r.payload["data"]["campaign_id"] == cid
    ]
    assert statuses[0] == "running"
    wait_until(
        lambda: (
            "completed"
            in [
                r.payload["data"]["status"]
                for r in flaky.of_type("campaign.status.changed")
                if r.payload["data"]["campaign_id"] == cid
            ]
        ),
        timeout=60,
        message="campaign.status.changed completed",
    )

    # The delivery log shows the failed attempts and their status codes.
    log = api.get(f"/v1/webhooks/{hooks[1]['id']}/deliveries", params={"limit": 500}).json()
    codes = [a["status_code"] for d in log for a in d["attempts"]]
    assert codes.count(503) == 12
    assert all(d["status"] == "succeeded" for d in log)


def test_dead_deliveries_are_listed_and_resent(
    api: httpx.Client, subscribers: list[Subscriber]
) -> None:
    sub = Subscriber(status_code=500).start()
    subscribers.append(sub)
    hook = _hook(api, sub)
    wid = hook["id"]
    # A ping gets one attempt only, so a failing one is dead at once.
    pings = [api.post(f"/v1/webhooks/{wid}/test").json() for _ in range(3)]
    assert [p["status"] for p in pings] == ["dead"] * 3
    dead = api.get(f"/v1/webhooks/{wid}/deliveries", params={"status": "dead"}).json()
    assert {d["id"] for d in dead} == {p["id"] for p in pings}
    assert api.get(f"/v1/webhooks/{wid}/deliveries", params={"status": "succeeded"}).json() == []

    sub.status_code = 200
    one = api.post(f"/v1/webhooks/{wid}/deliveries/{pings[0]['id']}/resend")
    assert one.status_code == 200, one.text
    wait_until(
        lambda: api.get(f"/v1/webhooks/{wid}/deliveries", params={"status": "succeeded"}).json(),
        timeout=30,
        message="resent delivery succeeded",
    )
    again = api.post(f"/v1/webhooks/{wid}/deliveries/{pings[0]['id']}/resend")
    assert again.status_code == 409, again.text

    bulk = api.post(f"/v1/webhooks/{wid}/deliveries/resend")
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["resent"] == 2
    done = wait_until(
        lambda: (
            len(
                ok := api.get(
                    f"/v1/webhooks/{wid}/deliveries", params={"status": "succeeded"}
                ).json()
            )
            == 3
            and ok
        ),
        timeout=30,
        message="all resent",
    )
    assert all(d["resend_count"] == 1 for d in done)
    ok = [r for r in sub.received if r.verified]
    # Each resend carries the same webhook-id as the original (the subscriber's idempotency key).
    assert {r.webhook_id for r in ok} == {r.webhook_id for r in sub.received}
    assert len({r.webhook_id for r in ok}) == 3


def test_410_disables_the_endpoint(api: httpx.Client, subscribers: list[Subscriber]) -> None:
    sub = Subscriber(status_code=410).start()
    subscribers.append(sub)
    wid = _hook(api, sub)["id"]
    r = api.post(f"/v1/webhooks/{wid}/test")
    assert r.json()["status"] == "failed"
    shown = api.get(f"/v1/webhooks/{wid}").json()
    assert (shown["status"], shown["enabled"]) == ("disabled_gone", False)
    # Nothing more is sent to it: a new campaign's changes make no deliveries for it.
    before = sub.attempts
    cid = _campaign(api, CONTACTS[:1])
    wait_until(
        lambda: api.get(f"/v1/campaigns/{cid}").json()["status"] == "completed",
        timeout=90,
        message="campaign completed",
    )
    assert sub.attempts == before
    # Re-enabling it makes it active again.
    again = api.patch(f"/v1/webhooks/{wid}", json={"enabled": True}).json()
    assert again["status"] == "active"


def test_rotation_signs_with_both_secrets(api: httpx.Client, subscribers: list[Subscriber]) -> None:
    sub = Subscriber().start()
    subscribers.append(sub)
    hook = _hook(api, sub)
    old = hook["secret"]
    rotated = api.post(f"/v1/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert "secret" not in api.get(f"/v1/webhooks/{hook['id']}").json()
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["previous_secret_expires_at"]

    sub.secret = new
    assert api.post(f"/v1/webhooks/{hook['id']}/test").json()["status"] == "succeeded"
    [got] = sub.received
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # A receiver still holding the old secret and one already on the new one both verify.
    assert Webhook(new).verify(got.body, got.headers)["type"] == "ping"
    assert Webhook(old).verify(got.body, got.headers)["type"] == "ping"
    assert got.verified
