"""Helpers for the planner's end-to-end tests: the stack's virtual clock, campaign set-up, and
read access to the simulator's and dialer's databases (tests only: services never do this)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pymongo import MongoClient

from outbound_core.clock import VirtualClock, utc
from outbound_core.devstack import DevStack
from tests.conftest import wait_until
from tests.support.campaigns import wait_completed


def vclock(stack: DevStack) -> VirtualClock:
    """The virtual clock every service of the stack shares."""
    env = stack.services["task-planner"].env
    return VirtualClock(
        start=datetime.fromisoformat(env["OUTBOUND_CLOCK_START"]),
        anchor=float(env["OUTBOUND_CLOCK_ANCHOR"]),
        speed=float(env["OUTBOUND_CLOCK_SPEED"]),
    )


def mongo(stack: DevStack) -> MongoClient[dict[str, Any]]:
    assert stack.mongo_url
    return MongoClient(stack.mongo_url, tz_aware=True)


def agent(api: httpx.Client) -> str:
    r = api.post("/v1/agents", json={"name": "Planner", "language": "en-US", "greeting": "Hi"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def create(api: httpx.Client, contacts: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    body = {
        "name": "planner e2e",
        "script_id": agent(api),
        "language": "en-US",
        "contacts": contacts,
        **settings,
    }
    r = api.post("/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    created = dict(r.json())
    # The lead list is a projection of the campaign's events: wait until it holds every
    # contact, so tests that read lead (task) ids see them all.
    wait_until(
        lambda: (
            len(
                api.get(f"/v1/campaigns/{created['id']}/leads", params={"limit": 1000}).json()[
                    "data"
                ]
            )
            == created["total_contacts"]
        ),
        timeout=60,
        message="every lead projected",
    )
    return created


def act(api: httpx.Client, cid: str, action: str) -> httpx.Response:
    return api.patch(f"/v1/campaigns/{cid}", json={"action": action})


def campaign(api: httpx.Client, cid: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/campaigns/{cid}").json())


def wait_status(api: httpx.Client, cid: str, status: str, timeout: float = 120) -> dict[str, Any]:
    if status == "completed":  # and every lead projected in its final state
        return wait_completed(api, cid, timeout=timeout)
    return dict(
        wait_until(
            lambda: (c := campaign(api, cid))["status"] == status and c,
            timeout=timeout,
            message=f"campaign {cid} {status}",
        )
    )


def leads(api: httpx.Client, cid: str) -> dict[str, dict[str, Any]]:
    """Leads by name."""
    data = api.get(f"/v1/campaigns/{cid}/leads", params={"limit": 1000}).json()["data"]
    return {d["name"]: d for d in data}


def sim_calls(stack: DevStack, task_ids: list[str]) -> list[dict[str, Any]]:
    """Calls the simulated phone network received for these tasks, in the order placed."""
    with mongo(stack) as client:
        docs = list(client["outbound_simulator"]["sim_calls"].find({"task_id": {"$in": task_ids}}))
    for d in docs:
        d["placed_at"] = utc(d["placed_at"])
    return sorted(docs, key=lambda d: d["placed_at"])


def aborts(stack: DevStack, campaign_id: str) -> list[dict[str, Any]]:
    with mongo(stack) as client:
        return list(
            client["outbound_dialer"]["aborted_dispatches"].find({"campaign_id": campaign_id})
        )
