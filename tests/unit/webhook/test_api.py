from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook
from webhook_fakes import FakeRepo

from outbound_core.clock import WallClock
from webhook.api import build_router, validation_error
from webhook.handlers import WebhookHandlers
from webhook.sender import Sender
from webhook.settings import WebhookSettings

A = {"X-Outbound-Org-Id": "org_1", "X-Outbound-Workspace-Id": "ws_1"}
B = {"X-Outbound-Org-Id": "org_2", "X-Outbound-Workspace-Id": "ws_2"}
BASE = "/internal/v1/webhooks"


class Env:
    def __init__(self, allow_private: bool) -> None:
        self.repo = FakeRepo()
        self.received: list[httpx.Request] = []

        def subscriber(request: httpx.Request) -> httpx.Response:
            self.received.append(request)
            return httpx.Response(204)

        settings = WebhookSettings(allow_private_urls=allow_private)
        clock = WallClock()
        client = httpx.AsyncClient(transport=httpx.MockTransport(subscriber))
        sender = Sender(repo=self.repo, settings=settings, clock=clock, client=client)  # type: ignore[arg-type]
        handlers = WebhookHandlers(repo=self.repo, now=clock.now, kick=lambda: None)  # type: ignore[arg-type]
        app = FastAPI(exception_handlers={RequestValidationError: validation_error})
        app.include_router(
            build_router(
                repo=self.repo,
                handlers=handlers,
                sender=sender,  # type: ignore[arg-type]
                settings=settings,
                clock=clock,
            )
        )
        self.http = TestClient(app)


@pytest.fixture
def env() -> Env:
    return Env(allow_private=True)


def test_crud_and_tenancy(env: Env) -> None:
    http = env.http
    r = http.post(BASE, json={"url": "http://127.0.0.1:9999/h", "description": "d"}, headers=A)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"].startswith("wh_")
    assert created["events"] == ["*"]
    assert created["status"] == "active"
    assert created["secret"].startswith("whsec_")
    wid = created["id"]

    listed = http.get(BASE, headers=A).json()
    assert [w["id"] for w in listed] == [wid]
    assert "secret" not in listed[0]
    assert http.get(BASE, headers=B).json() == []
    assert "secret" not in http.get(f"{BASE}/{wid}", headers=A).json()
    assert http.get(f"{BASE}/{wid}", headers=B).status_code == 404
    assert http.patch(f"{BASE}/{wid}", json={"enabled": False}, headers=B).status_code == 404
    assert http.delete(f"{BASE}/{wid}", headers=B).status_code == 404

    r = http.patch(f"{BASE}/{wid}", json={"enabled": False, "events": ["call.*"]}, headers=A)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["events"]) == ("disabled", ["call.*"])

    assert http.delete(f"{BASE}/{wid}", headers=A).status_code == 204
    assert http.get(f"{BASE}/{wid}", headers=A).status_code == 404


def test_missing_tenancy_headers_is_400(env: Env) -> None:
    r = env.http.get(BASE, headers={"X-Outbound-Org-Id": "org_1"})
    assert r.status_code == 400
    assert "X-Outbound-Workspace-Id" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"url": "ftp://x.example/h"}, "scheme"),
        ({"url": "http://127.0.0.1/h", "events": ["nope"]}, "unknown event type"),
        ({}, "url"),
    ],
)
def test_validation_errors_are_422_with_string_detail(
    env: Env, body: dict[str, Any], fragment: str
) -> None:
    r = env.http.post(BASE, json=body, headers=A)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)
    assert fragment in r.json()["detail"]


def test_private_url_refused_in_production_mode() -> None:
    http = Env(allow_private=False).http
    r = http.post(BASE, json={"url": "http://100.64.3.4/h"}, headers=A)
    assert r.status_code == 422
    assert "carrier-grade NAT" in r.json()["detail"]
    assert http.post(BASE, json={"url": "http://8.8.8.8/h"}, headers=A).status_code == 201


def test_ping_is_sent_signed_and_listed(env: Env) -> None:
    created = env.http.post(BASE, json={"url": "http://127.0.0.1:9999/h"}, headers=A).json()
    r = env.http.post(f"{BASE}/{created['id']}/test", headers=A)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "succeeded"
    assert d["attempts"][0]["status_code"] == 204
    [req] = env.received
    payload = Webhook(created["secret"]).verify(req.content, dict(req.headers))
    assert payload["type"] == "ping"
    deliveries = env.http.get(f"{BASE}/{created['id']}/deliveries", headers=A).json()
    assert [x["id"] for x in deliveries] == [d["id"]]
    assert datetime.fromisoformat(deliveries[0]["created_at"]) <= datetime.now(UTC)
