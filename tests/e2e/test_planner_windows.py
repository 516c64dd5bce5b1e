"""The planner's calling windows, end to end in simulated time: every call the simulated phone
network receives is checked against the recipient's local hours and the campaign schedule."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from outbound_core.devstack import DevStack
from tests.conftest import wait_until
from tests.e2e.planner_support import (
    aborts,
    act,
    create,
    leads,
    sim_calls,
    vclock,
    wait_status,
)

pytestmark = pytest.mark.e2e
SLACK = timedelta(minutes=15)  # virtual: 250 ms of real time at 3600x (seen: 8 min at load 25)

NY, LA, KOLKATA = (ZoneInfo(z) for z in ("America/New_York", "America/Los_Angeles", "Asia/Kolkata"))


def test_each_recipient_is_called_only_inside_their_local_hours(
    api: httpx.Client, stack: DevStack
) -> None:
    contacts = [
        {"phone": "+12127364001", "name": "ny", "sim_outcomes": "no_answer"},
        {"phone": "+13105554001", "name": "la", "sim_outcomes": "no_answer"},
        {"phone": "+919876504001", "name": "in", "sim_outcomes": "no_answer"},
    ]
    zones = {"ny": NY, "la": LA, "in": KOLKATA}
    c = create(
        api,
        contacts,
        max_attempts=3,
        retry_interval_minutes=30,
        calling_hours={"start": "09:00", "end": "10:00"},
    )
    cid = c["id"]
    assert act(api, cid, "start").status_code == 200
    wait_status(api, cid, "completed", timeout=240)

    by_name = leads(api, cid)
    ids = {lead["id"]: name for name, lead in by_name.items()}
    calls = sim_calls(stack, list(ids))
    assert len(calls) == 9, [(ids[x["task_id"]], x["placed_at"]) for x in calls]
    for call in calls:
        name = ids[call["task_id"]]
        local = call["placed_at"].astimezone(zones[name])
        # The dialer's guard checks the window an instant before the network places the call;
        # at 3600x that instant is up to a minute or so of virtual time on a loaded machine.
        assert time(9, 0) <= local.time() < time(10, 0) or (
            time(10, 0)
            <= local.time()
            < (datetime.combine(local.date(), time(10, 0)) + SLACK).time()
        ), f"{name} called at {local}"
    # The Indian number was called at 09:xx IST: the middle of the night in New York.
    for call in calls:
        if ids[call["task_id"]] == "in":
            assert not time(9, 0) <= call["placed_at"].astimezone(NY).time() < time(10, 0)
    # Retries: never sooner than the interval after the previous attempt (placed + ring).
    for name in zones:
        placed = [x["placed_at"] for x in calls if ids[x["task_id"]] == name]
        assert all(b - a >= timedelta(minutes=30) for a, b in itertools.pairwise(placed))
        assert by_name[name]["status"] == "not_reachable" and by_name[name]["attempts"] == 3
    # The dialer's last-moment guard may refuse a dispatch that reached it just after a window
    # closed (at 3600x a broker hop is minutes of virtual time)
    # (or after its lease ran out, on a loaded machine); such a dispatch is never dialled.
    assert {a["reason"] for a in aborts(stack, cid)} <= {"outside_window", "lease_expired"}


def test_scheduled_campaign_calls_only_between_start_and_end(
    api: httpx.Client, stack: DevStack
) -> None:
    clock = vclock(stack)
    start = (clock.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    end = start + timedelta(hours=15)
    contacts = [
        {"phone": f"+1212736700{i}", "name": f"s{i}", "sim_outcomes": "no_answer"} for i in range(3)
    ]
    c = create(
        api,
        contacts,
        max_attempts=5,
        retry_interval_minutes=600,
        calling_hours={"start": "00:00", "end": "00:00"},
        schedule={"start_time": start.isoformat(), "end_time": end.isoformat(), "timezone": "UTC"},
    )
    cid = c["id"]
    assert c["status"] == "scheduled"
    done = wait_status(api, cid, "completed", timeout=120)
    assert done["status_reason"] == "schedule_ended"
    # Past the instant a third attempt would have been due: nothing more was dialled.
    wait_until(lambda: clock.now() > end + timedelta(hours=8), timeout=30, message="time passes")
    by_name = leads(api, cid)
    calls = sim_calls(stack, [lead["id"] for lead in by_name.values()])
    detail = (
        [(x["to"][-1], x["attempt"], x["placed_at"] - start) for x in calls],
        [a["reason"] for a in aborts(stack, cid)],
    )
    # Attempts at the start and ten hours later; a third would fall after the end. On a loaded
    # machine a broker hop can take hours of virtual time, so the second may not fit: what
    # must hold is that each contact was called and nothing was dialled outside the schedule.
    assert {x["task_id"] for x in calls} == {lead["id"] for lead in by_name.values()}, detail
    assert 3 <= len(calls) <= 6, detail
    assert all(start <= x["placed_at"] < end for x in calls), detail
    assert {lead["status"] for lead in by_name.values()} == {"archived"}


def test_breadth_first_across_three_phones_follows_the_rule(
    api: httpx.Client, stack: DevStack
) -> None:
    phones = ["+12127366001", "+12127366002", "+12127366003"]
    # One outcome per attempt of the contact, across its phones. Pass 1: p1 no answer, p2 busy,
    # p3 voicemail (not retryable by default). Pass 2 retries p1 and p2; pass 3 p1 answers.
    script = "no_answer,busy,voicemail,no_answer,no_answer,interested"
    c = create(
        api,
        [
            {
                "phone1": phones[0],
                "phone2": phones[1],
                "phone3": phones[2],
                "name": "multi",
                "sim_outcomes": script,
            }
        ],
        max_attempts=3,
        retry_interval_minutes=720,
        calling_hours={"start": "00:00", "end": "00:00"},
    )
    cid = c["id"]
    assert act(api, cid, "start").status_code == 200
    wait_status(api, cid, "completed", timeout=120)
    lead = leads(api, cid)["multi"]
    calls = sim_calls(stack, [lead["id"]])
    assert [x["to"] for x in calls] == [phones[i] for i in (0, 1, 2, 0, 1, 0)]
    assert [x["outcome"] for x in calls] == script.split(",")
    placed = [x["placed_at"] for x in calls]
    gaps = [b - a for a, b in itertools.pairwise(placed)]
    # Within a pass the next phone follows at once (a few broker hops: minutes of virtual time
    # at 3600x); a new pass waits the 12-hour retry interval.
    assert gaps[2] >= timedelta(hours=12) and gaps[4] >= timedelta(hours=12), gaps
    assert all(gaps[i] < timedelta(hours=3) for i in (0, 1, 3)), gaps
    assert (lead["status"], lead["last_disposition"], lead["attempts"], lead["pass"]) == (
        "completed",
        "interested",
        6,
        3,
    )


def test_numbers_without_a_common_window_are_blocked_with_a_reason(api: httpx.Client) -> None:
    # A US toll-free number maps to 42 zones, Guam to Newfoundland: 09–17 never overlaps.
    c = create(
        api,
        [
            {"phone": "+18005551234", "name": "tollfree"},
            {"phone": "+919876507001", "name": "ok", "sim_outcomes": "interested"},
        ],
        calling_hours={"start": "09:00", "end": "17:00"},
    )
    cid = c["id"]
    assert act(api, cid, "start").status_code == 200
    wait_status(api, cid, "completed", timeout=120)
    by_name = leads(api, cid)
    assert (by_name["tollfree"]["status"], by_name["tollfree"]["reason"]) == (
        "blocked",
        "empty_window",
    )
    assert by_name["ok"]["status"] == "completed"
