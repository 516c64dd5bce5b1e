"""Dialer and disposition against the running stack (simulated provider): exactly one call per
attempt, provider failures become retries, every label reaches the campaign summary, opt-outs
hold across campaigns of the org, and the circuit breaker pauses a failing campaign and resumes
it by itself to probe the provider again."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from pymongo import MongoClient

from outbound_core.devstack import DevStack
from outbound_core.events import DialRequest, TaskDispatched, make_envelope
from outbound_core.topics import DISPATCH
from tests.conftest import wait_until
from tests.support.campaigns import wait_completed
from tests.support.subscriber import Subscriber

pytestmark = pytest.mark.e2e

ALL_DAY = {"start": "00:00", "end": "00:00"}


def _agent(api: httpx.Client) -> str:
    r = api.post(
        "/v1/agents", json={"name": "Dialer", "language": "en-US", "greeting": "Hi {{NAME}}."}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _run(api: httpx.Client, contacts: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "name": "dialer-e2e",
        "script_id": _agent(api),
        "language": "en-US",
        "contacts": contacts,
        "calling_hours": ALL_DAY,
        **extra,
    }
    r = api.post("/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    assert api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    return cid


def _completed(api: httpx.Client, cid: str, timeout: float = 120) -> dict[str, Any]:
    return wait_completed(api, cid, timeout=timeout)


def _leads(api: httpx.Client, cid: str) -> dict[str, dict[str, Any]]:
    data = api.get(f"/v1/campaigns/{cid}/leads").json()["data"]
    return {lead["current_phone"]: lead for lead in data}


def test_opt_out_in_one_campaign_stops_every_campaign_of_the_org(api: httpx.Client) -> None:
    # numbers of their own for each run: an opt-out is for ever, and a rerun must start afresh
    block = 1000 + 3 * secrets.randbelow(333)  # +1212736 1xxx: used by no other test
    x, y, z = (f"+1212736{block + i}" for i in range(3))
    first = _completed(api, _run(api, [{"phone": x, "name": "Xa", "sim_outcomes": "opt_out"}]))
    assert first["disposition_summary"] == {"opt_out": 1}
    listed = wait_until(lambda: (r := api.get(f"/v1/suppressions/{x}").json())["suppressed"] and r)
    assert listed["reason"] == "opt_out"
    # A number uploaded through the API is suppressed too; a bad one is reported, not dropped.
    added = api.post("/v1/suppressions", json={"phones": [z, "12345"]})
    assert added.status_code == 200, added.text
    assert added.json()["added"] == 1
    assert [i["phone"] for i in added.json()["invalid"]] == ["12345"]

    contacts = [
        {"phone": x, "name": "Xa", "sim_outcomes": "interested"},
        {"phone": y, "name": "Yo", "sim_outcomes": "interested"},
        {"phone": z, "name": "Zed", "sim_outcomes": "interested"},
    ]
    cid = _run(api, contacts)
    second = _completed(api, cid)
    assert second["calls_made"] == 1  # only y was ever dialled
    assert second["disposition_summary"] == {"interested": 1}
    leads = _leads(api, cid)
    # a number the API already knows is opted out is left out at ingestion; one it has not
    # heard of yet becomes a task that the planner archives
    assert second["total_contacts"] + second["opted_out_excluded"] == 3
    for phone in (x, z):
        if phone in leads:
            assert (leads[phone]["status"], leads[phone]["reason"]) == ("archived", "opted_out")
    assert leads[y]["status"] == "completed"
    # a campaign left with nobody to call (every contact opted out) completes; it never hangs
    nobody = _completed(api, _run(api, [{"phone": x, "name": "Xa"}]))
    assert (nobody["total_contacts"], nobody["opted_out_excluded"], nobody["calls_made"]) == (
        0,
        1,
        0,
    )

    removed = api.request("DELETE", "/v1/suppressions", json={"phones": [z]})
    assert removed.status_code == 200, removed.text
    assert removed.json()["removed"] == 1
    assert api.get(f"/v1/suppressions/{z}").json()["suppressed"] is False
    assert api.get("/v1/suppressions/not-a-number").status_code == 422


def test_provider_timeouts_and_5xx_are_retried(api: httpx.Client) -> None:
    contacts = [
        {"phone": "+12127365101", "name": "Ti", "sim_outcomes": "timeout,interested"},
        {"phone": "+12127365102", "name": "Fi", "sim_outcomes": "error_5xx,interested"},
    ]
    done = _completed(api, _run(api, contacts, max_attempts=2, retry_interval_minutes=60))
    assert done["disposition_summary"] == {"failed": 2, "interested": 2}
    for lead in _leads(api, done["id"]).values():
        assert (lead["status"], lead["last_disposition"], lead["attempts"]) == (
            "completed",
            "interested",
            2,
        )


LABELS = [
    "interested",
    "not_interested",
    "callback",
    "voicemail",
    "wrong_number",
    "no_answer",
    "busy",
    "failed",
    "opt_out",
    "escalated",
    "completed",
]


def test_every_label_and_the_short_call_rule_reach_the_summary(api: httpx.Client) -> None:
    outcomes = [*LABELS, "short", "appointment_booked"]
    contacts = [
        {"phone": f"+121273652{i:02d}", "name": f"L{i}", "sim_outcomes": o}
        for i, o in enumerate(outcomes)
    ]
    cid = _run(api, contacts, max_attempts=1)

    def summary() -> dict[str, int] | None:
        s: dict[str, int] = api.get(f"/v1/campaigns/{cid}").json()["disposition_summary"]
        return s if sum(s.values()) >= len(outcomes) else None

    got = wait_until(summary, timeout=120, message="every disposition recorded")
    for label in LABELS:
        assert got.get(label, 0) >= 1, (label, got)
    assert got["no_answer"] == 2  # the no_answer contact and the short call
    assert got["appointment_booked"] == 1  # unknown label kept as custom
    leads = _leads(api, cid)
    short = leads[f"+121273652{outcomes.index('short'):02d}"]
    assert short["last_disposition"] in ("no_answer", "not_reachable")
    no_answer = wait_until(
        lambda: (
            (lead := _leads(api, cid)[f"+121273652{outcomes.index('no_answer'):02d}"])["status"]
            == "not_reachable"
            and lead
        )
    )
    assert no_answer["last_disposition"] == "not_reachable"
    api.patch(f"/v1/campaigns/{cid}", json={"action": "stop"})  # the callback would wait a day


def test_a_dispatch_delivered_twice_places_one_call(api: httpx.Client, stack: DevStack) -> None:
    phone = "+12127365301"
    cid = _run(api, [{"phone": phone, "name": "Dup", "sim_outcomes": "interested"}])
    done = _completed(api, cid)
    assert done["calls_made"] == 1
    assert stack.mongo_url and stack.kafka_url
    with MongoClient(stack.mongo_url) as mongo:
        call = mongo["outbound_dialer"]["calls"].find_one({"campaign_id": cid})
        assert call is not None

        def dispatch(lease_id: str) -> bytes:
            payload = TaskDispatched(
                lease_id=lease_id,
                task_id=call["task_id"],
                campaign_id=cid,
                attempt=call["attempt"],
                lease_expires_at=datetime.now(UTC) + timedelta(days=365),
                dial=DialRequest(phone=phone, name="Dup", sim_outcomes=["interested"]),
            )
            env = make_envelope(
                payload,
                producer="test",
                org_id=call["org_id"],
                workspace_id=call["workspace_id"],
                occurred_at=datetime.now(UTC),
            )
            return env.model_dump_json().encode()

        producer = KafkaProducer(bootstrap_servers=stack.kafka_url)
        try:
            key = call["task_id"].encode()
            producer.send(DISPATCH.name, dispatch(call["lease_id"]), key=key)  # redelivery
            producer.send(DISPATCH.name, dispatch("lease_duplicate_test"), key=key)  # re-grant
            producer.flush(30)
        finally:
            producer.close()
        log = stack.data_dir / "logs" / "dialer.log"
        wait_until(
            lambda: any(
                call["_id"] in line and "releasing the new lease" in line
                for line in log.read_text().splitlines()
            ),
            message="dialer saw the duplicate",
        )
        assert mongo["outbound_dialer"]["calls"].count_documents({"task_id": call["task_id"]}) == 1
        sim = mongo["outbound_simulator"]["sim_calls"]
        assert sim.count_documents({"task_id": call["task_id"]}) == 1
    assert api.get(f"/v1/campaigns/{cid}").json()["calls_made"] == 1


@pytest.fixture
def subscriber() -> Any:
    sub = Subscriber().start()
    yield sub
    sub.stop()


def test_circuit_breaker_pauses_a_failing_campaign_and_probes_it_after_the_cool_down(
    api: httpx.Client, subscriber: Subscriber
) -> None:
    """The provider fails every call: the breaker pauses the campaign, resumes it by itself
    after its cool-down, and pauses it again when the probe attempts fail too."""
    hook = api.post(
        "/v1/webhooks", json={"url": subscriber.url, "events": ["campaign.status.changed"]}
    )
    assert hook.status_code == 201, hook.text
    subscriber.secret = hook.json()["secret"]
    contacts = [
        {"phone": f"+121273654{i:02d}", "name": f"F{i}", "sim_outcomes": "failed"}
        for i in range(30)
    ]
    cid = _run(api, contacts, max_attempts=3, retry_interval_minutes=60)

    def changes() -> list[tuple[str, str]]:
        return [
            (r.payload["data"]["status"], r.payload["data"]["reason"])
            for r in subscriber.of_type("campaign.status.changed")
            if r.payload["data"]["campaign_id"] == cid
        ]

    paused = ("paused", "circuit_breaker")
    resumed = ("running", "circuit_breaker_resumed")
    wait_until(
        lambda: changes().count(paused) >= 2,
        timeout=120,
        message="paused, resumed after the cool-down, paused again by the failed probe",
    )
    seen = changes()
    first = seen.index(paused)
    assert resumed in seen[first:], seen
    assert paused in seen[seen.index(resumed, first) :], seen
    api.patch(f"/v1/campaigns/{cid}", json={"action": "stop"})
    stopped = api.get(f"/v1/campaigns/{cid}").json()
    assert stopped["calls_made"] < 90, stopped  # stopped before every attempt was spent
    api.delete(f"/v1/webhooks/{hook.json()['id']}")


def test_a_suppressed_secondary_phone_is_skipped_and_the_contact_goes_on(
    api: httpx.Client, stack: DevStack
) -> None:
    """Suppression is per number, not per contact: the rotation skips the opted-out phone and
    reaches the contact on the next one; only a contact with every phone suppressed ends.
    The numbers are suppressed after the tasks exist and before the start, so that either
    the planner (suppression event) or the dialer's guard (refused dispatch) skips them."""
    a1, a2, a3 = "+12127365601", "+12127365602", "+12127365603"
    b1, b2 = "+12127365611", "+12127365612"  # the last phone of each pass is suppressed
    c1, c2 = "+12127365621", "+12127365622"  # every phone suppressed: the contact ends
    contacts = [
        {
            "phone1": a1,
            "phone2": a2,
            "phone3": a3,
            "name": "Ann",
            "sim_outcomes": "no_answer,interested",
        },
        {"phone1": b1, "phone2": b2, "name": "Bob", "sim_outcomes": "no_answer"},
        {"phone1": c1, "phone2": c2, "name": "Cy", "sim_outcomes": "interested"},
    ]
    body = {
        "name": "suppressed-phones",
        "script_id": _agent(api),
        "language": "en-US",
        "contacts": contacts,
        "calling_hours": ALL_DAY,
        "max_attempts": 2,
        "retry_interval_minutes": 60,
    }
    r = api.post("/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    r = api.post("/v1/suppressions", json={"phones": [a2, b2, c1, c2]})
    assert r.status_code == 200, r.text
    assert api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    _completed(api, cid, timeout=180)
    with MongoClient(stack.mongo_url) as mongo:
        calls = list(mongo["outbound_dialer"]["calls"].find({"campaign_id": cid}))
    dialled = [c["phone"] for c in calls]
    assert not {a2, b2, c1, c2} & set(dialled), dialled  # never a suppressed number
    assert a1 in dialled and a3 in dialled  # Ann reached on her third phone
    assert dialled.count(b1) == 2  # Bob: both passes on his one usable phone
    leads = {lead["name"]: lead for lead in api.get(f"/v1/campaigns/{cid}/leads").json()["data"]}
    assert leads["Ann"]["last_disposition"] == "interested", leads["Ann"]
    assert leads["Ann"]["current_phone"] == a3
    assert leads["Bob"]["status"] == "not_reachable", leads["Bob"]
    assert leads["Cy"]["status"] == "archived", leads["Cy"]


def test_the_circuit_breaker_counts_calls_that_never_end(api: httpx.Client) -> None:
    """A provider that accepts calls and never reports them: every lease expires, and the
    expiries trip the breaker like failed calls would."""
    contacts = [
        {"phone": f"+121273657{i:02d}", "name": f"H{i}", "sim_outcomes": "hang"} for i in range(22)
    ]
    cid = _run(api, contacts, max_attempts=1)
    paused = wait_until(
        lambda: (c := api.get(f"/v1/campaigns/{cid}").json())["status"] == "paused" and c,
        timeout=180,
        message="campaign paused by the circuit breaker",
    )
    assert paused["status_reason"] == "circuit_breaker"
    assert paused["calls_connected"] == 0
    api.patch(f"/v1/campaigns/{cid}", json={"action": "stop"})


def test_workspace_custom_labels_are_terminal_or_retryable(api: httpx.Client) -> None:
    bad = api.put("/v1/dispositions/labels", json={"labels": {"Not Interested": "terminal"}})
    assert bad.status_code == 422, bad.text
    assert "canonical" in bad.json()["detail"]
    r = api.put(
        "/v1/dispositions/labels",
        json={"labels": {"Booked Demo": "terminal", "ring_back_later": "retryable"}},
    )
    assert r.status_code == 200, r.text
    assert api.get("/v1/dispositions/labels").json()["labels"] == {
        "booked_demo": "terminal",
        "ring_back_later": "retryable",
    }
    try:
        contacts = [
            {"phone": "+12127365801", "name": "Re", "sim_outcomes": "ring_back_later,booked_demo"},
            {"phone": "+12127365802", "name": "Bo", "sim_outcomes": "booked_demo"},
        ]
        cid = _run(
            api,
            contacts,
            max_attempts=2,
            retry_interval_minutes=1,
            positive_dispositions=["booked_demo"],
        )
        done = _completed(api, cid, timeout=180)
        assert done["disposition_summary"] == {"ring_back_later": 1, "booked_demo": 2}
        assert done["metrics"]["conversions"] == 2
        leads = _leads(api, cid)
        assert leads["+12127365801"]["attempts"] == 2  # retryable: tried again
        assert leads["+12127365802"]["attempts"] == 1  # terminal: done
    finally:
        api.put("/v1/dispositions/labels", json={"labels": {}})
