"""Hard and soft workspace allocations, checked against a brute-force model over random orgs,
allocations, caps, priorities and event sequences (enqueue, grant, release, withdraw, expiry,
settings changes)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from slot_allocator.domain import Allocator, OrgState, QueuedTask, WorkspaceSlots

PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ORG = "org_a"
WORKSPACES = ["ws_1", "ws_2", "ws_3"]
CAMPAIGNS = {"c1": "ws_1", "c2": "ws_1", "c3": "ws_2", "c4": "ws_3", "c5": "ws_3"}
_ids = itertools.count()

ws_conf = st.tuples(st.integers(0, 4), st.sampled_from(["hard", "soft"]))
org_conf = st.tuples(st.integers(0, 8), st.fixed_dictionaries(dict.fromkeys(WORKSPACES, ws_conf)))
op = st.one_of(
    st.tuples(
        st.just("enqueue"),
        st.sampled_from(sorted(CAMPAIGNS)),
        st.integers(0, 25),
        st.booleans(),
        st.integers(1, 2),
        st.integers(-30, 30),
    ),
    st.tuples(st.just("grant")),
    st.tuples(st.just("grant_all")),
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("withdraw"), st.integers(0, 25)),
    st.tuples(st.just("withdraw_campaign"), st.sampled_from(sorted(CAMPAIGNS))),
    st.tuples(st.just("configure"), org_conf),
)


def _configure(a: Allocator, conf: tuple[int, dict[str, tuple[int, str]]]) -> None:
    total, wss = conf
    # the API refuses allocations that sum above the total; keep that rule here too
    scaled: dict[str, WorkspaceSlots] = {}
    room = total
    for w in WORKSPACES:
        alloc = min(wss[w][0], room)
        room -= alloc
        scaled[w] = WorkspaceSlots(allocation=alloc, mode=wss[w][1])
    a.configure(ORG, total_slots=total, workspaces=scaled)


def _grantable(org: OrgState, caps: dict[str, int | None]) -> dict[str, int]:
    """Per workspace: how many queued tasks their campaign caps would let start now."""
    queued = Counter(q.campaign_id for q in org.items.values())
    active = Counter(lease.campaign_id for lease in org.leases.values())
    out: Counter[str] = Counter()
    for c, n in queued.items():
        cap = caps[c]
        out[CAMPAIGNS[c]] += n if cap is None else min(n, max(0, cap - active[c]))
    return dict(out)


def _model(org: OrgState, caps: dict[str, int | None]) -> tuple[int, dict[str, int], int]:
    active_ws = Counter(lease.workspace_id for lease in org.leases.values())
    grantable = _grantable(org, caps)
    reserved = 0
    for w in WORKSPACES:
        ws = org.workspaces.get(w)
        alloc = ws.allocation if ws else 0
        reserved += min(max(0, alloc - active_ws[w]), grantable.get(w, 0))
    return org.total_slots - len(org.leases), dict(active_ws), reserved


def _allowed(org: OrgState, caps: dict[str, int | None]) -> list[QueuedTask]:
    """Queued tasks that every limit would let start now (the brute-force answer)."""
    free, active_ws, reserved = _model(org, caps)
    if free <= 0:
        return []
    active_c = Counter(lease.campaign_id for lease in org.leases.values())
    out = []
    for q in org.items.values():
        cap = caps[q.campaign_id]
        if cap is not None and active_c[q.campaign_id] >= cap:
            continue
        ws = org.workspaces[q.workspace_id]
        owed = active_ws.get(q.workspace_id, 0) < ws.allocation
        if owed or (not ws.hard and free > reserved):
            out.append(q)
    return out


def _check(a: Allocator, caps: dict[str, int | None]) -> None:
    org = a.org(ORG)
    _, active_ws, reserved = _model(org, caps)
    assert org.reserved == reserved
    for w in WORKSPACES:
        ws = org.workspaces.get(w)
        if ws is not None:
            assert ws.active == active_ws.get(w, 0)
    per = Counter(lease.campaign_id for lease in org.leases.values())
    assert {c: n for c, n in org.active_by_campaign.items() if n} == dict(per)


@given(
    org_conf,
    st.fixed_dictionaries({c: st.none() | st.integers(0, 3) for c in CAMPAIGNS}),
    st.lists(op, max_size=80),
    st.sampled_from(["low", "normal", "high"]),
)
@PROPS
def test_hard_and_soft_allocations_hold_for_any_sequence(
    conf: tuple[int, dict[str, tuple[int, str]]],
    caps: dict[str, int | None],
    ops: list[tuple[Any, ...]],
    c1_priority: str,
) -> None:
    a = Allocator(default_org_slots=0)
    _configure(a, conf)
    org = a.org(ORG)
    granted: set[tuple[str, int]] = set()
    for o in ops:
        kind = o[0]
        if kind == "enqueue":
            _, campaign, n, callback, attempt, minutes = o
            task = f"{campaign}_t{n}"
            if (task, attempt) in granted:
                continue  # the service refuses an attempt already dispatched
            a.enqueue(
                QueuedTask(
                    task_id=task,
                    attempt=attempt,
                    org_id=ORG,
                    workspace_id=CAMPAIGNS[campaign],
                    campaign_id=campaign,
                    campaign_priority=c1_priority if campaign == "c1" else "normal",
                    attempt_priority=attempt,
                    callback=callback,
                    eligible_at=T0 + timedelta(minutes=minutes),
                    max_slots=caps[campaign],
                )
            )
        elif kind in ("grant", "grant_all"):
            while True:
                allowed = _allowed(org, caps)
                before = Counter(lease.workspace_id for lease in org.leases.values())
                got = a.grant(ORG, f"l{next(_ids)}")
                if got is None:
                    # work-conserving: nothing any limit allows was left waiting
                    assert allowed == [], f"idle slot with {allowed[0].key} allowed"
                    break
                chosen, _lease = got
                assert chosen in allowed
                assert chosen.key not in granted, "an attempt was granted twice"
                granted.add(chosen.key)
                # order: no allowed task of a better priority class was passed over
                best = min(q.sort_key()[:3] for q in allowed)
                assert chosen.sort_key()[:3] == best
                # limits after the grant: org total; a hard workspace's allocation
                assert org.active <= org.total_slots
                ws = org.workspaces[chosen.workspace_id]
                if ws.hard:
                    assert before[chosen.workspace_id] < ws.allocation
                # a borrower started only with slots no owner with work was owed
                if before[chosen.workspace_id] >= ws.allocation:
                    free, _, reserved = _model(org, caps)
                    assert free >= reserved
                if kind == "grant":
                    break
        elif kind == "release":
            if org.leases:
                lease_id = sorted(org.leases)[o[1] % len(org.leases)]
                assert a.release(ORG, lease_id) is not None
                assert a.release(ORG, lease_id) is None  # a duplicate release is harmless
        elif kind == "withdraw":
            for c in sorted(CAMPAIGNS):
                a.withdraw(ORG, f"{c}_t{o[1]}")
        elif kind == "withdraw_campaign":
            a.withdraw_campaign(ORG, o[1])
        elif kind == "configure":
            _configure(a, o[1])  # may lower limits below what is active: nothing is cancelled
        _check(a, caps)
    # leases always end: once every lease is released the org holds nothing
    for lease_id in list(org.leases):
        a.release(ORG, lease_id)
    assert org.active == 0
    assert all(ws.active == 0 for ws in org.workspaces.values())
    assert all(c.active == 0 for c in org.campaigns.values())
    _check(a, caps)


@given(
    st.integers(1, 6),
    st.integers(0, 6),
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from(["hard", "soft"]),
)
@PROPS
def test_a_soft_owner_gets_its_allocation_back_before_a_borrower_starts(
    own: int, other: int, owner_work: int, borrower_work: int, borrower_mode: str
) -> None:
    """ws_2 borrows everything while ws_1 is idle; when ws_1 gets work, every slot that frees
    goes to ws_1 until it has its allocation (or runs out of work)."""
    total = own + other
    a = Allocator(default_org_slots=0)
    a.configure(
        ORG,
        total_slots=total,
        workspaces={
            "ws_1": WorkspaceSlots(own, "soft"),
            "ws_2": WorkspaceSlots(other, borrower_mode),
        },
    )
    for i in range(total + borrower_work):
        a.enqueue(_task(f"b{i}", "c3", "ws_2", minutes=-100))  # older, so first by time
    leases = []
    while (g := a.grant(ORG, f"l{next(_ids)}")) is not None:
        leases.append(g[1])
    org = a.org(ORG)
    expect_b = total if borrower_mode == "soft" else other
    assert org.workspaces["ws_2"].active == expect_b
    for i in range(owner_work):
        a.enqueue(_task(f"a{i}", "c1", "ws_1"))
    started_a = 0
    for lease in [None, *leases]:
        if lease is not None:
            a.release(ORG, lease.lease_id)
        while True:
            b_before = org.workspaces["ws_2"].active
            g = a.grant(ORG, f"l{next(_ids)}")
            if g is None:
                break
            if g[0].workspace_id == "ws_1":
                started_a += 1
            elif b_before >= other:
                assert org.workspaces["ws_1"].active >= min(own, owner_work), (
                    "a borrower started while the owner was owed slots"
                )
    assert org.workspaces["ws_1"].active >= min(own, owner_work)
    assert started_a == org.workspaces["ws_1"].active


def test_equal_priorities_share_across_workspaces() -> None:
    """Two workspaces without allocations and equal priorities alternate, even though one
    workspace's tasks are all older."""
    a = Allocator(default_org_slots=6)
    for i in range(10):
        a.enqueue(_task(f"x{i}", "c1", "ws_1", minutes=-100 + i))
        a.enqueue(_task(f"y{i}", "c3", "ws_2", minutes=i))
    got = Counter(g[0].workspace_id for g in iter(lambda: a.grant(ORG, f"l{next(_ids)}"), None))
    assert got == {"ws_1": 3, "ws_2": 3}


