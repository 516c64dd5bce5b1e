"""When the planner checks a campaign for a drain (nothing left to call): once the tasks counted
active at the last check have all become final, not once per final task; every held-back
campaign now and then, because the count is a shortcut and never the truth; and a campaign
started with nothing to call at once. Also what follows a report of an attempt whose write
reply was lost, and a dispatch refused after the campaign or the task was ended."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from outbound_core.clock import VirtualClock
from outbound_core.events import (
    CallAborted,
    CampaignDrained,
    CampaignStatusChanged,
    DispositionRecorded,
    LeadUpdated,
    make_envelope,
)
from task_planner.planner import Planner

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Repo:
    def __init__(self, active: int, total: int) -> None:
        self.active = active
        self.total = total
        self.counts = 0

    async def count_active(self, *, campaign_id: str, statuses: Any) -> int:
        self.counts += 1
        return self.active

    async def count(self, *, campaign_id: str) -> int:
        return self.total

    async def count_dispositions(self, *, campaign_id: str) -> int:
        return self.total


class Bus:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def emit(self, topic: Any, payload: Any, **_: Any) -> None:
        self.sent.append(payload)


def _planner(repo: Repo, verify: float = 30.0) -> tuple[Planner, Bus]:
    bus = Bus()
    planner = Planner(
        repo=repo,  # type: ignore[arg-type]
        bus=bus,  # type: ignore[arg-type]
        clock=VirtualClock(start=T0, anchor=0.0, speed=1.0),
        tick_batch=10,
        recheck=timedelta(hours=1),
        drain_verify_seconds=verify,
    )
    planner.campaigns["c"] = {"_id": "c", "status": "running", "expected_total": 3}
    return planner, bus


TASK = {"campaign_id": "c", "org_id": "o", "workspace_id": "w"}


def test_one_count_per_generation_of_active_tasks_and_the_drain_once_all_are_final() -> None:
    async def run() -> None:
        repo = Repo(active=2, total=3)
        planner, bus = _planner(repo)
        planner._drain_soon(None, TASK)  # the first final task: nothing known, counted
        await planner.check_drains()
        assert (repo.counts, bus.sent) == (1, [])
        repo.active = 1
        planner._drain_soon(None, TASK)  # one of the two: not counted again
        await planner.check_drains()
        assert repo.counts == 1
        repo.active = 0
        planner._drain_soon(None, TASK)  # the last: counted, drained
        await planner.check_drains()
        assert repo.counts == 2
        assert [type(e).__name__ for e in bus.sent] == ["CampaignDrained"]

    asyncio.run(run())


def test_a_campaign_held_back_by_the_count_is_verified_now_and_then() -> None:
    async def run() -> None:
        repo = Repo(active=5, total=3)
        planner, bus = _planner(repo, verify=0.0)
        planner._drain_soon(None, TASK)
        await planner.check_drains()
        # every other task ended by a path that does not report here: the count is stale
        repo.active = 0
        planner._drain_soon(None, TASK)  # held back by the count (4 left)
        await planner.check_drains()  # ...but verified, since verify=0
        assert [type(e).__name__ for e in bus.sent] == ["CampaignDrained"]

    asyncio.run(run())


class EmptyRepo(Repo):
    """A campaign none of whose contacts became a task (all opted out at ingestion)."""

    async def upsert_campaign(self, **_: Any) -> None:
        return None

    async def schedulable(self, **_: Any) -> list[Any]:
        return []

    async def in_status(self, **_: Any) -> list[Any]:
        return []


def test_a_campaign_started_with_nothing_to_call_drains_at_once() -> None:
    async def run() -> None:
        repo = EmptyRepo(active=0, total=0)
        planner, bus = _planner(repo)
        planner.campaigns["c"]["expected_total"] = 0
        started = CampaignStatusChanged(campaign_id="c", status="running", previous="scheduled")
        env = make_envelope(started, producer="t", org_id="o", workspace_id="w", occurred_at=T0)
        await planner.on_status_changed(env, started)
        await planner.check_drains()
        assert [(type(e).__name__, e.total_tasks) for e in bus.sent] == [("CampaignDrained", 0)]

    asyncio.run(run())


class LostReplyRepo(EmptyRepo):
    """The disposition's write was applied, but its reply was lost: the driver's retry matched
    nothing (the task had moved on) and the write reports "not applied"."""

    def __init__(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        super().__init__(active=0, total=1)
        self.reads = [before, after]

    async def get(self, task_id: str) -> dict[str, Any]:
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]

    async def transition(self, **_: Any) -> None:
        return None


def test_a_decision_applied_but_reported_lost_still_gets_its_lead_and_drain_check() -> None:
    async def run() -> None:
        task = {
            **TASK,
            "_id": "t",
            "phones": ["+12127364001"],
            "phone_index": 0,
            "pass_number": 1,
            "phone_states": [{"attempts": 0}],
            "attempt": 1,
            "status": "dialing",
            "seq": 3,
            "history": [],
        }
        stored = {
            **task,
            "status": "completed",
            "seq": 4,
            "last_disposition": "interested",
            "history": [{"attempt": 1, "call_id": "call_1", "disposition": "interested"}],
        }
        planner, bus = _planner(LostReplyRepo(task, stored))
        planner.campaigns["c"]["expected_total"] = 1
        ev = DispositionRecorded(
            call_id="call_1", task_id="t", campaign_id="c", attempt=1, disposition="interested"
        )
        env = make_envelope(ev, producer="t", org_id="o", workspace_id="w", occurred_at=T0)
        await planner.on_disposition(env, ev)
        leads = [e for e in bus.sent if isinstance(e, LeadUpdated)]
        assert [(e.seq, e.status) for e in leads] == [(4, "completed")]  # the stored state
        await planner.check_drains()
        assert any(isinstance(e, CampaignDrained) for e in bus.sent)

    asyncio.run(run())


class AbortRepo(EmptyRepo):
    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__(active=0, total=1)
        self.task = task

    async def transition(
        self, *, task_id: str, expect_status: list[str], set_fields: dict[str, Any], **_: Any
    ) -> dict[str, Any] | None:
        if self.task["status"] not in expect_status:
            return None
        self.task = {**self.task, **set_fields, "seq": self.task["seq"] + 1}
        return self.task


def _dialing(**extra: Any) -> dict[str, Any]:
    return {
        **TASK,
        "_id": "t",
        "phones": ["+12127364001"],
        "phone_index": 0,
        "pass_number": 1,
        "attempt": 1,
        "status": "dialing",
        "seq": 3,
        "history": [],
        **extra,
    }


def _abort(planner: Planner) -> None:
    ev = CallAborted(task_id="t", campaign_id="c", attempt=1, reason="campaign_stopped")
    env = make_envelope(ev, producer="t", org_id="o", workspace_id="w", occurred_at=T0)
    asyncio.run(planner.on_call_aborted(env, ev))


def test_a_dispatch_refused_after_the_campaign_stopped_archives_its_task() -> None:
    repo = AbortRepo(_dialing())
    planner, bus = _planner(repo)
    planner.campaigns["c"]["status"] = "stopped"
    _abort(planner)
    assert (repo.task["status"], repo.task["reason"], repo.task["due_at"]) == (
        "archived",
        "stopped",
        None,
    )
    assert [e.status for e in bus.sent if isinstance(e, LeadUpdated)] == ["archived"]


def test_a_dispatch_refused_for_a_task_archived_meanwhile_archives_it() -> None:
    repo = AbortRepo(_dialing(archive_after_call=True))
    planner, _ = _planner(repo)
    _abort(planner)
    assert (repo.task["status"], repo.task["reason"]) == ("archived", "archived")


def test_a_dispatch_refused_in_a_running_campaign_waits_again_uncounted() -> None:
    repo = AbortRepo(_dialing())
    planner, _ = _planner(repo)
    _abort(planner)
    assert (repo.task["status"], repo.task["attempt"], repo.task["history"]) == ("pending", 1, [])
