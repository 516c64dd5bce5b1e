"""One campaign through all six services on the real broker and database, in simulated time:
one contact interested at once, one no-answer then interested on the retry, one no-answer
until its attempts are exhausted."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.conftest import wait_until
from tests.support.campaigns import wait_completed
from tests.support.subscriber import Subscriber

pytestmark = pytest.mark.e2e

CONTACTS = [
    {"phone": "+12127363001", "name": "Ada", "sim_outcomes": "interested", "plan": "gold"},
    {"phone": "+12127363002", "name": "Ben", "sim_outcomes": "no_answer,interested"},
    {"phone": "+12127363003", "name": "Cy", "sim_outcomes": "no_answer"},
]


def _agent(api: httpx.Client) -> str:
    r = api.post(
        "/v1/agents",
        json={
            "name": "Renewals",
            "language": "en-US",
            "greeting": "Hi {{NAME}}, this is Maya about your {{PLAN}} plan.",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def subscriber() -> Any:
    sub = Subscriber().start()
    yield sub
    sub.stop()


def test_three_contact_campaign_end_to_end(api: httpx.Client, subscriber: Subscriber) -> None:
    hook = api.post(
        "/v1/webhooks", json={"url": subscriber.url, "events": ["campaign.lead.updated"]}
    )
    assert hook.status_code == 201, hook.text
    subscriber.secret = hook.json()["secret"]
    assert subscriber.secret.startswith("whsec_")

    created = api.post(
        "/v1/campaigns",
        json={
            "name": "Skeleton",
            "script_id": _agent(api),
            "language": "en-US",
            "contacts": CONTACTS,
            "max_attempts": 3,
            "retry_interval_minutes": 60,
            "calling_hours": {"start": "00:00", "end": "00:00"},
        },
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "scheduled"
    assert campaign["total_contacts"] == 3
    cid = campaign["id"]

    started = api.patch(f"/v1/campaigns/{cid}", json={"action": "start"})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"

    done = wait_completed(api, cid)
    # 1 + 2 + 3 attempts; two conversations reached a person.
    assert done["calls_made"] == 6
    assert done["calls_connected"] == 2
    assert done["disposition_summary"] == {"interested": 2, "no_answer": 4}

    leads = {lead["name"]: lead for lead in api.get(f"/v1/campaigns/{cid}/leads").json()["data"]}
    assert (leads["Ada"]["status"], leads["Ada"]["last_disposition"], leads["Ada"]["attempts"]) == (
        "completed",
        "interested",
        1,
    )
    assert (leads["Ben"]["status"], leads["Ben"]["last_disposition"], leads["Ben"]["attempts"]) == (
        "completed",
        "interested",
        2,
    )
    assert (leads["Cy"]["status"], leads["Cy"]["last_disposition"], leads["Cy"]["attempts"]) == (
        "not_reachable",
        "not_reachable",
        3,
    )
    assert leads["Ada"]["variables"]["PLAN"] == "gold"

    # Signed webhook deliveries: every one verifies, and each lead's final state arrives.
    def final_states() -> dict[str, dict[str, Any]] | None:
        latest: dict[str, dict[str, Any]] = {}
        for r in subscriber.of_type("campaign.lead.updated"):
            data = r.payload["data"]
            if data["campaign_id"] == cid:
                latest[data["lead_id"]] = data
        terminal = {"completed", "not_reachable"}
        if len(latest) == 3 and all(d["status"] in terminal for d in latest.values()):
            return latest
        return None

    latest = wait_until(final_states, timeout=60, message="final lead webhooks")
    received = [
        r
        for r in subscriber.of_type("campaign.lead.updated")
        if r.payload["data"]["campaign_id"] == cid
    ]
    assert all(r.verified for r in received), "every delivery must carry a valid signature"
    assert len({r.webhook_id for r in received}) == len(received), "one delivery per webhook-id"
    by_name = {d["name"]: d for d in latest.values()}
    assert by_name["Ada"]["last_disposition"] == "interested"
    assert by_name["Cy"]["status"] == "not_reachable"
    assert by_name["Cy"]["attempt"] == 3
    # In order per lead: the sequence numbers a subscriber sees only grow.
    seqs: dict[str, list[int]] = defaultdict(list)
    for r in received:
        seqs[r.payload["data"]["lead_id"]].append(r.payload["data"]["seq"])
    for lead_id, s in seqs.items():
        assert s == sorted(s), f"lead {lead_id} updates arrived out of order: {s}"


def test_bad_http_bodies_get_clear_problems(api: httpx.Client) -> None:
    agent = _agent(api)
    r = api.post(
        "/v1/campaigns",
        json={
            "name": "Bad",
            "script_id": agent,
            "language": "en-US",
            "contacts": [{"phone": "+12127363001"}, {"phone": "12345"}, {"name": "no phone"}],
        },
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["contacts[1].phone", "contacts[2].phone"]

    r = api.post("/v1/campaigns", json={"name": "x", "language": "not a language"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"script_id", "language"} <= fields

    r = api.post(
        "/v1/campaigns",
        json={"name": "x", "script_id": "agt_missing", "language": "en-US", "contacts": []},
    )
    assert r.status_code == 422 and "script_id" in r.json()["detail"]

    r = api.post(
        "/v1/campaigns", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422

    r = httpx.get(f"{api.base_url}/v1/campaigns")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")

    r = api.get("/v1/campaigns/cmp_doesnotexist")
    assert r.status_code == 404

    r = api.post(
        "/v1/campaigns",
        json={
            "name": "past",
            "script_id": agent,
            "language": "en-US",
            "contacts": [],
            "schedule": {
                "start_time": "2020-01-01T09:00:00",
                "end_time": "2020-01-01T18:00:00",
                "timezone": "Asia/Kolkata",
            },
        },
    )
    assert r.status_code == 422 and "past" in r.json()["detail"]


def test_every_service_exposes_its_metrics(stack: DevStack) -> None:
    """/metrics of each service; the slot-allocator's per-org gauges (the stalled-campaign
    alert's inputs) appear once it owns an org."""
    for name in stack.services:
        response = httpx.get(f"{stack.url(name)}/metrics", timeout=10)
        assert response.status_code == 200 and "python_info" in response.text, name

    def gauges() -> str | None:
        body = httpx.get(f"{stack.url('slot-allocator')}/metrics", timeout=10).text
        lines = [line for line in body.splitlines() if line.startswith("allocator_slots_total{")]
        return body if lines else None

    body = wait_until(gauges, timeout=60, message="allocator gauges")
    assert "allocator_slots_active{" in body and "allocator_grantable_tasks{" in body
