"""Webhook URL safety with private destinations refused, as in production: a campaign-api and a
webhook service of their own (own databases and consumer groups) on the session's broker and
database, started with ``WEBHOOK_ALLOW_PRIVATE_URLS=false``."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.conftest import CLOCK_SPEED, CLOCK_START, Infra

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory, infra: Infra) -> Iterator[httpx.Client]:
    data_dir: Path = tmp_path_factory.mktemp("strict")
    s = DevStack(
        kafka_url=infra.kafka_url,
        mongo_url=infra.mongo_url,
        data_dir=data_dir,
        api_key=f"ob_test_{secrets.token_urlsafe(16)}",
        clock_speed=CLOCK_SPEED,
        clock_start=CLOCK_START,
        free_ports=True,
        extra_env={
            "OUTBOUND_ENVIRONMENT": "test",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "false",
            "WEBHOOK_SERVICE_NAME": "webhook-strict",
            "WEBHOOK_DATABASE": "outbound_webhook_strict",
            "CAMPAIGN_API_SERVICE_NAME": "campaign-api-strict",
            "CAMPAIGN_API_DATABASE": "outbound_campaign_api_strict",
        },
    )
    try:
        env = s.common_env()
        s.start_service("webhook", env=env)
        s.start_service("campaign-api", env=env)
        s.wait_ready()
        with httpx.Client(
            base_url=s.api_url, timeout=30.0, headers={"Authorization": f"Bearer {s.api_key}"}
        ) as client:
            yield client
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # A name (this machine's own, from /etc/hosts) that resolves to a loopback address.
        (f"http://{socket.gethostname()}:8443/hooks", "loopback address"),
        ("http://10.1.2.3/hooks", "private address"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
        ("http://100.64.0.7/hooks", "carrier-grade NAT"),
    ],
)
def test_private_destinations_are_refused_with_a_clear_error(
    strict_api: httpx.Client, url: str, reason: str
) -> None:
    r = strict_api.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert reason in detail
    assert "only public addresses are allowed" in detail


def test_a_public_address_is_accepted_and_an_update_to_a_private_one_refused(
    strict_api: httpx.Client,
) -> None:
    r = strict_api.post("/v1/webhooks", json={"url": "http://93.184.215.14/hooks"})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    bad = strict_api.patch(f"/v1/webhooks/{wid}", json={"url": "http://192.168.0.10/x"})
    assert bad.status_code == 422
    assert "private address" in bad.json()["detail"]
    assert strict_api.delete(f"/v1/webhooks/{wid}").status_code == 204
