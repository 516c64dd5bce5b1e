"""Shared fixtures. The end-to-end stack starts once per session: the broker and database
(named by KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL, in containers, or embedded) and the six services,
on free ports, sharing a fast virtual clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.support.infra import broker_and_database

CLOCK_SPEED = 3600.0  # one virtual hour per real second
CLOCK_START = "2026-03-02T15:00:00+00:00"  # a Monday, 10:00 in New York


@dataclass
class Infra:
    kafka_url: str
    mongo_url: str


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """The broker and database (see tests/support/infra.py for where they come from)."""
    with broker_and_database(tmp_path_factory.mktemp("infra")) as (kafka_url, mongo_url):
        yield Infra(kafka_url=kafka_url, mongo_url=mongo_url)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, infra: Infra) -> Iterator[DevStack]:
    data_dir: Path = tmp_path_factory.mktemp("stack")
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
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            "OUTBOUND_LOG_LEVEL": "INFO",
            # a breaker's pause lasts a virtual hour (one real second) before it resumes
            "DISPOSITION_BREAKER_COOLDOWN_SECONDS": "3600",
        },
    )
    try:
        s.start()
    except Exception:
        s.stop()
        for log in sorted((data_dir / "logs").glob("*.log")):
            print(f"==== {log.name}\n{log.read_text()[-3000:]}")
        raise
    yield s
    s.stop()


@pytest.fixture(scope="session")
def api(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, timeout=30.0, headers={"Authorization": f"Bearer {stack.api_key}"}
    ) as client:
        yield client


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 90.0,
    interval: float = 0.2,
    message: str = "condition",
) -> Any:
    """Poll a condition on behaviour (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}; last value: {last!r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests run the whole system on a shared, noisy machine: one that fails is run
    once more (a test that fails twice fails the build). Unit and integration tests never rerun."""
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.flaky(reruns=1))
