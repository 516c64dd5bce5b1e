"""The broker restarts empty in the middle of a campaign, after the planner missed what followed
its tasks' grants: every contact must still reach its end, with the attempts its policy allows,
and every lead must be projected (promises 4, 5 and 6; docs/reliability.md).

The run is arranged so that the loss is certain, not a race: the planner queues the tasks and
is killed; the allocator grants them; the dialer, back too late for the leases, refuses every
dispatch (``lease_expired``: its lease guard counts a shorter minimum than the allocator's) and
releases them; the allocator records the releases. Then the broker restarts empty, and the
planner comes back with four tasks ``queued`` whose aborts no longer exist anywhere but in the
dialer's and the allocator's MongoDB. Before the fix they stayed queued for ever: the allocator
ignored every re-announcement of an attempt that had a lease, and nobody re-published aborts.

It runs on a stack of its own (it kills processes and the broker, so never the shared one)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from outbound_core.devstack import DevStack
from tests.conftest import wait_until

CONTACTS = 4
ALLOCATOR_LEASE_REAL_SECONDS = 120.0  # no lease may expire during the run: only aborts
DIALER_LEASE_REAL_SECONDS = 3.0


def _stack(data_dir: Path) -> DevStack:
    return DevStack(
        data_dir=data_dir,
        api_key=f"ob_broker_{secrets.token_urlsafe(16)}",
        clock_speed=3600.0,
        clock_start="2026-03-02T15:00:00+00:00",
        free_ports=True,
        extra_env={
            "OUTBOUND_ENVIRONMENT": "test",
            "OUTBOUND_LOG_LEVEL": "INFO",
            "SLOT_ALLOCATOR_LEASE_MIN_REAL_SECONDS": str(ALLOCATOR_LEASE_REAL_SECONDS),
            "DIALER_LEASE_MIN_REAL_SECONDS": str(DIALER_LEASE_REAL_SECONDS),
            "TASK_PLANNER_RECONCILE_SECONDS": "2",
            "TASK_PLANNER_RECONCILE_STALE_SECONDS": "5",
        },
    )


def _create_campaign(api: httpx.Client) -> str:
    agent = api.post("/v1/agents", json={"name": "Broker", "language": "en-US", "greeting": "Hi."})
    agent.raise_for_status()
    r = api.post(
        "/v1/campaigns",
        json={
            "name": "broker restart",
            "script_id": agent.json()["id"],
            "language": "en-US",
            "max_attempts": 3,
            "retry_interval_minutes": 30,
            "max_slots": 10,
            "calling_hours": {"start": "00:00", "end": "23:59"},
            "contacts": [
                {"phone": f"+1212736{9100 + i}", "name": f"B{i}", "sim_outcomes": "interested"}
                for i in range(CONTACTS)
            ],
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.mark.timeout(900)
def test_contacts_whose_aborts_the_broker_lost_still_end(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    try:
        stack.start()
        assert stack.mongo_url is not None
        db: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url)
        tasks = db["outbound_task_planner"]["tasks"]
        leases = db["outbound_slot_allocator"]["leases"]
        aborts = db["outbound_dialer"]["aborted_dispatches"]
        with httpx.Client(
            base_url=stack.api_url,
            timeout=60.0,
            headers={"Authorization": f"Bearer {stack.api_key}"},
        ) as api:
            cid = _create_campaign(api)
            stack.services["slot-allocator"].kill()
            api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).raise_for_status()
            wait_until(
                lambda: tasks.count_documents({"campaign_id": cid, "status": "queued"}) == CONTACTS,
                timeout=120,
                message="the planner queued every task",
            )
            wait_until(
                lambda: (
                    (db["outbound_dialer"]["campaigns"].find_one({"_id": cid}) or {}).get("status")
                    == "running"
                ),
                timeout=120,
                message="the dialer knows the campaign runs",
            )
            # The planner will miss everything that follows the grants.
            stack.services["task-planner"].kill()
            stack.services["dialer"].kill()
            stack.restart_service("slot-allocator")
            wait_until(
                lambda: (
                    leases.count_documents({"campaign_id": cid, "status": "active"}) == CONTACTS
                ),
                timeout=180,
                message="the allocator granted every queued task",
            )
            granted = max(
                d["real_deadline"] for d in leases.find({"campaign_id": cid}, {"real_deadline": 1})
            )
            granted -= ALLOCATOR_LEASE_REAL_SECONDS
            # the dialer comes back once its own guard counts the leases as expired
            wait_until(
                lambda: time.time() > granted + DIALER_LEASE_REAL_SECONDS + 1,
                timeout=60,
                message="the dialer's lease minimum passed",
            )
            stack.restart_service("dialer")
            wait_until(
                lambda: (
                    aborts.count_documents({"campaign_id": cid}) == CONTACTS
                    and leases.count_documents({"campaign_id": cid, "status": "released"})
                    == CONTACTS
                ),
                timeout=180,
                message="every dispatch refused and its lease released",
            )
            assert tasks.count_documents({"campaign_id": cid, "status": "queued"}) == CONTACTS
            # Every topic, message and offset is lost: the aborts only live in MongoDB now.
            stack.restart_infrastructure("kafka")
            stack.restart_service("task-planner")
            stack.wait_ready()

            def ended() -> bool:
                return (
                    tasks.count_documents({"campaign_id": cid, "status": "completed"}) == CONTACTS
                )

            wait_until(ended, timeout=300, message="every contact completed after the broker loss")
            done = list(tasks.find({"campaign_id": cid}))
            # the aborted attempts were handed back, never counted: one call each
            assert all(len(t["history"]) == 1 for t in done), [t["history"] for t in done]
            calls = list(db["outbound_simulator"]["sim_calls"].find({}))
            assert sorted(c["task_id"] for c in calls) == sorted(t["_id"] for t in done)
            leads = db["outbound_campaign_api"]["leads"]

            def projected() -> bool:
                return all(
                    (lead := leads.find_one({"_id": t["_id"]})) is not None
                    and lead["seq"] == t["seq"]
                    and lead["status"] == "completed"
                    for t in done
                )

            wait_until(projected, timeout=120, message="every lead projected at its task's seq")
            wait_until(
                lambda: api.get(f"/v1/campaigns/{cid}").json().get("status") == "completed",
                timeout=120,
                message="the campaign completed",
            )
        db.close()
    finally:
        stack.stop()
