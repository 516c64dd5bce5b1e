"""Slot allocation: caps, work conservation, ordering and at-most-once grants."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from slot_allocator.domain import Allocator, Lease, QueuedTask

PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
_lease_ids = itertools.count()


def item(
    task: str,
    *,
    attempt: int = 1,
    org: str = "org_a",
    campaign: str = "cmp_a",
    priority: str = "normal",
    attempt_priority: int = 1,
    callback: bool = False,
    eligible: int = 0,
    cap: int | None = None,
    tiebreak: float = 0.5,
) -> QueuedTask:
    return QueuedTask(
        task_id=task,
        attempt=attempt,
        org_id=org,
        workspace_id="ws_1",
        campaign_id=campaign,
        campaign_priority=priority,
        attempt_priority=attempt_priority,
        callback=callback,
        eligible_at=T0 + timedelta(minutes=eligible),
        max_slots=cap,
        tiebreak=tiebreak,
    )


def grant(a: Allocator, org: str = "org_a") -> QueuedTask | None:
    got = a.grant(org, f"lease_{next(_lease_ids)}")
    return None if got is None else got[0]


def drain(a: Allocator, org: str = "org_a") -> list[str]:
    out = []
    while (g := grant(a, org)) is not None:
        out.append(g.task_id)
    return out


# ---------------------------------------------------------------------------------- examples


def test_order_callback_priority_attempt_priority_eligible_time() -> None:
    a = Allocator(default_org_slots=100)
    a.enqueue(item("late", eligible=10))
    a.enqueue(item("early", eligible=0))
    a.enqueue(item("pass2", attempt_priority=2, eligible=-100))
    a.enqueue(item("low", campaign="cmp_low", priority="low", eligible=-1000))
    a.enqueue(item("high", campaign="cmp_high", priority="high", eligible=50, attempt_priority=3))
    a.enqueue(
        item(
            "cb", campaign="cmp_low", priority="low", callback=True, eligible=99, attempt_priority=9
        )
    )
    assert drain(a) == ["cb", "high", "early", "late", "pass2", "low"]


def test_enqueue_of_a_held_key_returns_false() -> None:
    a = Allocator(default_org_slots=1)
    assert a.enqueue(item("t1")) is True
    assert a.enqueue(item("t1", eligible=5)) is False
    assert a.holds("org_a", ("t1", 1))
    assert a.enqueue(item("t1", attempt=2)) is True  # a newer attempt replaces the old one
    assert not a.holds("org_a", ("t1", 1)) and a.holds("org_a", ("t1", 2))
    assert [g.attempt for g in [grant(a)] if g] == [2]
    assert grant(a) is None


def test_org_total_and_release() -> None:
    a = Allocator(default_org_slots=2)
    for i in range(4):
        a.enqueue(item(f"t{i}", eligible=i))
    g1 = a.grant("org_a", "l1")
    g2 = a.grant("org_a", "l2")
    assert g1 and g2 and a.grant("org_a", "l3") is None
    assert a.org("org_a").active == 2
    released = a.release("org_a", "l1")
    assert released == g1[1]
    assert a.release("org_a", "l1") is None  # twice is harmless
    assert a.release("org_a", "nope") is None
    g3 = a.grant("org_a", "l3")
    assert g3 is not None and g3[0].task_id == "t2"
    assert a.org("org_a").active_by_campaign["cmp_a"] == 2


def test_campaign_cap_does_not_block_other_campaigns() -> None:
    a = Allocator(default_org_slots=5)
    for i in range(5):
        a.enqueue(item(f"a{i}", campaign="cmp_a", priority="high", cap=1, eligible=i))
    for i in range(5):
        a.enqueue(item(f"b{i}", campaign="cmp_b", priority="low", eligible=i))
    assert drain(a) == ["a0", "b0", "b1", "b2", "b3"]
    assert a.org("org_a").active_by_campaign == {"cmp_a": 1, "cmp_b": 4}


def test_orgs_are_independent() -> None:
    a = Allocator(default_org_slots=1)
    a.enqueue(item("t1", org="org_a"))
    a.enqueue(item("t2", org="org_b"))
    a.enqueue(item("t3", org="org_b"))
    assert drain(a, "org_a") == ["t1"]
    assert drain(a, "org_b") == ["t2"]


def test_withdraw_and_withdraw_campaign() -> None:
    a = Allocator(default_org_slots=10)
    a.enqueue(item("t1", attempt=1))
    a.enqueue(item("t2", attempt=3))
    a.enqueue(item("c1", campaign="cmp_c"))
    a.enqueue(item("c2", campaign="cmp_c"))
    assert a.withdraw("org_a", "t2", attempt=2) == []
    assert [w.key for w in a.withdraw("org_a", "t2")] == [("t2", 3)]
    assert {w.task_id for w in a.withdraw_campaign("org_a", "cmp_c")} == {"c1", "c2"}
    assert a.withdraw_campaign("org_a", "cmp_c") == []
    assert drain(a) == ["t1"]
    a.enqueue(item("c3", campaign="cmp_c"))  # the campaign can come back
    assert drain(a) == ["c3"]


def test_add_lease_is_idempotent_and_counts_against_caps() -> None:
    a = Allocator(default_org_slots=2)
    lease = Lease("l_restored", "t0", 1, "org_a", "ws_1", "cmp_a")
    a.add_lease(lease)
    a.add_lease(lease)
    assert a.org("org_a").active == 1
    a.enqueue(item("t1", cap=1))
    a.enqueue(item("t2", campaign="cmp_b"))
    assert drain(a) == ["t2"]  # cmp_a is at its cap of 1 because of the restored lease
    a.release("org_a", "l_restored")
    assert drain(a) == ["t1"]
    assert a.org("org_a").active == 2


def test_grant_empty() -> None:
    a = Allocator(default_org_slots=3)
    assert a.grant("org_x", "l") is None
    a.enqueue(item("t1"))
    a.withdraw("org_a", "t1")
    assert a.grant("org_a", "l") is None


def test_older_attempt_does_not_replace_a_newer_one() -> None:
    a = Allocator(default_org_slots=1)
    a.enqueue(item("t1", attempt=2))
    a.enqueue(item("t1", attempt=1))
    assert a.holds("org_a", ("t1", 2))


def test_reenqueue_after_withdraw_uses_the_new_sort_key() -> None:
    a = Allocator(default_org_slots=1)
    a.enqueue(item("t1", eligible=0))
    a.withdraw("org_a", "t1")
    a.enqueue(item("t2", eligible=10))
    a.enqueue(item("t1", eligible=20))  # same key again, now later than t2
    assert drain(a) == ["t2"]


# -------------------------------------------------------------------------------- properties

ORGS = ["org_a", "org_b"]
CAMPAIGNS = ["cmp_1", "cmp_2", "cmp_3", "cmp_4"]

op = st.one_of(
    st.tuples(
        st.just("enqueue"),
        st.sampled_from(ORGS),
        st.sampled_from(CAMPAIGNS),
        st.integers(0, 14),
        st.integers(1, 3),
        st.booleans(),
        st.integers(1, 3),
        st.integers(-60, 60),
    ),
    st.tuples(st.just("grant"), st.sampled_from(ORGS)),
    st.tuples(st.just("grant_all"), st.sampled_from(ORGS)),
    st.tuples(st.just("release"), st.sampled_from(ORGS), st.integers(0, 20)),
    st.tuples(st.just("withdraw"), st.sampled_from(ORGS), st.integers(0, 14)),
    st.tuples(st.just("withdraw_campaign"), st.sampled_from(ORGS), st.sampled_from(CAMPAIGNS)),
)
config = st.tuples(
    st.fixed_dictionaries({o: st.integers(0, 6) for o in ORGS}),
    st.fixed_dictionaries({c: st.sampled_from(["low", "normal", "high"]) for c in CAMPAIGNS}),
    st.fixed_dictionaries({c: st.none() | st.integers(0, 4) for c in CAMPAIGNS}),
)


def _check_invariants(a: Allocator, slots: dict[str, int], caps: dict[str, int | None]) -> None:
    for org_id in ORGS:
        org = a.org(org_id)
        assert org.active <= slots[org_id]
        per = Counter(lease.campaign_id for lease in org.leases.values())
        for c in CAMPAIGNS:
            assert org.active_by_campaign.get(c, 0) == per.get(c, 0)
            cap = caps[c]
            if cap is not None:
                assert per.get(c, 0) <= cap


def _run(
    ops: list[tuple[Any, ...]],
    cfg: tuple[dict[str, int], dict[str, str], dict[str, int | None]],
    *,
    reenqueue_after_withdraw: bool,
    check_order: bool = True,
) -> None:
    slots, prio, caps = cfg
    a = Allocator(default_org_slots=0)
    for org_id in ORGS:
        a.org(org_id).total_slots = slots[org_id]
    granted: set[tuple[str, str, int]] = set()
    withdrawn: set[tuple[str, str, int]] = set()
    tiebreaks = itertools.count()
    task_campaign: dict[tuple[str, str], str] = {}
    for o in ops:
        kind, org_id = o[0], o[1]
        org = a.org(org_id)
        if kind == "enqueue":
            _, _, campaign, n, attempt, callback, ap, minutes = o
            task = f"tsk_{n}"
            campaign = task_campaign.setdefault((org_id, task), campaign)  # a task has one
            full_key = (org_id, task, attempt)
            if full_key in granted:
                continue  # the service refuses a dispatched attempt (repo.was_dispatched)
            if not reenqueue_after_withdraw and full_key in withdrawn:
                continue
            held = a.holds(org_id, (task, attempt))
            newer = [k for k in org.items if k[0] == task and k[1] > attempt]
            ok = a.enqueue(
                QueuedTask(
                    task_id=task,
                    attempt=attempt,
                    org_id=org_id,
                    workspace_id="ws",
                    campaign_id=campaign,
                    campaign_priority=prio[campaign],
                    attempt_priority=ap,
                    callback=callback,
                    eligible_at=T0 + timedelta(minutes=minutes),
                    max_slots=caps[campaign],
                    tiebreak=next(tiebreaks) / 1000,
                )
            )
            if newer:  # an older attempt never replaces a newer queued one
                assert ok is False
                assert [k for k in org.items if k[0] == task] == newer
                continue
            assert ok is (not held)
            assert a.holds(org_id, (task, attempt))
            assert [k for k in org.items if k[0] == task] == [(task, attempt)]
        elif kind in ("grant", "grant_all"):
            while True:
                queued = list(org.items.values())
                got = a.grant(org_id, f"lease_{next(_lease_ids)}")
                if got is None:
                    # work-conserving: the org is full or every queued task is capped
                    if org.active < org.total_slots:
                        for q in org.items.values():
                            cap = caps[q.campaign_id]
                            assert cap is not None
                            assert org.active_by_campaign.get(q.campaign_id, 0) >= cap
                    break
                chosen, lease = got
                key = (org_id, chosen.task_id, chosen.attempt)
                assert key not in granted, "a (task, attempt) was granted twice"
                granted.add(key)
                assert lease.task_id == chosen.task_id and lease.campaign_id == chosen.campaign_id
                assert not a.holds(org_id, chosen.key)
                # the best task whose campaign had room
                room = [
                    q
                    for q in queued
                    if caps[q.campaign_id] is None
                    or org.active_by_campaign.get(q.campaign_id, 0)
                    - (q.campaign_id == chosen.campaign_id)
                    < caps[q.campaign_id]
                ]
                assert chosen in room
                if check_order:
                    assert chosen.sort_key() == min(q.sort_key() for q in room)
                if kind == "grant":
                    break
        elif kind == "release":
            leases = sorted(org.leases)
            if leases:
                lease_id = leases[o[2] % len(leases)]
                assert a.release(org_id, lease_id) is not None
        elif kind == "withdraw":
            for w in a.withdraw(org_id, f"tsk_{o[2]}"):
                withdrawn.add((org_id, w.task_id, w.attempt))
        elif kind == "withdraw_campaign":
            for w in a.withdraw_campaign(org_id, o[2]):
                withdrawn.add((org_id, w.task_id, w.attempt))
                assert w.campaign_id == o[2]
            assert all(q.campaign_id != o[2] for q in org.items.values())
        _check_invariants(a, slots, caps)


@given(st.lists(op, max_size=60), config)
@PROPS
def test_random_operations_keep_the_invariants(
    ops: list[tuple[Any, ...]],
    cfg: tuple[dict[str, int], dict[str, str], dict[str, int | None]],
) -> None:
    _run(ops, cfg, reenqueue_after_withdraw=False)


@given(st.lists(op, max_size=60), config)
@PROPS
def test_random_operations_with_reenqueue_after_withdraw(
    ops: list[tuple[Any, ...]],
    cfg: tuple[dict[str, int], dict[str, str], dict[str, int | None]],
) -> None:
    _run(ops, cfg, reenqueue_after_withdraw=True)
