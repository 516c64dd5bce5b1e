"""The circuit breaker's states against the real database: it trips once on a failing
campaign, does not count calls that were in flight, resumes the campaign by itself after the
cool-down, pauses it again when the probe attempts fail (with a longer cool-down), closes when
they pass, and ignores a replayed resume older than the trip."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from disposition.handlers import DispositionHandlers
from disposition.repository import DispositionRepository, Doc
from disposition.settings import DispositionSettings
from outbound_core.events import (
    CallEnded,
    CampaignPauseRequested,
    CampaignResumeRequested,
    CampaignStatusChanged,
    Envelope,
    LeaseExpired,
    Payload,
    make_envelope,
)
from tests.conftest import Infra

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CID = "camp_breaker"


class Bus:
    """Records what the service publishes; its clock is set by the test."""

    def __init__(self) -> None:
        self.at = T0
        self.sent: list[Payload] = []

    def now(self) -> datetime:
        return self.at

    async def emit(self, topic: Any, payload: Payload, **_: Any) -> None:
        self.sent.append(payload)

    def of(self, kind: type[Payload]) -> list[Any]:
        return [p for p in self.sent if isinstance(p, kind)]


@pytest.fixture
async def service(infra: Infra) -> AsyncIterator[tuple[DispositionHandlers, Bus]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    repo = DispositionRepository(client[f"it_breaker_{uuid.uuid4().hex[:8]}"])
    await repo.ensure_indexes()
    bus = Bus()
    settings = DispositionSettings(
        breaker_window=10,
        breaker_min_attempts=6,
        breaker_failure_threshold=0.5,
        breaker_probe_attempts=4,
        breaker_cooldown_seconds=300,
        breaker_max_cooldown_seconds=3600,
    )
    yield DispositionHandlers(repo=repo, bus=bus, settings=settings), bus  # type: ignore[arg-type]
    await client.drop_database(repo.breakers.database.name)
    await client.close()


def _env(payload: Payload, at: datetime = T0) -> Envelope:
    return make_envelope(payload, producer="it", org_id="o", workspace_id="w", occurred_at=at)


_n = iter(range(10**6))


async def _calls(h: DispositionHandlers, *statuses: str, started: datetime | None = None) -> None:
    """Calls that ended now; begun now too, unless ``started`` says otherwise."""
    for status in statuses:
        i = next(_n)
        call = CallEnded(
            call_id=f"call_{i}",
            task_id=f"task_{i}",
            campaign_id=CID,
            attempt=1,
            provider="sim",
            status=status,  # type: ignore[arg-type]
            outcome="interested" if status == "completed" else None,
            duration_seconds=30.0 if status == "completed" else 0.0,
            turns=4 if status == "completed" else 0,
            started_at=started or h.bus.now(),
            ended_at=h.bus.now(),
        )
        await h.on_call_ended(_env(call), call)


async def _breaker(h: DispositionHandlers) -> Doc:
    doc = await h.repo.breakers.find_one({"_id": CID})
    assert doc is not None
    return doc


async def test_trip_cool_down_probe_and_close(
    service: tuple[DispositionHandlers, Bus],
) -> None:
    h, bus = service
    await _calls(h, *["failed"] * 5)
    assert bus.of(CampaignPauseRequested) == []  # fewer than the minimum attempts
    await _calls(h, "failed")
    [pause] = bus.of(CampaignPauseRequested)
    assert (pause.campaign_id, pause.reason) == (CID, "circuit_breaker")
    b = await _breaker(h)
    assert (b["state"], b["recent"], b["streak"]) == ("open", [], 1)
    assert b["resume_at"].replace(tzinfo=UTC) == T0 + timedelta(seconds=300)

    await _calls(h, *["failed"] * 8)  # calls that were in flight: not counted, no second pause
    assert (await _breaker(h))["recent"] == []
    assert len(bus.of(CampaignPauseRequested)) == 1

    bus.at = T0 + timedelta(seconds=299)
    assert await h.resume_after_cooldown() == 0
    bus.at = T0 + timedelta(seconds=300)
    assert await h.resume_after_cooldown() == 1
    assert await h.resume_after_cooldown() == 0  # asked once
    [resume] = bus.of(CampaignResumeRequested)
    assert (resume.campaign_id, resume.reason) == (CID, "circuit_breaker")
    assert (await _breaker(h))["state"] == "half_open"

    # The probe fails: paused again at once (4 attempts, not 6), with a doubled cool-down.
    await _calls(h, "failed", "completed", "failed", "failed")
    assert len(bus.of(CampaignPauseRequested)) == 2
    b = await _breaker(h)
    assert (b["state"], b["streak"]) == ("open", 2)
    assert b["resume_at"].replace(tzinfo=UTC) == bus.at + timedelta(seconds=600)

    bus.at += timedelta(seconds=600)
    assert await h.resume_after_cooldown() == 1
    await _calls(h, "completed", "failed", "completed", "completed")  # the probe passes
    b = await _breaker(h)
    assert (b["state"], b["streak"]) == ("closed", 0)
    assert len(bus.of(CampaignPauseRequested)) == 2
    await _calls(h, *["failed"] * 6)  # a new trip starts from the shortest cool-down again
    b = await _breaker(h)
    assert (b["state"], b["streak"]) == ("open", 1)
    assert b["resume_at"].replace(tzinfo=UTC) == bus.at + timedelta(seconds=300)


async def test_a_human_resume_probes_at_once_and_a_replayed_one_does_nothing(
    service: tuple[DispositionHandlers, Bus],
) -> None:
    h, bus = service
    bus.at = T0 + timedelta(hours=1)
    for i in range(6):  # calls that never ended count as failures
        expired = LeaseExpired(lease_id=f"lease_{i}", task_id=f"t{i}", campaign_id=CID, attempt=1)
        await h.on_lease_expired(_env(expired), expired)
        await h.on_lease_expired(_env(expired), expired)  # a redelivery counts once
    assert len(bus.of(CampaignPauseRequested)) == 1

    def running(at: datetime) -> tuple[Envelope, CampaignStatusChanged]:
        ev = CampaignStatusChanged(campaign_id=CID, status="running", previous="paused")
        return _env(ev, at), ev

    await h.on_campaign_status_changed(*running(T0))  # older than the trip: a replay
    assert (await _breaker(h))["state"] == "open"
    await h.on_campaign_status_changed(*running(bus.at + timedelta(seconds=5)))
    b = await _breaker(h)
    assert (b["state"], b["resume_at"]) == ("half_open", None)
    bus.at += timedelta(hours=2)
    assert await h.resume_after_cooldown() == 0  # resumed already: nothing asked


async def test_the_probe_counts_only_attempts_begun_after_the_resume(
    service: tuple[DispositionHandlers, Bus],
) -> None:
    # The chaos run saw a probe "pass" two real seconds after the resume, during the provider
    # outage that tripped it: the outcomes were of calls live across the pause.
    h, bus = service
    await _calls(h, *["failed"] * 6)
    bus.at = T0 + timedelta(seconds=300)
    assert await h.resume_after_cooldown() == 1
    resumed = bus.at
    bus.at += timedelta(seconds=60)
    await _calls(h, *["completed"] * 4, started=resumed - timedelta(seconds=1))
    b = await _breaker(h)
    assert (b["state"], b["recent"]) == ("half_open", [])  # live across the pause: not a probe
    # nor a lease granted before the resume that expires now
    old = LeaseExpired(lease_id="lease_old", task_id="t", campaign_id=CID, attempt=1, granted_at=T0)
    await h.on_lease_expired(_env(old), old)
    assert (await _breaker(h))["recent"] == []
    # attempts begun since the resume decide: the provider still fails
    await _calls(h, "failed", "failed", "completed", "failed", started=resumed)
    b = await _breaker(h)
    assert (b["state"], b["streak"]) == ("open", 2)
    assert len(bus.of(CampaignPauseRequested)) == 2


async def test_concurrent_failures_trip_it_once(service: tuple[DispositionHandlers, Bus]) -> None:
    h, bus = service
    await _calls(h, *["failed"] * 5)
    await asyncio.gather(*(_calls(h, "failed") for _ in range(4)))
    assert len(bus.of(CampaignPauseRequested)) == 1
