"""Contact ingestion against the running stack: numbers opted out in the org are left out of
later campaigns (JSON, CSV creation and appends) and counted; campaigns created from a CSV
upload, with every CSV rule reported by line and column."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

ALL_DAY = {"start": "00:00", "end": "00:00"}
# +1 415 737 xxxx: numbers no other e2e module uses (suppression is org-wide); the opted-out
# one is drawn per session so that a rerun of the test starts from a callable number
OPTED = f"+1415738{secrets.randbelow(9000) + 1000}"
FRESH = ["+14157370002", "+14157370003", "+14157370004", "+14157370005", "+14157370006"]


@pytest.fixture(scope="module")
def agent(api: httpx.Client) -> str:
    r = api.post("/v1/agents", json={"name": "Ingestion", "language": "en-US"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _body(agent: str, **kw: Any) -> dict[str, Any]:
    return {"name": "Ingestion", "script_id": agent, "language": "en-US", **kw}


def _create(api: httpx.Client, agent: str, contacts: list[dict[str, Any]], **kw: Any) -> Any:
    r = api.post("/v1/campaigns", json=_body(agent, contacts=contacts, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def _upload(
    api: httpx.Client, agent: str, csv: bytes, *, params: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    return api.post(
        "/v1/campaigns/csv",
        params=params,
        data={"campaign": json.dumps(_body(agent, **kw))},
        files={"file": ("contacts.csv", csv, "text/csv")},
    )


def _leads(api: httpx.Client, cid: str) -> dict[str, dict[str, Any]]:
    r = api.get(f"/v1/campaigns/{cid}/leads", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {d["current_phone"]: d for d in r.json()["data"]}


def test_an_opt_out_in_one_campaign_leaves_the_number_out_of_later_ones(
    api: httpx.Client, agent: str
) -> None:
    first = _create(
        api, agent, [{"phone": OPTED, "sim_outcomes": "opt_out"}], calling_hours=ALL_DAY
    )
    assert api.patch(f"/v1/campaigns/{first['id']}", json={"action": "start"}).status_code == 200
    wait_until(
        lambda: (
            api.get(f"/v1/campaigns/{first['id']}").json()["disposition_summary"] == {"opt_out": 1}
        ),
        message="the opt-out disposition",
        timeout=240,
    )
    # the API learns of the opt-out from suppressions.v1: a later campaign leaves it out
    probe = wait_until(
        lambda: (c := _create(api, agent, [{"phone": OPTED}]))["opted_out_excluded"] == 1 and c,
        message="the API's suppression projection",
        timeout=240,
    )
    assert probe["total_contacts"] == 0

    # JSON creation: a contact with another number keeps that one (the probe above showed a
    # contact whose only number opted out is left out)
    second = _create(
        api,
        agent,
        [
            {"phone": FRESH[0], "name": "Kept"},
            {"phone1": OPTED, "phone2": FRESH[1], "name": "Second phone"},
        ],
    )
    assert (
        second["total_contacts"],
        second["opted_out_excluded"],
        second["opted_out_phones_dropped"],
    ) == (2, 0, 1)
    leads = wait_until(lambda: len(ls := _leads(api, second["id"])) == 2 and ls)
    assert leads[FRESH[1]]["phones"] == [FRESH[1]]
    assert OPTED not in {p for lead in leads.values() for p in lead["phones"]}

    # appending (JSON and CSV body) counts them in the response
    r = api.post(f"/v1/campaigns/{second['id']}/contacts", json=[{"phone": OPTED}])
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["opted_out"]) == (0, 1)
    r = api.post(
        f"/v1/campaigns/{second['id']}/contacts",
        content=f"phone\n{OPTED}\n{FRESH[2]}\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert (r.json()["added"], r.json()["opted_out"], r.json()["total_contacts"]) == (1, 1, 3)
    assert api.get(f"/v1/campaigns/{second['id']}").json()["opted_out_excluded"] == 2

    # a campaign created from a CSV file too
    up = _upload(api, agent, f"phone,name\n{OPTED},Gone\n{FRESH[3]},Kept\n".encode())
    assert up.status_code == 201, up.text
    assert (up.json()["total_contacts"], up.json()["opted_out_excluded"]) == (1, 1)


def test_numbers_suppressed_and_released_through_the_api(api: httpx.Client, agent: str) -> None:
    number = f"+1415739{secrets.randbelow(9000) + 1000}"
    assert api.post("/v1/suppressions", json={"phones": [number]}).status_code == 200
    wait_until(
        lambda: _create(api, agent, [{"phone": number}])["opted_out_excluded"] == 1,
        message="the suppression to reach the API",
        timeout=240,
    )
    assert api.request("DELETE", "/v1/suppressions", json={"phones": [number]}).status_code == 200
    back = wait_until(
        lambda: (c := _create(api, agent, [{"phone": number}]))["total_contacts"] == 1 and c,
        message="the release to reach the API",
        timeout=240,
    )
    assert back["opted_out_excluded"] == 0


CSV = (
    "\ufeffPhone 1,phone2,phone10,Name,E-mail,case number,timezone\n"
    "+14157370101,+14157370102,,Ada,ada@example.com,C-1,America/Los_Angeles\n"
    "(415) 737-0103,,+14157370104,Bo,,C-2,\n"
    "+14157370101,,,Ada again,,C-3,\n"
    "\n"
    "+14157370105,,,Cy,,C-4,\n"
)


def test_create_a_campaign_from_a_csv_file(api: httpx.Client, agent: str) -> None:
    r = _upload(
        api,
        agent,
        CSV.encode(),
        default_region="US",
        max_attempts=2,
        calling_hours={"start": "10:00", "end": "18:00"},
    )
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["status"], got["total_contacts"], got["duplicates_merged"]) == ("scheduled", 3, 1)
    assert (got["max_attempts"], got["calling_hours"]["start"]) == (2, "10:00")
    assert "skipped" not in got
    leads = wait_until(lambda: len(ls := _leads(api, got["id"])) == 3 and ls)
    ada = leads["+14157370101"]
    assert ada["phones"] == ["+14157370101", "+14157370102"]
    assert ada["variables"] == {"CASE_NUMBER": "C-1", "E_MAIL": "ada@example.com"}
    assert leads["+14157370103"]["phones"] == ["+14157370103", "+14157370104"]  # phone10 kept
    assert api.get(f"/v1/campaigns/{got['id']}").json()["total_contacts"] == 3


def test_bad_rows_are_reported_by_line_and_column_or_skipped(api: httpx.Client, agent: str) -> None:
    csv = (
        b"phone,phone2,name,timezone\n"
        b"+14157370201,,Ok,\n"
        b"not-a-phone,,Bad phone,\n"
        b"+14157370202,12,Bad second phone,\n"
        b"+14157370203,,Ragged\n"
        b"+14157370204,,Bad zone,Mars/Olympus\n"
        b"+14157370205,,Ok too,\n"
    )
    r = _upload(api, agent, csv, name="Rejected upload")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = sorted(e["field"] for e in r.json()["errors"])
    assert fields == ["row 3.phone", "row 4.phone2", "row 5.row", "row 6.timezone"]
    assert "nothing was added" in r.json()["detail"]
    listed = api.get("/v1/campaigns", params={"limit": 100}).json()["data"]
    assert "Rejected upload" not in {c["name"] for c in listed}

    r = _upload(api, agent, csv, params={"on_error": "skip"}, name="Skip")
    assert r.status_code == 201, r.text
    assert r.json()["total_contacts"] == 2
    assert sorted(e["field"] for e in r.json()["skipped"]) == fields


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        ("phone,name\n+14157370301,Zo\u00eb\n".encode("latin-1"), 422, "not UTF-8"),
        (b"name,email\nAda,a@example.com\n", 422, "no phone column"),
        (b"", 422, "empty"),
        (b"phone,Phone\n+14157370302,+14157370303\n", 422, "duplicate column"),
        (b"phone\n" + b"+14157370304\n" * 10 + b"1" * (5 * 1024 * 1024), 413, "5 MB"),
    ],
)
def test_unusable_files_say_why(
    api: httpx.Client, agent: str, content: bytes, status: int, needle: str
) -> None:
    r = _upload(api, agent, content)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_the_campaign_field_is_validated_like_a_json_body(api: httpx.Client, agent: str) -> None:
    csv = b"phone\n+14157370401\n"
    r = _upload(api, agent, csv, max_attempts=9)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["campaign.max_attempts"]
    r = api.post(
        "/v1/campaigns/csv",
        data={"campaign": "{not json"},
        files={"file": ("c.csv", csv, "text/csv")},
    )
    assert r.status_code == 422, r.text
    r = _upload(api, agent, csv, contacts=[{"phone": "+14157370402"}])
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "campaign.contacts"
    r = api.post("/v1/campaigns/csv", data={"campaign": json.dumps(_body(agent))})
    assert r.status_code == 422
    assert api.post("/v1/campaigns/csv", files={"file": ("c.csv", csv)}).status_code == 422


def test_csv_creation_honours_idempotency_keys(api: httpx.Client, agent: str) -> None:
    csv = b"phone\n+14157370501\n"
    key = {"Idempotency-Key": "csv-create-once"}
    first = api.post(
        "/v1/campaigns/csv",
        data={"campaign": json.dumps(_body(agent))},
        files={"file": ("c.csv", csv, "text/csv")},
        headers=key,
    )
    again = api.post(
        "/v1/campaigns/csv",
        data={"campaign": json.dumps(_body(agent))},
        files={"file": ("c.csv", csv, "text/csv")},
        headers=key,
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
