"""The ``http`` provider against a real local HTTP server acting as the voice gateway, on a
stack of its own (DIALER_PROVIDER=http, a one-second gateway timeout and leases that expire
after twenty real seconds, so that a call whose end never arrives is closed quickly)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from outbound_core.devstack import DevStack
from tests.conftest import CLOCK_SPEED, CLOCK_START, wait_until
from tests.support.campaigns import wait_completed
from tests.support.gateway import Gateway
from tests.support.stacks import api_client, own_stack

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    gw = Gateway(secret=SECRET).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def http_stack(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Iterator[DevStack]:
    with own_stack(
        tmp_path_factory.mktemp("http-stack"),
        clock_speed=CLOCK_SPEED,
        clock_start=CLOCK_START,
        extra_env={
            "DIALER_PROVIDER": "http",
            "DIALER_HTTP_GATEWAY_URL": gateway.url,
            "DIALER_HTTP_CALLBACK_SECRET": SECRET,
            "DIALER_HTTP_TIMEOUT_SECONDS": "1",
            # Leases of 20 real seconds (72,000 virtual): long enough for a loaded machine to
            # place the call, short enough that a hung call is closed quickly.
            "SLOT_ALLOCATOR_MAX_CALL_SECONDS": "72000",
            "SLOT_ALLOCATOR_LEASE_GRACE_SECONDS": "0",
            "SLOT_ALLOCATOR_LEASE_MIN_REAL_SECONDS": "3",
            "DIALER_LEASE_MIN_REAL_SECONDS": "3",
        },
    ) as s:
        yield s


@pytest.fixture(scope="module")
def hapi(http_stack: DevStack) -> Iterator[httpx.Client]:
    with api_client(http_stack) as client:
        yield client


CONTACTS = [
    {"phone": "+12127364001", "name": "Ada", "gw": "interested"},
    {"phone": "+12127364002", "name": "Ben", "gw": "5xx,interested"},
    {"phone": "+12127364003", "name": "Cy", "gw": "timeout,interested"},
    {"phone": "+12127364004", "name": "Di", "gw": "hang,interested"},
    {"phone": "+12127364005", "name": "Ed", "gw": "said:please don't call me again"},
]


@pytest.fixture(scope="module")
def campaign(hapi: httpx.Client) -> dict[str, Any]:
    agent = hapi.post(
        "/v1/agents",
        json={
            "name": "Gateway",
            "language": "en-US",
            "greeting": "Hi {{NAME}}, this is Maya.",
            "system_prompt": "You call {{NAME}} about case {{CASE_NUMBER}}.",
        },
    )
    assert agent.status_code == 201, agent.text
    # The caller id must be one of the workspace's numbers.
    number = hapi.post("/v1/numbers", json={"number": "+12127360000"})
    assert number.status_code in (201, 409), number.text
    created = hapi.post(
        "/v1/campaigns",
        json={
            "name": "HTTP gateway",
            "script_id": agent.json()["id"],
            "language": "en-US",
            "contacts": CONTACTS,
            "max_attempts": 2,
            "retry_interval_minutes": 60,
            "calling_hours": {"start": "00:00", "end": "00:00"},
            "from": "+12127360000",
        },
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert hapi.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    # completed, and every lead projected in its final state (the lead updates travel on a
    # topic of their own and may trail the campaign's status by a moment)
    return wait_completed(hapi, cid, timeout=120)


def test_gateway_failures_become_retries_never_stuck_slots(
    campaign: dict[str, Any], hapi: httpx.Client, gateway: Gateway
) -> None:
    # Completed = every task reached a final state: no slot stayed held.
    leads = {
        lead["name"]: lead
        for lead in hapi.get(f"/v1/campaigns/{campaign['id']}/leads").json()["data"]
    }
    for name in ("Ada", "Ben", "Cy", "Di"):
        assert (leads[name]["status"], leads[name]["last_disposition"]) == (
            "completed",
            "interested",
        ), leads[name]
    assert [leads[n]["attempts"] for n in ("Ada", "Ben", "Cy", "Di")] == [1, 2, 2, 2]
    # The transcript classifier read the opt-out (no label from the gateway).
    assert leads["Ed"]["last_disposition"] == "opt_out"
    # 5xx and timeout are failed attempts; the hang closed by lease expiry is not a disposition.
    assert campaign["disposition_summary"] == {"interested": 4, "failed": 2, "opt_out": 1}


def test_gateway_gets_the_rendered_call_with_idempotency_key(
    campaign: dict[str, Any], gateway: Gateway
) -> None:
    (ada,) = gateway.calls_for("+12127364001")
    body = ada.body
    assert ada.idempotency_key == body["call_id"]
    assert body["from"] == "+12127360000"
    assert body["language"] == "en-US"
    assert body["agent"]["greeting"] == "Hi Ada, this is Maya."
    assert body["agent"]["system_prompt"] == "You call Ada about case."
    assert body["context"]["NAME"] == "Ada"
    assert body["voicemail_action"] == "hangup"
    assert body["callback_url"].endswith("/v1/provider/callbacks")
    # one call per attempt, distinct ids
    ben = gateway.calls_for("+12127364002")
    assert [p.body["attempt"] for p in ben] == [1, 2]
    assert len({p.body["call_id"] for p in ben}) == 2


def test_late_result_after_lease_expiry_is_folded_into_its_attempt(
    campaign: dict[str, Any], http_stack: DevStack, hapi: httpx.Client, gateway: Gateway
) -> None:
    hung = next(p for p in gateway.calls_for("+12127364004") if p.action == "hang")
    call_id = hung.body["call_id"]
    r = gateway.send(hung.body["callback_url"], gateway.ended(call_id, "not_interested"))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "late"}
    # the timed-out dial's own (late) callback was also kept apart (the gateway sends it on
    # its own time)
    timed_out = next(p for p in gateway.calls_for("+12127364003") if p.action == "timeout")
    wait_until(
        lambda: (timed_out.body["call_id"], 200) in gateway.callbacks,
        message="the timed-out dial's late callback accepted",
    )
    assert http_stack.mongo_url
    with MongoClient(http_stack.mongo_url) as mongo:
        calls = mongo["outbound_dialer"]["calls"]
        doc = calls.find_one({"_id": call_id})
        assert doc is not None
        assert (doc["closed_by"], doc["result_status"]) == ("lease_expired", "failed")
        assert doc["late_result"]["outcome"] == "not_interested"
        slow = calls.find_one({"_id": timed_out.body["call_id"]})
        assert slow is not None
        assert (slow["closed_by"], slow["failure"]) == ("provider_error", "gateway_timeout")
        wait_until(lambda: calls.find_one({"_id": slow["_id"], "late_result": {"$exists": True}}))
    # The call did happen: its outcome is recorded and takes the place of the expiry's
    # "failed" in that attempt, which is not counted again (Di still has two attempts and
    # stays completed with the later attempt's outcome).
    want = {**campaign["disposition_summary"], "not_interested": 1}
    wait_until(
        lambda: hapi.get(f"/v1/campaigns/{campaign['id']}").json()["disposition_summary"] == want,
        message="the late outcome recorded",
    )
    leads = hapi.get(f"/v1/campaigns/{campaign['id']}/leads").json()["data"]
    di = next(lead for lead in leads if lead["name"] == "Di")
    assert (di["status"], di["attempts"]) == ("completed", 2)
    # the planner folds the late end on its own consumer: the API's counters may show it first
    with MongoClient(http_stack.mongo_url, tz_aware=True) as mongo:
        tasks = mongo["outbound_task_planner"]["tasks"]
        task = wait_until(
            lambda: (
                (t := tasks.find_one({"_id": di["id"]}))
                and t["history"][0]["disposition"] == "not_interested"
                and t
            ),
            message="the late end folded into the task's first attempt",
        )
    assert [(h["attempt"], h["disposition"]) for h in task["history"]] == [
        (1, "not_interested"),
        (2, "interested"),
    ]
    assert task["history"][0]["expired_as"] == "failed"
    assert (task["status"], task["last_disposition"]) == ("completed", "interested")


def test_bad_callbacks_are_refused_and_logged(
    campaign: dict[str, Any], http_stack: DevStack, gateway: Gateway
) -> None:
    url = f"{http_stack.url('dialer')}/v1/provider/callbacks"
    (ada,) = gateway.calls_for("+12127364001")
    payload = gateway.ended(ada.body["call_id"], "opt_out")
    wrong = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    assert gateway.send(url, payload, secret=wrong).status_code == 401
    stale = datetime.now(UTC) - timedelta(minutes=20)
    assert gateway.send(url, payload, at=stale).status_code == 401
    unsigned = httpx.post(url, json=payload, timeout=10)
    assert unsigned.status_code == 401
    unknown = gateway.ended("call_doesnotexist", "interested")
    assert gateway.send(url, unknown).status_code == 404
    log = http_stack.data_dir / "logs" / "dialer.log"
    wait_until(lambda: log.read_text().count("gateway callback refused") >= 3)
    assert "gateway callback for an unknown call" in log.read_text()
