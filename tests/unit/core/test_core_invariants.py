"""The invariant checker finds each kind of breach in a fabricated state, and none in a clean
one."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outbound_core.invariants import Options, Snapshot, check, summarize

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
Doc = dict[str, Any]


def _task(tid: str, phone: str, history: list[Doc], status: str = "completed") -> Doc:
    return {
        "_id": tid,
        "campaign_id": "cmp_1",
        "org_id": "org_1",
        "workspace_id": "ws_1",
        "phones": [phone],
        "timezone": None,
        "status": status,
        "due_at": None,
        "seq": len(history) + 2,
        "history": history,
    }


def _sim(call_id: str, tid: str, attempt: int, phone: str, start: datetime, mins: int) -> Doc:
    return {
        "_id": call_id,
        "task_id": tid,
        "attempt": attempt,
        "to": phone,
        "placed_at": start,
        "ends_at": start + timedelta(minutes=mins),
        "status": "ended",
    }


def _dialer(call_id: str, tid: str, attempt: int) -> Doc:
    return {
        "_id": call_id,
        "task_id": tid,
        "attempt": attempt,
        "org_id": "org_1",
        "status": "ended",
        "closed_by": "provider",
    }


def _disp(call_id: str, tid: str, attempt: int, label: str) -> Doc:
    return {
        "_id": call_id,
        "task_id": tid,
        "attempt": attempt,
        "campaign_id": "cmp_1",
        "org_id": "org_1",
        "disposition": label,
    }


def clean() -> Snapshot:
    """Ann answers at once; Bob does not answer twice (max 2 attempts), one slot."""
    a, b = "+12125550101", "+12125550102"
    h = lambda n, d, c: {"attempt": n, "call_id": c, "phone_index": 0, "disposition": d}  # noqa: E731
    tasks = [
        _task("tsk_a", a, [h(1, "interested", "call_a1")]),
        _task(
            "tsk_b",
            b,
            [h(1, "no_answer", "call_b1"), h(2, "no_answer", "call_b2")],
            status="not_reachable",
        ),
    ]
    sims = [
        _sim("call_a1", "tsk_a", 1, a, T0, 5),
        _sim("call_b1", "tsk_b", 1, b, T0 + timedelta(minutes=5), 1),
        _sim("call_b2", "tsk_b", 2, b, T0 + timedelta(hours=2), 1),
    ]
    return Snapshot(
        sim_calls=sims,
        dialer_calls=[_dialer(c["_id"], c["task_id"], c["attempt"]) for c in sims],
        tasks=tasks,
        campaigns=[
            {
                "_id": "cmp_1",
                "org_id": "org_1",
                "status": "completed",
                "max_attempts": 2,
                "max_slots": 1,
                "calling_hours": {"start": "09:00", "end": "20:00"},
            }
        ],
        slot_configs=[{"_id": "org_1", "total_slots": 5, "workspaces": []}],
        dispositions=[
            _disp("call_a1", "tsk_a", 1, "interested"),
            _disp("call_b1", "tsk_b", 1, "no_answer"),
            _disp("call_b2", "tsk_b", 2, "no_answer"),
        ],
        api_campaigns=[
            {
                "_id": "cmp_1",
                "calls_made": 3,
                "disposition_summary": {"interested": 1, "no_answer": 2},
            }
        ],
        api_leads=[
            {"_id": t["_id"], "campaign_id": "cmp_1", "status": t["status"], "seq": t["seq"]}
            for t in tasks
        ],
        api_calls=[{"_id": c["_id"], "campaign_id": "cmp_1", "started_at": T0} for c in sims],
        deliveries=[
            {
                "_id": "dlv_1",
                "subscription_id": "sub_1",
                "msg_id": "msg_1",
                "org_id": "org_1",
                "status": "delivered",
                "next_attempt_at": None,
            }
        ],
    )


def test_a_clean_state_has_no_breach() -> None:
    assert check(clean(), Options(settled=True)) == []


def _kinds(snap: Snapshot, **opts: Any) -> dict[str, int]:
    return summarize(check(snap, Options(**opts)))


def test_a_call_outside_the_window_is_found() -> None:
    s = clean()
    s.sim_calls[2]["placed_at"] = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 21:00 in New York
    s.sim_calls[2]["ends_at"] = s.sim_calls[2]["placed_at"] + timedelta(minutes=1)
    breaches = check(s)
    assert [b.kind for b in breaches] == ["window"]
    assert breaches[0].subject == "call_b2"
    assert breaches[0].evidence["placed_at"].startswith("2026-03-03T02:00")


def test_the_window_slack_covers_a_call_placed_just_after_the_check() -> None:
    s = clean()
    s.sim_calls[2]["placed_at"] = datetime(2026, 3, 3, 1, 5, tzinfo=UTC)  # 20:05 in New York
    s.sim_calls[2]["ends_at"] = s.sim_calls[2]["placed_at"] + timedelta(minutes=1)
    assert _kinds(s) == {"window": 1}
    assert _kinds(s, window_slack=timedelta(minutes=10)) == {}


def test_an_opted_out_number_dialled_again_is_found() -> None:
    s = clean()
    s.suppressions.append(
        {"org_id": "org_1", "phone": "+12125550102", "at": T0 + timedelta(minutes=30)}
    )
    assert _kinds(s) == {"opted_out": 1}  # the second call only: the first came before


def test_an_attempt_dialled_twice_is_found() -> None:
    s = clean()
    again = copy.deepcopy(s.sim_calls[0])
    again["_id"] = "call_a1_again"
    again["placed_at"] = again["ends_at"] = T0 + timedelta(hours=3)
    s.sim_calls.append(again)
    s.dialer_calls.append(_dialer("call_a1_again", "tsk_a", 1))
    assert "double_dial" in _kinds(s)


def test_a_contact_in_two_calls_at_once_is_found() -> None:
    s = clean()
    s.sim_calls[2]["placed_at"] = T0 + timedelta(minutes=5, seconds=30)
    s.campaigns[0]["max_slots"] = 3
    breaches = [b for b in check(s) if b.kind == "overlap"]
    assert breaches and breaches[0].evidence["calls"] == ["call_b1", "call_b2"]


@pytest.mark.parametrize(
    ("scope", "change"),
    [
        ("campaign", lambda s: None),
        (
            "org",
            lambda s: (s.campaigns[0].pop("max_slots"), s.slot_configs[0].update(total_slots=1)),
        ),
        (
            "workspace",
            lambda s: (
                s.campaigns[0].pop("max_slots"),
                s.slot_configs[0].update(
                    workspaces=[{"workspace_id": "ws_1", "allocation": 1, "mode": "hard"}]
                ),
            ),
        ),
    ],
)
def test_a_cap_exceeded_at_any_instant_is_found(scope: str, change: Any) -> None:
    s = clean()
    change(s)
    s.sim_calls[1]["placed_at"] = T0 + timedelta(minutes=4)  # Bob rings while Ann still talks
    breaches = [b for b in check(s) if b.kind == "cap"]
    assert [b.subject.split()[0] for b in breaches] == [scope]
    assert breaches[0].evidence["calls"] == ["call_a1", "call_b1"]
    assert "2 calls at once" in breaches[0].detail


def test_a_slot_freed_and_reused_at_the_same_instant_is_not_a_breach() -> None:
    s = clean()
    s.sim_calls[1]["placed_at"] = s.sim_calls[0]["ends_at"]
    assert check(s) == []


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda s: s.tasks[1].update(status="waiting_retry", due_at=None), "without a due time"),
        (lambda s: s.tasks[1].update(status="dialing"), "after its campaign ended"),
        (lambda s: s.tasks.pop(), "accepted contact has no task"),
    ],
)
def test_a_lost_contact_is_found(change: Any, detail: str) -> None:
    s = clean()
    change(s)
    lost = [b for b in check(s) if b.kind == "lost"]
    assert any(detail in b.detail for b in lost), lost


def test_a_contact_given_up_too_early_is_found() -> None:
    s = clean()
    s.campaigns[0]["max_attempts"] = 3
    found = [b for b in check(s) if b.kind == "attempts"]
    assert len(found) == 1 and "after 2 of 3 attempts" in found[0].detail


def test_more_attempts_than_the_policy_allows_is_found() -> None:
    s = clean()
    s.campaigns[0]["max_attempts"] = 1
    found = [b for b in check(s) if b.kind == "attempts"]
    assert found and "policy allows 1" in found[0].detail


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda s: s.api_campaigns[0].update(calls_made=4), "calls_made 4"),
        (lambda s: s.api_campaigns[0]["disposition_summary"].update(busy=1), "disposition summary"),
        (lambda s: s.api_leads[0].update(seq=1), "lead state disagrees"),
        (lambda s: s.dispositions.pop(), "has no disposition"),
        (lambda s: s.api_calls.pop(), "call records"),
        (lambda s: s.dialer_calls.pop(0), "never recorded"),
        (lambda s: s.tasks[0].update(history=[]), "missing from its task's history"),
        (lambda s: s.deliveries.append(dict(s.deliveries[0], _id="dlv_2")), "stored 2 times"),
    ],
)
def test_records_that_disagree_are_found(change: Any, detail: str) -> None:
    s = clean()
    change(s)
    found = check(s)
    assert any(detail in b.detail for b in found), found


def test_a_call_still_in_flight_after_the_run_is_found_only_when_settled() -> None:
    s = clean()
    s.dialer_calls[0]["status"] = "active"
    assert not any(b.kind == "lost" for b in check(s))
    assert any(b.kind == "lost" for b in check(s, Options(settled=True)))
