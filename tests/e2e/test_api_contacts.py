"""Contacts: append as JSON, CSV body or upload; the CSV rules; exact removal counts; and the
planner archiving removed contacts (a removed contact is never called)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.support.campaigns import wait_completed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def agent(api: httpx.Client) -> str:
    r = api.post("/v1/agents", json={"name": "Contacts", "language": "en-US"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _campaign(api: httpx.Client, agent: str, contacts: list[dict[str, Any]], **kw: Any) -> str:
    body = {"name": "Contacts", "script_id": agent, "language": "en-US", "contacts": contacts}
    r = api.post("/v1/campaigns", json={**body, **kw})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _leads(api: httpx.Client, cid: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/campaigns/{cid}/leads", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_template_csv_is_a_valid_contacts_file(api: httpx.Client, agent: str) -> None:
    t = api.get("/v1/campaigns/template.csv")
    assert t.status_code == 200
    assert t.headers["content-type"].startswith("text/csv")
    cid = _campaign(api, agent, [])
    r = api.post(
        f"/v1/campaigns/{cid}/contacts", content=t.content, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2


def test_append_json_csv_and_upload_merging_duplicates(api: httpx.Client, agent: str) -> None:
    cid = _campaign(api, agent, [{"phone": "+12125550001", "name": "Ada"}])
    r = api.post(
        f"/v1/campaigns/{cid}/contacts",
        json=[{"phone": "+12125550001"}, {"phone": "+12125550002"}, {"phone": "+12125550002"}],
    )
    assert r.status_code == 200, r.text
    assert r.json() | {"skipped": []} == {
        "campaign_id": cid,
        "added": 1,
        "duplicates": 2,
        "opted_out": 0,
        "opted_out_phones": 0,
        "skipped": [],
        "total_contacts": 2,
    }
    csv = "Phone,Name,case number\n(212) 555-0003,Cy,C-1\n+12125550002,Dup,C-2\n"
    r = api.post(
        f"/v1/campaigns/{cid}/contacts",
        params={"default_region": "US"},
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["duplicates"]) == (1, 1)
    up = api.post(
        f"/v1/campaigns/{cid}/contacts",
        files={"file": ("c.csv", b"phone1,phone2,name\n+12125550004,+12125550005,Di\n")},
    )
    assert up.status_code == 200, up.text
    assert up.json()["total_contacts"] == 4
    want = {"+12125550001", "+12125550002", "+12125550003", "+12125550004"}
    leads = wait_until(
        lambda: (ls := {d["current_phone"]: d for d in _leads(api, cid)}).keys() == want and ls,
        message="the lead projection",
    )
    assert leads["+12125550003"]["variables"] == {"CASE_NUMBER": "C-1"}
    assert api.get(f"/v1/campaigns/{cid}").json()["total_contacts"] == 4


def test_bad_rows_reject_the_file_or_are_skipped(api: httpx.Client, agent: str) -> None:
    cid = _campaign(api, agent, [])
    csv = b"phone,name\n+12125550011,Ok\nnot-a-phone,Bad\n+12125550012\n+12125550013,Ok2\n"
    headers = {"Content-Type": "text/csv"}
    r = api.post(f"/v1/campaigns/{cid}/contacts", content=csv, headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = sorted(e["field"] for e in r.json()["errors"])
    assert fields == ["row 3.phone", "row 4.row"]
    assert api.get(f"/v1/campaigns/{cid}").json()["total_contacts"] == 0
    r = api.post(
        f"/v1/campaigns/{cid}/contacts", params={"on_error": "skip"}, content=csv, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2
    assert len(r.json()["skipped"]) == 2


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        ("phone,name\n+12125550021,Zo\u00eb\n".encode("latin-1"), 422, "not UTF-8"),
        (b"name,email\nAda,a@example.com\n", 422, "no phone column"),
        (b"phone\n" + b"+12125550022\n" * 10 + b"1" * (5 * 1024 * 1024), 413, "5242880 bytes"),
    ],
)
def test_unusable_files_say_why(
    api: httpx.Client, agent: str, content: bytes, status: int, needle: str
) -> None:
    cid = _campaign(api, agent, [])
    r = api.post(
        f"/v1/campaigns/{cid}/contacts", content=content, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_the_contact_limit_names_itself(api: httpx.Client, agent: str) -> None:
    # over the limit is refused before anything is written (10,000 per campaign)
    over = [{"phone": f"+1212558{i:04d}"} for i in range(10_001)]
    body = {"name": "x", "script_id": agent, "language": "en-US", "contacts": over}
    r = api.post("/v1/campaigns", json=body)
    assert r.status_code == 413
    assert "limit of 10000" in r.json()["detail"]
    cid = _campaign(api, agent, [])
    r = api.post(f"/v1/campaigns/{cid}/contacts", json=over)
    assert r.status_code == 413
    assert "limit of 10000 per campaign" in r.json()["detail"]
    rows = "phone\n" + "".join(f"+1212558{i:04d}\n" for i in range(10_001))
    r = api.post(
        f"/v1/campaigns/{cid}/contacts",
        content=rows.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 413
    assert "limit is 10000 per campaign" in r.json()["detail"]
    assert api.get(f"/v1/campaigns/{cid}").json()["total_contacts"] == 0


def test_delete_counts_removed_not_found_and_already_called(api: httpx.Client, agent: str) -> None:
    contacts = [
        {"phone": "+12125550031", "sim_outcomes": "no_answer,no_answer"},
        {"phone": "+12125550032"},
        {"phone": "+12125550033"},
    ]
    called = _campaign(
        api,
        agent,
        contacts[:1],
        calling_hours={"start": "00:00", "end": "00:00"},
        max_attempts=2,
        retry_interval_minutes=60 * 24 * 30,
    )
    assert api.patch(f"/v1/campaigns/{called}", json={"action": "start"}).status_code == 200
    wait_until(
        lambda: (ls := _leads(api, called)) and ls[0]["status"] == "waiting_retry",
        message="the first call to end",
        timeout=240,
    )
    r = api.request("DELETE", f"/v1/campaigns/{called}/contacts", json={"phones": ["+12125550031"]})
    assert r.status_code == 200, r.text
    assert (r.json()["removed"], r.json()["already_called"]) == (0, 1)
    assert r.json()["details"]["already_called"] == ["+12125550031"]
    assert api.patch(f"/v1/campaigns/{called}", json={"action": "stop"}).status_code == 200

    allday = {"start": "00:00", "end": "00:00"}
    both = [{**c, "sim_outcomes": "interested"} for c in contacts[1:]]
    cid = _campaign(api, agent, both, calling_hours=allday)
    r = api.request(
        "DELETE",
        f"/v1/campaigns/{cid}/contacts",
        json={"phones": ["+12125550032", "(212) 555-0099", "+12125550032"], "default_region": "US"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["removed"], body["not_found"], body["already_called"]) == (1, 1, 0)
    assert body["total_contacts"] == 1
    bad = api.request("DELETE", f"/v1/campaigns/{cid}/contacts", json={"phones": ["12"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "phones[0]"
    # the planner archived the removed task: the running campaign calls only the other one
    assert api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).status_code == 200
    done = wait_completed(api, cid, timeout=240)
    assert done["calls_made"] == 1
    leads = {d["current_phone"]: d for d in _leads(api, cid)}
    assert (leads["+12125550032"]["status"], leads["+12125550032"]["attempts"]) == ("archived", 0)
    assert leads["+12125550033"]["status"] == "completed"
    assert api.post(f"/v1/campaigns/{cid}/contacts", json=[{"phone": "+1"}]).status_code == 409
