"""When campaign-api shows a drained campaign as completed: at once if its counters already
hold every disposition the planner applied, else when the last of them is counted, and after
the grace period at the latest (a count that never arrives must not keep it running). Also the
other automatic changes: a campaign the circuit breaker paused resumes when it asks, unless a
human took the pause over."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from campaign_api.auth import Principal
from campaign_api.campaigns import CampaignService
from outbound_core.clock import VirtualClock
from outbound_core.events import (
    CampaignDrained,
    CampaignPauseRequested,
    CampaignResumeRequested,
    CampaignStatusChanged,
    make_envelope,
)

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Campaigns:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    async def find_one(self, flt: dict[str, Any]) -> dict[str, Any] | None:
        doc = self.docs.get(flt["_id"])
        return dict(doc) if doc else None


class Repo:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.campaigns = Campaigns({doc["_id"]: doc})

    async def campaign(self, *, workspace_id: str, campaign_id: str) -> dict[str, Any] | None:
        return await self.campaigns.find_one({"_id": campaign_id})

    async def set_status(
        self, *, campaign_id: str, expect: list[str], status: str, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        doc = self.campaigns.docs[campaign_id]
        if doc["status"] not in expect:
            return None
        doc.update(status=status, **fields)
        return dict(doc)

    async def pending_completions(self, *, older_than: float) -> list[dict[str, Any]]:
        return [
            d
            for d in self.campaigns.docs.values()
            if (d.get("completion_pending") or {}).get("since", float("inf")) <= older_than
        ]


class Bus:
    def envelope(self, payload: Any, **_: Any) -> Any:
        return payload


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def publish(self, items: list[Any]) -> None:
        self.sent += [i.envelope for i in items]


def _service(summary: dict[str, int]) -> tuple[CampaignService, Repo, Outbox]:
    doc = {
        "_id": "c",
        "org_id": "o",
        "workspace_id": "w",
        "status": "running",
        "started_at": T0,
        "disposition_summary": summary,
    }
    repo, outbox = Repo(doc), Outbox()
    svc = CampaignService(
        repo=repo,  # type: ignore[arg-type]
        bus=Bus(),  # type: ignore[arg-type]
        outbox=outbox,  # type: ignore[arg-type]
        clock=VirtualClock(start=T0, anchor=0.0, speed=1.0),
        max_contacts=10,
        contacts_per_event=10,
        completion_grace=30.0,
    )
    return svc, repo, outbox


def _drained(dispositions: int | None) -> tuple[Any, CampaignDrained]:
    ev = CampaignDrained(campaign_id="c", total_tasks=3, dispositions=dispositions)
    return make_envelope(ev, producer="t", org_id="o", workspace_id="w", occurred_at=T0), ev


def _completions(outbox: Outbox) -> list[str]:
    return [e.status for e in outbox.sent if isinstance(e, CampaignStatusChanged)][
        ::2
    ]  # each change goes to the allocator and to the campaign topic


def test_counters_already_complete_complete_the_campaign_at_once() -> None:
    svc, repo, outbox = _service({"interested": 2, "no_answer": 1})
    asyncio.run(svc.on_drained(*_drained(3)))
    assert repo.campaigns.docs["c"]["status"] == "completed"
    assert _completions(outbox) == ["completed"]


def test_a_drain_ahead_of_its_last_disposition_waits_for_it() -> None:
    async def run() -> None:
        svc, repo, outbox = _service({"interested": 1})
        await svc.on_drained(*_drained(2))
        doc = repo.campaigns.docs["c"]
        assert (doc["status"], doc["completion_pending"]["dispositions"]) == ("running", 2)
        doc["disposition_summary"] = {"interested": 1, "busy": 1}  # the last one is counted
        await svc.on_counted("c", doc)
        assert doc["status"] == "completed"
        assert doc["completion_pending"] is None
        assert _completions(outbox) == ["completed"]

    asyncio.run(run())


def test_a_count_that_never_comes_completes_the_campaign_after_the_grace() -> None:
    async def run() -> None:
        svc, repo, _ = _service({})
        await svc.on_drained(*_drained(1))
        await svc.complete_overdue()
        assert repo.campaigns.docs["c"]["status"] == "running"  # within the grace
        repo.campaigns.docs["c"]["completion_pending"]["since"] = time.time() - 31
        await svc.complete_overdue()
        assert repo.campaigns.docs["c"]["status"] == "completed"

    asyncio.run(run())


def test_a_drain_event_of_an_older_planner_completes_at_once() -> None:
    svc, repo, _ = _service({})
    asyncio.run(svc.on_drained(*_drained(None)))
    assert repo.campaigns.docs["c"]["status"] == "completed"


def _env(ev: Any) -> Any:
    return make_envelope(ev, producer="t", org_id="o", workspace_id="w", occurred_at=T0)


def _breaker_paused() -> tuple[CampaignService, Repo, Outbox]:
    svc, repo, outbox = _service({})
    pause = CampaignPauseRequested(campaign_id="c", reason="circuit_breaker", detail="20 of 20")
    asyncio.run(svc.on_pause_requested(_env(pause), pause))
    assert repo.campaigns.docs["c"]["status"] == "paused"
    return svc, repo, outbox


RESUME = CampaignResumeRequested(campaign_id="c", reason="circuit_breaker")


def test_the_breaker_resumes_the_campaign_it_paused() -> None:
    svc, repo, outbox = _breaker_paused()
    asyncio.run(svc.on_resume_requested(_env(RESUME), RESUME))
    doc = repo.campaigns.docs["c"]
    assert (doc["status"], doc["status_reason"]) == ("running", "circuit_breaker_resumed")
    assert _completions(outbox) == ["paused", "running"]
    asyncio.run(svc.on_resume_requested(_env(RESUME), RESUME))  # a redelivery: nothing more
    assert _completions(outbox) == ["paused", "running"]


def test_a_pause_a_human_took_over_is_not_resumed_by_the_breaker() -> None:
    svc, repo, outbox = _breaker_paused()
    who = Principal(org_id="o", workspace_id="w", key_id="k", role="admin")
    took = asyncio.run(svc.act(who=who, campaign_id="c", action="pause", reason="provider down"))
    assert (took["status"], took["status_reason"]) == ("paused", "provider down")
    asyncio.run(svc.on_resume_requested(_env(RESUME), RESUME))
    assert repo.campaigns.docs["c"]["status"] == "paused"
    assert _completions(outbox) == ["paused"]


def test_a_campaign_stopped_meanwhile_is_not_resumed() -> None:
    svc, repo, _ = _breaker_paused()
    repo.campaigns.docs["c"]["status"] = "stopped"
    asyncio.run(svc.on_resume_requested(_env(RESUME), RESUME))
    assert repo.campaigns.docs["c"]["status"] == "stopped"
