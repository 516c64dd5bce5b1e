"""Campaign lifecycle through the planner, end to end in simulated time: pause and resume and
stop with calls in flight, restart, and settings changed while a campaign runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.conftest import wait_until
from tests.e2e.planner_support import (
    act,
    campaign,
    create,
    leads,
    sim_calls,
    vclock,
    wait_status,
)

pytestmark = pytest.mark.e2e

ALL_DAY = {"start": "00:00", "end": "00:00"}
# A dispatch already on its way when the status changes may still be dialled: allow an hour of
# virtual time (a second at 3600x) for the change to reach the dialer.
PROPAGATION = timedelta(hours=1)


def _contacts(prefix: str, n: int, outcome: str) -> list[dict[str, Any]]:
    return [
        {"phone": f"+1212736{prefix}{i:02d}", "name": f"c{i}", "sim_outcomes": outcome}
        for i in range(n)
    ]


def _one_slot_campaign_in_flight(
    api: httpx.Client, stack: DevStack, prefix: str
) -> tuple[str, list[str]]:
    c = create(api, _contacts(prefix, 20, "interested"), max_slots=1, calling_hours=ALL_DAY)
    cid = c["id"]
    assert act(api, cid, "start").status_code == 200
    ids = [lead["id"] for lead in leads(api, cid).values()]
    wait_until(lambda: len(sim_calls(stack, ids)) >= 2, timeout=120, message="first calls")
    return cid, ids


def test_pause_lets_calls_finish_places_no_new_ones_and_resume_completes(
    api: httpx.Client, stack: DevStack
) -> None:
    clock = vclock(stack)
    cid, ids = _one_slot_campaign_in_flight(api, stack, "81")
    paused_at = clock.now()
    r = act(api, cid, "pause")
    assert r.status_code == 200 and r.json()["status"] == "paused"
    wait_until(lambda: clock.now() > paused_at + timedelta(hours=4), message="time passes")
    calls = sim_calls(stack, ids)
    assert [x["placed_at"] for x in calls if x["placed_at"] > paused_at + PROPAGATION] == []
    assert len(calls) < 20
    # Calls in progress at the pause finished and their outcomes were recorded.
    called = {x["task_id"] for x in calls}
    wait_until(
        lambda: all(
            (lead := {d["id"]: d for d in leads(api, cid).values()}[t])["status"] == "completed"
            and lead["last_disposition"] == "interested"
            for t in called
        ),
        timeout=60,
        message="outcomes of the calls in flight",
    )
    # The rest wait: a dispatch already on its way is refused by the dialer and comes back.
    wait_until(
        lambda: (
            {d["status"] for d in leads(api, cid).values() if d["id"] not in called}
            <= {"pending", "waiting_retry"}
        ),
        timeout=60,
        message="the others waiting",
    )

    assert act(api, cid, "resume").status_code == 200
    wait_status(api, cid, "completed", timeout=180)
    calls = sim_calls(stack, ids)
    assert sorted(x["task_id"] for x in calls) == sorted(ids)  # each contact exactly once
    assert {(d["status"], d["attempts"]) for d in leads(api, cid).values()} == {("completed", 1)}


def test_stop_archives_what_is_waiting_and_is_irreversible(
    api: httpx.Client, stack: DevStack
) -> None:
    clock = vclock(stack)
    cid, ids = _one_slot_campaign_in_flight(api, stack, "82")
    stopped_at = clock.now()
    r = act(api, cid, "stop")
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    wait_until(lambda: clock.now() > stopped_at + timedelta(hours=4), message="time passes")
    calls = sim_calls(stack, ids)
    assert [x["placed_at"] for x in calls if x["placed_at"] > stopped_at + PROPAGATION] == []
    called = {x["task_id"] for x in calls}

    def settled() -> dict[str, str] | None:
        status = {d["id"]: d["status"] for d in leads(api, cid).values()}
        ok = all(status[t] == "completed" for t in called) and all(
            status[t] == "archived" for t in set(ids) - called
        )
        return status if ok else None

    wait_until(settled, timeout=60, message="called leads completed, the rest archived")
    for action in ("start", "resume", "restart"):
        assert act(api, cid, action).status_code == 409
    assert campaign(api, cid)["status"] == "stopped"


def test_restart_resets_leads_and_counters_and_calls_again_from_attempt_one(
    api: httpx.Client, stack: DevStack
) -> None:
    contacts = [
        {"phone": "+12127368301", "name": "yes", "sim_outcomes": "interested"},
        {"phone": "+12127368302", "name": "never", "sim_outcomes": "no_answer"},
    ]
    c = create(api, contacts, max_attempts=2, retry_interval_minutes=60, calling_hours=ALL_DAY)
    cid = c["id"]
    assert act(api, cid, "start").status_code == 200
    first = wait_status(api, cid, "completed", timeout=180)
    assert first["calls_made"] == 3

    r = act(api, cid, "restart")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["calls_made"], r.json()["disposition_summary"]) == (
        "running",
        0,
        {},
    )
    assert {d["status"] for d in leads(api, cid).values()} <= {
        "pending",
        "queued",
        "dialing",
        "waiting_retry",
        "completed",
    }
    second = wait_status(api, cid, "completed", timeout=180)
    assert second["calls_made"] == 3
    assert second["disposition_summary"] == {"interested": 1, "no_answer": 2}
    # every figure is of the new run: one retry of three calls
    assert second["metrics"]["retry_rate"] == first["metrics"]["retry_rate"] == 0.3333
    assert sum(d["calls"] for d in second["metrics"]["daily"]) == 3
    by_name = leads(api, cid)
    assert (by_name["yes"]["status"], by_name["yes"]["attempts"]) == ("completed", 1)
    assert (by_name["never"]["status"], by_name["never"]["attempts"]) == ("not_reachable", 2)
    calls = sim_calls(stack, [d["id"] for d in by_name.values()])
    assert len(calls) == 6
    # the dialler's one-call-per-attempt key never repeats across runs
    assert len({(x["task_id"], x["attempt"]) for x in calls}) == 6


def test_settings_update_applies_to_tasks_not_yet_dialled(
    api: httpx.Client, stack: DevStack
) -> None:
    clock = vclock(stack)
    now = clock.now()
    ny_hour = now.astimezone(ZoneInfo("America/New_York")).hour
    # A window that opens 12 hours from now (margin for a loaded machine, where a broker hop
    # can take an hour of virtual time).
    closed = {"start": f"{(ny_hour + 12) % 24:02d}:00", "end": f"{(ny_hour + 13) % 24:02d}:00"}
    opens_at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=12)
    c = create(api, _contacts("84", 2, "interested"), calling_hours=closed)
    cid = c["id"]
    ids = [d["id"] for d in leads(api, cid).values()]
    assert act(api, cid, "start").status_code == 200
    wait_until(lambda: clock.now() > now + timedelta(hours=1), message="time passes")
    assert sim_calls(stack, ids) == []

    r = api.patch(f"/v1/campaigns/{cid}", json={"calling_hours": ALL_DAY})
    assert r.status_code == 200, r.text
    assert r.json()["calling_hours"]["start"] == "00:00"
    wait_status(api, cid, "completed", timeout=120)
    calls = sim_calls(stack, ids)
    assert len(calls) == 2 and all(x["placed_at"] < opens_at for x in calls)

    assert api.patch(f"/v1/campaigns/{cid}", json={"max_attempts": 2}).status_code == 409
    assert (
        api.patch(f"/v1/campaigns/{cid}", json={"action": "pause", "max_attempts": 2}).status_code
        == 422
    )

    # A shorter retry interval applies to a retry already waiting.
    c = create(
        api,
        _contacts("85", 1, "no_answer"),
        max_attempts=2,
        retry_interval_minutes=60 * 24 * 3,
        calling_hours=ALL_DAY,
    )
    cid = c["id"]
    ids = [d["id"] for d in leads(api, cid).values()]
    assert act(api, cid, "start").status_code == 200
    wait_until(
        lambda: leads(api, cid)["c0"]["status"] == "waiting_retry",
        timeout=60,
        message="first attempt done",
    )
    r = api.patch(f"/v1/campaigns/{cid}", json={"retry_interval_minutes": 60})
    assert r.status_code == 200 and r.json()["retry_interval_minutes"] == 60
    wait_status(api, cid, "completed", timeout=60)  # 60 virtual hours, not three days
    placed = [x["placed_at"] for x in sim_calls(stack, ids)]
    assert len(placed) == 2 and timedelta(minutes=60) <= placed[1] - placed[0] < timedelta(hours=6)