def test_hard_allocation_is_never_exceeded_even_when_the_org_is_idle() -> None:
    a = Allocator(default_org_slots=0)
    a.configure(ORG, total_slots=10, workspaces={"ws_1": WorkspaceSlots(2, "hard")})
    for i in range(5):
        a.enqueue(_task(f"t{i}", "c1", "ws_1"))
    assert a.grant(ORG, "l1") is not None
    assert a.grant(ORG, "l2") is not None
    assert a.grant(ORG, "l3") is None
    a.configure(ORG, total_slots=10, workspaces={"ws_1": WorkspaceSlots(1, "hard")})
    assert a.org(ORG).workspaces["ws_1"].active == 2  # lowering cancels nothing
    a.release(ORG, "l1")
    assert a.grant(ORG, "l4") is None  # still at the new allocation of 1
    a.release(ORG, "l2")
    assert a.grant(ORG, "l5") is not None


def _task(task: str, campaign: str, ws: str, *, minutes: int = 0) -> QueuedTask:
    return QueuedTask(
        task_id=task,
        attempt=1,
        org_id=ORG,
        workspace_id=ws,
        campaign_id=campaign,
        campaign_priority="normal",
        attempt_priority=1,
        callback=False,
        eligible_at=T0 + timedelta(minutes=minutes),
        max_slots=None,
    )
