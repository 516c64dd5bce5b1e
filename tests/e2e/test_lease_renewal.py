"""The lease-expiry race, through the real services, in a stack of their own (it kills the
dialer): short leases (5 real seconds) and calls that ring for 15 (900 virtual seconds at
60x), so that every call outlives its lease unless the dialer renews it.

- A live call's lease is renewed: it never expires, the call is one attempt, in its task's
  history, and its slot is released when it ends.
- A dialer killed during a call stops renewing: the lease expires and the planner counts the
  attempt as failed; the restarted dialer hears the call's real end, which the planner folds
  into that attempt (no second call, no attempt counted twice, the outcome acted on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from outbound_core.devstack import DevStack
from tests.conftest import wait_until
from tests.support.stacks import api_client, own_stack

pytestmark = pytest.mark.e2e

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def lease_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with own_stack(
        tmp_path_factory.mktemp("lease-stack"),
        clock_speed=60.0,
        extra_env={
            # a lease: 60 virtual seconds, at least 5 real seconds (300 virtual)
            "SLOT_ALLOCATOR_MAX_CALL_SECONDS": "60",
            "SLOT_ALLOCATOR_LEASE_GRACE_SECONDS": "0",
            "SLOT_ALLOCATOR_LEASE_MIN_REAL_SECONDS": "5",
            "SLOT_ALLOCATOR_EXPIRY_CHECK_SECONDS": "0.2",
            "DIALER_LEASE_MIN_REAL_SECONDS": "5",
            "DIALER_LEASE_RENEW_CHECK_SECONDS": "0.2",
            # every call rings for 15 real seconds: three leases long
            "DIALER_SIM_RING_SECONDS_MIN": "900",
            "DIALER_SIM_RING_SECONDS_MAX": "900",
            "DIALER_SIM_RESCAN_SECONDS": "0.5",
        },
    ) as s:
        yield s


@pytest.fixture(scope="module")
def api(lease_stack: DevStack) -> Iterator[httpx.Client]:
    with api_client(lease_stack) as client:
        yield client


@pytest.fixture(scope="module")
def mongo(lease_stack: DevStack) -> Iterator[MongoClient[Doc]]:
    assert lease_stack.mongo_url
    client: MongoClient[Doc] = MongoClient(lease_stack.mongo_url, tz_aware=True)
    yield client
    client.close()


def _campaign(api: httpx.Client, phone: str) -> tuple[str, str]:
    agent = api.post("/v1/agents", json={"name": "Lease", "language": "en-US", "greeting": "Hi"})
    assert agent.status_code == 201, agent.text
    r = api.post(
        "/v1/campaigns",
        json={
            "name": "lease renewal e2e",
            "script_id": agent.json()["id"],
            "language": "en-US",
            "max_attempts": 3,
            # a retry would come 10 hours (10 real minutes) later: never within the test
            "retry_interval_minutes": 600,
            "contacts": [{"phone": phone, "name": "Ann", "sim_outcomes": ["interested"]}],
        },
    )
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    lead = wait_until(
        lambda: api.get(f"/v1/campaigns/{cid}/leads").json()["data"],
        timeout=60,
        message="lead projected",
    )
    assert api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    return cid, str(lead[0]["id"])


def _task(mongo: MongoClient[Doc], task_id: str) -> Doc:
    doc = mongo["outbound_task_planner"]["tasks"].find_one({"_id": task_id})
    assert doc is not None
    return doc


def _leases(mongo: MongoClient[Doc], task_id: str) -> list[Doc]:
    return list(mongo["outbound_slot_allocator"]["leases"].find({"task_id": task_id}))


def _sim_calls(mongo: MongoClient[Doc], task_id: str) -> list[Doc]:
    return list(mongo["outbound_simulator"]["sim_calls"].find({"task_id": task_id}))


def _completed(api: httpx.Client, cid: str) -> Doc:
    done: Doc = wait_until(
        lambda: (c := api.get(f"/v1/campaigns/{cid}").json())["status"] == "completed" and c,
        timeout=180,
        message=f"campaign {cid} completed",
    )
    return done


def test_a_live_call_keeps_its_lease_and_is_one_attempt(
    api: httpx.Client, mongo: MongoClient[Doc]
) -> None:
    cid, task_id = _campaign(api, "+12127364101")
    wait_until(
        lambda: any(d.get("renewals", 0) >= 2 for d in _leases(mongo, task_id)),
        timeout=120,
        message="the live call's lease renewed",
    )
    done = _completed(api, cid)
    leases = _leases(mongo, task_id)
    assert [d["status"] for d in leases] == ["released"]  # never expired while live
    assert len(_sim_calls(mongo, task_id)) == 1
    task = _task(mongo, task_id)
    assert task["status"] == "completed"
    assert [(h["attempt"], h["disposition"]) for h in task["history"]] == [(1, "interested")]
    assert task["history"][0]["call_id"]
    assert done["calls_made"] == 1


def test_a_late_end_after_the_dialer_died_is_folded_into_its_attempt(
    lease_stack: DevStack, api: httpx.Client, mongo: MongoClient[Doc]
) -> None:
    cid, task_id = _campaign(api, "+12127364102")
    calls = mongo["outbound_dialer"]["calls"]
    wait_until(
        lambda: calls.find_one({"task_id": task_id, "status": "active"}),
        timeout=120,
        message="the call placed",
    )
    lease_stack.services["dialer"].kill()  # no renewal any more
    try:
        wait_until(
            lambda: [d["status"] for d in _leases(mongo, task_id)] == ["expired"],
            timeout=60,
            message="the dead dialer's lease expired",
        )
        # the planner counted the attempt as failed and waits for the retry
        wait_until(
            lambda: [h["disposition"] for h in _task(mongo, task_id)["history"]] == ["failed"],
            timeout=60,
            message="the expiry counted as a failed attempt",
        )
    finally:
        lease_stack.start_service("dialer")
        lease_stack.wait_ready(timeout=240)
    # the call really rang and ended: its end reaches the planner, which folds it in
    _completed(api, cid)
    task = _task(mongo, task_id)
    assert task["status"] == "completed"
    assert task["last_disposition"] == "interested"
    assert len(task["history"]) == 1  # one attempt, counted once
    entry = task["history"][0]
    assert entry["disposition"] == "interested"
    assert entry["late"] is True
    assert entry["expired_as"] == "failed"
    assert entry["call_id"]
    assert len(_sim_calls(mongo, task_id)) == 1  # never dialled again
    assert [d["status"] for d in _leases(mongo, task_id)] == ["expired"]  # never revived
    assert task["due_at"] is None
    # counters agree with the network: one call made, one disposition
    camp = api.get(f"/v1/campaigns/{cid}").json()
    assert camp["calls_made"] == 1
    assert sum((camp.get("disposition_summary") or {}).values()) == 1
