"""Tenancy: org-admin keys manage workspaces and keys; a workspace key sees only its own
workspace (every id of another answers 404); a missing, unknown or revoked key answers 401."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def _client(stack: DevStack, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=stack.api_url, timeout=30.0, headers=headers)


def _workspace_key(api: httpx.Client, name: str) -> tuple[str, str]:
    ws = api.post("/v1/workspaces", json={"name": name, "per_minute_rate": 0.1})
    assert ws.status_code == 201, ws.text
    key = api.post(f"/v1/workspaces/{ws.json()['id']}/keys", json={"name": "ci"})
    assert key.status_code == 201, key.text
    body = key.json()
    assert body["key"].startswith("ob_")
    assert body["role"] == "workspace"
    return ws.json()["id"], body["key"]


def test_keys_are_shown_once_and_listed_without_the_secret(api: httpx.Client) -> None:
    ws_id, _ = _workspace_key(api, "Listing")
    listed = api.get(f"/v1/workspaces/{ws_id}/keys")
    assert listed.status_code == 200
    [k] = listed.json()["data"]
    assert "key" not in k
    assert "hash" not in json.dumps(k)
    assert ws_id in [w["id"] for w in api.get("/v1/workspaces").json()["data"]]


def test_missing_unknown_and_revoked_keys_get_401(stack: DevStack, api: httpx.Client) -> None:
    ws_id, key = _workspace_key(api, "Revoked")
    with _client(stack, None) as anon:
        r = anon.get("/v1/campaigns")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
    with _client(stack, "ob_not_a_key") as bad:
        assert bad.get("/v1/agents").status_code == 401
    with _client(stack, key) as good:
        assert good.get("/v1/agents").status_code == 200
        key_id = api.get(f"/v1/workspaces/{ws_id}/keys").json()["data"][0]["id"]
        assert api.delete(f"/v1/workspaces/{ws_id}/keys/{key_id}").json()["revoked"] is True
        assert good.get("/v1/agents").status_code == 401


def test_workspace_keys_cannot_manage_workspaces(stack: DevStack, api: httpx.Client) -> None:
    ws_id, key = _workspace_key(api, "Plain")
    with _client(stack, key) as plain:
        assert plain.post("/v1/workspaces", json={"name": "x"}).status_code == 403
        assert plain.get(f"/v1/workspaces/{ws_id}/keys").status_code == 403


def _first_workspace_ids(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/v1/agents", json={"name": "Iso", "language": "en-US"}).json()["id"]
    number = api.post("/v1/numbers", json={"number": "+12125550188"})
    assert number.status_code in (201, 409), number.text
    number_id = next(
        n["id"] for n in api.get("/v1/numbers").json()["data"] if n["number"] == "+12125550188"
    )
    camp = api.post(
        "/v1/campaigns",
        json={
            "name": "Isolated",
            "script_id": agent,
            "language": "en-US",
            "contacts": [{"phone": "+12125550101"}],
        },
    )
    assert camp.status_code == 201, camp.text
    cid = camp.json()["id"]
    lead = wait_until(
        lambda: api.get(f"/v1/campaigns/{cid}/leads").json()["data"], message="the lead"
    )[0]["id"]
    return {"agent": agent, "campaign": cid, "lead": lead, "number": number_id}


def test_another_workspace_gets_404_for_every_id(stack: DevStack, api: httpx.Client) -> None:
    ids = _first_workspace_ids(api)
    own_ws = api.get("/v1/workspaces").json()["data"][0]["id"]
    _, key = _workspace_key(api, "Other")
    cid = ids["campaign"]
    probes: list[tuple[str, str, Any]] = [
        ("GET", f"/v1/agents/{ids['agent']}", None),
        ("GET", f"/v1/scripts/{ids['agent']}", None),
        ("GET", f"/v1/campaigns/{cid}", None),
        ("PATCH", f"/v1/campaigns/{cid}", {"action": "pause"}),
        ("GET", f"/v1/campaigns/{cid}/leads", None),
        ("GET", f"/v1/campaigns/{cid}/leads/{ids['lead']}", None),
        ("GET", f"/v1/campaigns/{cid}/export.csv", None),
        ("POST", f"/v1/campaigns/{cid}/contacts", [{"phone": "+12125550102"}]),
        ("DELETE", f"/v1/campaigns/{cid}/contacts", {"phones": ["+12125550101"]}),
        ("DELETE", f"/v1/numbers/{ids['number']}", None),
    ]
    with _client(stack, key) as other:
        for method, path, body in probes:
            r = other.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert cid not in [c["id"] for c in other.get("/v1/campaigns").json()["data"]]
        assert other.get("/v1/agents").json()["data"] == []
        assert other.get("/v1/numbers").json()["data"] == []
    # an org admin of a different org cannot see this org's workspace either
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "campaign_api.cli",
            "create-org",
            "--name",
            "Rival",
            "--workspace",
            "Main",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "MONGODB_URL": stack.mongo_url},
    )
    created = json.loads(out.stdout)
    assert created["api_key"].startswith("ob_")
    with _client(stack, created["api_key"]) as rival:
        assert rival.get("/v1/workspaces").json()["data"][0]["id"] == created["workspace_id"]
        assert rival.get(f"/v1/workspaces/{own_ws}/keys").status_code == 404
        assert rival.post(f"/v1/workspaces/{own_ws}/keys", json={}).status_code == 404
        assert rival.get(f"/v1/campaigns/{cid}").status_code == 404
    # the untouched campaign is still there for its owner
    assert api.get(f"/v1/campaigns/{cid}").json()["total_contacts"] == 1
