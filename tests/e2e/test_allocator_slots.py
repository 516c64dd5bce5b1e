"""Slot settings through the API and the allocator's behaviour on the real broker and database,
in a stack of its own (a slower clock, so that calls overlap long enough to be measured, and
short leases, so that a killed dialer's leases expire within the test).

Concurrency is measured from the allocator's own lease records: every lease's [granted_at,
ended_at) interval on the shared clock, swept for the largest overlap per workspace and org."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from outbound_core.devstack import DevStack, ServiceProcess
from outbound_core.embedded import free_port
from slot_allocator.partitions import partition_for
from tests.conftest import wait_until
from tests.support.stacks import own_stack

pytestmark = pytest.mark.e2e

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def slots_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with own_stack(
        tmp_path_factory.mktemp("slots-stack"),
        clock_speed=60.0,  # a simulated call (ring + talk, ~1-5 virtual minutes) lasts 1-5 s
        extra_env={
            "SLOT_ALLOCATOR_MAX_CALL_SECONDS": "360",
            # a lease lasts 30 virtual minutes = 30 real seconds: calls never outlive it, even
            # on a busy machine, unless the dialer is dead
            "SLOT_ALLOCATOR_LEASE_GRACE_SECONDS": "1440",
            "SLOT_ALLOCATOR_LEASE_MIN_REAL_SECONDS": "5",
            "SLOT_ALLOCATOR_DEFAULT_ORG_SLOTS": "2",
        },
    ) as s:
        yield s


@pytest.fixture(scope="module")
def mongo(slots_stack: DevStack) -> Iterator[MongoClient[Doc]]:
    assert slots_stack.mongo_url
    client: MongoClient[Doc] = MongoClient(slots_stack.mongo_url)
    yield client
    client.close()


class Tenant:
    """A fresh org with two workspaces: an org-admin key in ws_a, a workspace key in ws_b."""

    def __init__(self, stack: DevStack, mongo: MongoClient[Doc], tag: str | None = None) -> None:
        tag = tag or secrets.token_hex(4)
        self.org_id, self.ws_a, self.ws_b = f"org_{tag}", f"ws_a_{tag}", f"ws_b_{tag}"
        db = mongo["outbound_campaign_api"]
        db["orgs"].insert_one({"_id": self.org_id, "name": tag})
        keys = {}
        for ws, role in ((self.ws_a, "org_admin"), (self.ws_b, "workspace")):
            db["workspaces"].insert_one({"_id": ws, "org_id": self.org_id, "name": ws})
            key = f"ob_test_{secrets.token_urlsafe(16)}"
            db["api_keys"].insert_one(
                {
                    "_id": f"key_{ws}",
                    "hash": hashlib.sha256(key.encode()).hexdigest(),
                    "org_id": self.org_id,
                    "workspace_id": ws,
                    "role": role,
                }
            )
            keys[ws] = key
        self.admin = httpx.Client(
            base_url=stack.api_url,
            timeout=30,
            headers={"Authorization": f"Bearer {keys[self.ws_a]}"},
        )
        self.member = httpx.Client(
            base_url=stack.api_url,
            timeout=30,
            headers={"Authorization": f"Bearer {keys[self.ws_b]}"},
        )

    def close(self) -> None:
        self.admin.close()
        self.member.close()


@pytest.fixture
def tenant(slots_stack: DevStack, mongo: MongoClient[Doc]) -> Iterator[Tenant]:
    t = Tenant(slots_stack, mongo)
    yield t
    t.close()


def _campaign(
    client: httpx.Client, n: int, prefix: str, outcome: str = "interested", start: int = 0
) -> str:
    agent = client.post("/v1/agents", json={"name": "A", "language": "en-US"})
    assert agent.status_code == 201, agent.text
    r = client.post(
        "/v1/campaigns",
        json={
            "name": prefix,
            "script_id": agent.json()["id"],
            "language": "en-US",
            "contacts": [
                {"phone": f"+1212736{prefix}{i:03d}", "sim_outcomes": outcome}
                for i in range(start, start + n)
            ],
            "max_attempts": 1,
            "calling_hours": {"start": "00:00", "end": "00:00"},
        },
    )
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    started = client.patch(f"/v1/campaigns/{cid}", json={"action": "start"})
    assert started.status_code == 200, started.text
    return cid


def _leases(mongo: MongoClient[Doc], org_id: str) -> list[Doc]:
    return list(mongo["outbound_slot_allocator"]["leases"].find({"org_id": org_id}))


def _ended_leases(mongo: MongoClient[Doc], org_id: str, timeout: float = 90) -> list[Doc]:
    """The org's leases once none is active. A call's release reaches the allocator on a topic
    of its own, so after the campaign's completion it may still be a moment away; a release
    that never comes shows as an expired lease."""

    def ended() -> list[Doc] | None:
        leases = _leases(mongo, org_id)
        return leases if all(d["status"] != "active" for d in leases) else None

    found: list[Doc] = wait_until(ended, timeout=timeout, message="every lease ended")
    return found


def _max_overlap(leases: list[Doc], key: str | None = None) -> dict[str, int]:
    """Largest number of simultaneous leases, per ``key`` value (or overall under "*")."""
    events: list[tuple[Any, int, str]] = []
    for d in leases:
        group = d[key] if key else "*"
        events.append((d["granted_at"], 1, group))
        if d.get("ended_at") is not None:
            events.append((d["ended_at"], 0, group))  # an end sorts before a start at a tie
    events.sort(key=lambda e: (e[0], e[1]))
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _, start, group in events:
        now[group] = now.get(group, 0) + (1 if start else -1)
        peak[group] = max(peak.get(group, 0), now[group])
    return peak


def test_slot_settings_api_checks_roles_and_sums(tenant: Tenant) -> None:
    assert tenant.admin.get("/v1/slots").json()["total_slots"] is None
    r = tenant.admin.put(f"/v1/workspaces/{tenant.ws_b}/slots", json={"allocation": 1})
    assert r.status_code == 409, r.text  # the org total comes first
    r = tenant.member.put("/v1/slots", json={"total_slots": 5})
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    r = tenant.admin.put("/v1/slots", json={"total_slots": 5})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 1
    r = tenant.admin.put(
        f"/v1/workspaces/{tenant.ws_a}/slots", json={"allocation": 3, "mode": "hard"}
    )
    assert r.status_code == 200, r.text
    r = tenant.admin.put(f"/v1/workspaces/{tenant.ws_b}/slots", json={"allocation": 3})
    assert r.status_code == 422, r.text
    assert "sum to 6, more than the org total of 5" in r.json()["detail"]
    r = tenant.member.put(f"/v1/workspaces/{tenant.ws_b}/slots", json={"allocation": 2})
    assert r.status_code == 403, r.text
    r = tenant.admin.put("/v1/workspaces/ws_of_someone_else/slots", json={"allocation": 1})
    assert r.status_code == 404, r.text
    r = tenant.admin.put("/v1/slots", json={"total_slots": 2})
    assert r.status_code == 422, r.text  # would leave ws_a's 3 above the total
    got = tenant.member.get("/v1/slots").json()
    assert got["total_slots"] == 5
    assert got["workspaces"] == [{"workspace_id": tenant.ws_a, "allocation": 3, "mode": "hard"}]
    assert got["revision"] == 2


def test_hard_workspace_never_exceeds_soft_workspace_borrows(
    tenant: Tenant, mongo: MongoClient[Doc]
) -> None:
    # org total 4: ws_a hard 1, ws_b soft 1, two slots nobody owns
    assert tenant.admin.put("/v1/slots", json={"total_slots": 4}).status_code == 200
    for ws, mode in ((tenant.ws_a, "hard"), (tenant.ws_b, "soft")):
        r = tenant.admin.put(f"/v1/workspaces/{ws}/slots", json={"allocation": 1, "mode": mode})
        assert r.status_code == 200, r.text
    wait_until(
        lambda: mongo["outbound_slot_allocator"]["slot_config"].find_one(
            {"_id": tenant.org_id, "revision": 3}
        ),
        timeout=30,
        message="allocator stored the settings",
    )
    hard = _campaign(tenant.admin, 6, "1")
    soft = _campaign(tenant.member, 6, "2")
    for client, cid in ((tenant.admin, hard), (tenant.member, soft)):
        wait_until(
            lambda c=client, i=cid: c.get(f"/v1/campaigns/{i}").json()["status"] == "completed",
            timeout=180,
            message=f"campaign {cid} completed",
        )
    leases = _ended_leases(mongo, tenant.org_id)
    assert len(leases) == 12
    assert all(d["status"] == "released" for d in leases)
    peak = _max_overlap(leases, "workspace_id")
    assert peak[tenant.ws_a] == 1, peak  # hard: never above 1, even with 2 idle slots
    assert peak[tenant.ws_b] > 1, peak  # soft: borrowed the idle slots
    assert _max_overlap(leases)["*"] <= 4


def test_lowering_the_total_at_runtime_cancels_nothing_and_applies(
    tenant: Tenant, mongo: MongoClient[Doc]
) -> None:
    assert tenant.admin.put("/v1/slots", json={"total_slots": 3}).status_code == 200
    cid = _campaign(tenant.admin, 8, "3")
    wait_until(
        lambda: sum(d["status"] == "active" for d in _leases(mongo, tenant.org_id)) == 3,
        timeout=60,
        message="three calls at once",
    )
    assert tenant.admin.put("/v1/slots", json={"total_slots": 1}).status_code == 200
    wait_until(
        lambda: tenant.admin.get(f"/v1/campaigns/{cid}").json()["status"] == "completed",
        timeout=180,
        message="campaign completed",
    )
    leases = sorted(_ended_leases(mongo, tenant.org_id), key=lambda d: d["granted_at"])
    assert len(leases) == 8
    assert all(d["status"] == "released" for d in leases)  # nothing was cut off
    # once the three first calls had ended, never more than one at a time
    last_of_first = max(d["ended_at"] for d in leases[:3])
    assert _max_overlap([d for d in leases if d["granted_at"] >= last_of_first])["*"] == 1


def test_killed_dialer_leases_expire_and_slots_return(
    slots_stack: DevStack, tenant: Tenant, mongo: MongoClient[Doc]
) -> None:
    assert tenant.admin.put("/v1/slots", json={"total_slots": 2}).status_code == 200
    slots_stack.services["dialer"].kill()
    try:
        cid = _campaign(tenant.admin, 4, "4")
        wait_until(
            lambda: sum(d["status"] == "expired" for d in _leases(mongo, tenant.org_id)) >= 2,
            timeout=150,
            message="leases of the dead dialer expired",
        )
    finally:
        slots_stack.start_service("dialer")
        slots_stack.wait_ready(timeout=240)
    wait_until(
        lambda: tenant.admin.get(f"/v1/campaigns/{cid}").json()["status"] == "completed",
        timeout=180,
        message="campaign completed",
    )
    leases = _ended_leases(mongo, tenant.org_id)
    assert _max_overlap(leases)["*"] <= 2
    assert not [d for d in leases if d["status"] == "active"], "a slot leaked"
    # every expired lease was granted again later or its attempt ended (failed, max_attempts 1)
    assert {d["status"] for d in leases} <= {"released", "expired"}


def test_allocator_restart_mid_campaign_loses_and_doubles_no_lease(
    slots_stack: DevStack, tenant: Tenant, mongo: MongoClient[Doc]
) -> None:
    assert tenant.admin.put("/v1/slots", json={"total_slots": 2}).status_code == 200
    cid = _campaign(tenant.admin, 8, "5")
    wait_until(
        lambda: len(_leases(mongo, tenant.org_id)) >= 3,
        timeout=60,
        message="the campaign under way",
    )
    slots_stack.services["slot-allocator"].kill()  # no graceful shutdown
    slots_stack.start_service("slot-allocator")
    slots_stack.wait_ready(timeout=240)
    wait_until(
        lambda: tenant.admin.get(f"/v1/campaigns/{cid}").json()["status"] == "completed",
        timeout=180,
        message="campaign completed",
    )
    leases = _ended_leases(mongo, tenant.org_id)
    assert len(leases) == 8  # one lease per contact: none lost, none doubled
    assert len({(d["task_id"], d["attempt"]) for d in leases}) == 8
    assert [d["status"] for d in leases] == ["released"] * 8
    assert _max_overlap(leases)["*"] <= 2
    tasks = [d["task_id"] for d in leases]
    calls = list(mongo["outbound_simulator"]["sim_calls"].find({"task_id": {"$in": tasks}}))
    per_attempt = {(c["task_id"], c["attempt"]) for c in calls}
    assert len(calls) == len(per_attempt) == 8, "one simulated call per (task, attempt)"
    assert tenant.admin.get(f"/v1/campaigns/{cid}").json()["calls_made"] == 8


def test_pause_withdraws_queued_tasks(tenant: Tenant, mongo: MongoClient[Doc]) -> None:
    assert tenant.admin.put("/v1/slots", json={"total_slots": 1}).status_code == 200
    cid = _campaign(tenant.admin, 10, "6")
    wait_until(
        lambda: len(_leases(mongo, tenant.org_id)) >= 1,
        timeout=60,
        message="the first call",
    )
    r = tenant.admin.patch(f"/v1/campaigns/{cid}", json={"action": "pause"})
    assert r.status_code == 200, r.text
    queue = mongo["outbound_slot_allocator"]["queue"]
    wait_until(
        lambda: queue.count_documents({"campaign_id": cid}) == 0,
        timeout=30,
        interval=0.05,
        message="queued tasks withdrawn",
    )
    granted = len(_leases(mongo, tenant.org_id))
    # every call in progress ends, and the free slot goes to nobody of this campaign
    wait_until(
        lambda: all(d["status"] != "active" for d in _leases(mongo, tenant.org_id)),
        timeout=60,
        message="calls in progress ended",
    )
    # a canary campaign of the same org gets the free slot; the paused one gets nothing more
    canary = _campaign(tenant.admin, 2, "7")
    wait_until(
        lambda: tenant.admin.get(f"/v1/campaigns/{canary}").json()["status"] == "completed",
        timeout=120,
        message="canary campaign completed",
    )
    leases = _leases(mongo, tenant.org_id)
    mine = [d for d in leases if d["campaign_id"] == cid]
    canary_leases = [d for d in leases if d["campaign_id"] == canary]
    assert len(canary_leases) == 2
    # a grant decided before the withdrawal may be stored a moment after the queue emptied,
    # but nothing of the paused campaign is granted once the canary got a slot
    assert max(d["granted_at"] for d in mine) <= min(d["granted_at"] for d in canary_leases)
    assert granted <= len(mine) <= granted + 1 < 10
    assert tenant.admin.get(f"/v1/campaigns/{cid}").json()["status"] == "paused"


def test_caller_pool_spreads_calls_within_each_numbers_cps(
    tenant: Tenant, mongo: MongoClient[Doc]
) -> None:
    """A campaign's `from_pool` reaches the allocator (pacing per number) and the provider
    (the call goes out on the chosen number); a single `from` number is used as is."""
    assert tenant.admin.put("/v1/slots", json={"total_slots": 6}).status_code == 200
    pool = ["+12127369901", "+12127369902"]
    for number in pool:  # one call per 60 virtual seconds each (one per real second)
        r = tenant.admin.post(
            "/v1/numbers", json={"number": number, "calls_per_second": 1 / 60, "pool": "east"}
        )
        assert r.status_code == 201, r.text
    single = "+12127369903"
    assert tenant.admin.post("/v1/numbers", json={"number": single}).status_code == 201
    agent = tenant.admin.post("/v1/agents", json={"name": "A", "language": "en-US"}).json()
    ids = []
    for i, caller in enumerate(({"from_pool": "east"}, {"from": single})):
        n = 8 if i == 0 else 2
        r = tenant.admin.post(
            "/v1/campaigns",
            json={
                "name": f"pool{i}",
                "script_id": agent["id"],
                "language": "en-US",
                "contacts": [
                    {"phone": f"+12127369{i}{k:02d}", "sim_outcomes": "interested"}
                    for k in range(n)
                ],
                "calling_hours": {"start": "00:00", "end": "00:00"},
                **caller,
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        assert tenant.admin.patch(f"/v1/campaigns/{ids[-1]}", json={"action": "start"}).is_success
    for cid in ids:
        wait_until(
            lambda c=cid: tenant.admin.get(f"/v1/campaigns/{c}").json()["status"] == "completed",
            timeout=180,
            message=f"campaign {cid} completed",
        )
    leases = _ended_leases(mongo, tenant.org_id)
    sims = {
        (c["task_id"], c["attempt"]): c
        for c in mongo["outbound_simulator"]["sim_calls"].find(
            {"task_id": {"$in": [d["task_id"] for d in leases]}}
        )
    }
    pooled = [d for d in leases if d["campaign_id"] == ids[0]]
    assert len(pooled) == 8
    for d in leases:  # the provider was asked to call from the number the allocator chose
        assert sims[(d["task_id"], d["attempt"])]["from"] == d["from_number"]
    assert {d["from_number"] for d in leases if d["campaign_id"] == ids[1]} == {single}
    per_number: dict[str, list[Any]] = {}
    for d in sorted(pooled, key=lambda d: d["granted_at"]):
        per_number.setdefault(d["from_number"], []).append(d["granted_at"])
    assert set(per_number) == set(pool)
    assert all(len(v) >= 3 for v in per_number.values()), per_number  # spread over the pool
    for times in per_number.values():  # never faster than the number's limit
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 59.9, gaps


def _tenants_on_every_partition(
    stack: DevStack, mongo: MongoClient[Doc], partitions: int = 4
) -> list[Tenant]:
    """One fresh org per partition of allocator.v1, so that every allocator instance owns one."""
    tags: dict[int, str] = {}
    while len(tags) < partitions:
        tag = secrets.token_hex(4)
        tags.setdefault(partition_for(f"org_{tag}", partitions), tag)
    return [Tenant(stack, mongo, tag) for _, tag in sorted(tags.items())]


@pytest.mark.timeout(900)  # a second instance, a rebalance and a session timeout
def test_two_allocators_share_orgs_and_one_takes_over_when_the_other_dies(
    slots_stack: DevStack, mongo: MongoClient[Doc]
) -> None:
    env = slots_stack.common_env()
    env["SLOT_ALLOCATOR_HTTP_PORT"] = str(free_port())
    second = ServiceProcess(
        name="slot-allocator-2",
        module="slot_allocator",
        port=int(env["SLOT_ALLOCATOR_HTTP_PORT"]),
        env=env,
        log_path=slots_stack.data_dir / "logs" / "slot-allocator-2.log",
        echo=False,
    )
    second.start()
    tenants = _tenants_on_every_partition(slots_stack, mongo)
    owners = mongo["outbound_slot_allocator"]["org_owners"]
    first = slots_stack.services["slot-allocator"]
    try:

        def second_ready() -> bool:
            try:
                url = f"http://127.0.0.1:{second.port}/readyz"
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(second_ready, timeout=240, message="second allocator ready")
        for t in tenants:
            assert t.admin.put("/v1/slots", json={"total_slots": 2}).status_code == 200

        def pids() -> set[str]:
            docs = owners.find({"_id": {"$in": [t.org_id for t in tenants]}})
            return {str(d["owner"]).split(":")[1] for d in docs}

        assert first.proc is not None and second.proc is not None
        both = {str(first.proc.pid), str(second.proc.pid)}
        # the consumer group rebalances once the second member joins: each instance owns
        # the orgs of its partitions
        wait_until(lambda: pids() == both, timeout=120, message="orgs owned by both instances")
        campaigns = [(t, _campaign(t.admin, 6, "8", start=100 * k)) for k, t in enumerate(tenants)]
        wait_until(
            lambda: all(len(_leases(mongo, t.org_id)) >= 2 for t in tenants),
            timeout=90,
            message="every campaign under way",
        )
        first.kill()  # mid-campaign, no graceful shutdown: its partitions move after the
        # session timeout, and the survivor rebuilds those orgs from MongoDB
        for t, cid in campaigns:
            wait_until(
                lambda t=t, c=cid: (
                    t.admin.get(f"/v1/campaigns/{c}").json()["status"] == "completed"
                ),
                timeout=240,
                message=f"campaign {cid} completed",
            )
        assert pids() == {str(second.proc.pid)}
        assert all(
            d["epoch"] >= 2 for d in owners.find({"_id": {"$in": [t.org_id for t in tenants]}})
        )
        for t, cid in campaigns:
            leases = _ended_leases(mongo, t.org_id)
            assert len(leases) == 6, leases  # one lease per contact: none lost, none doubled
            assert len({(d["task_id"], d["attempt"]) for d in leases}) == 6
            assert [d["status"] for d in leases] == ["released"] * 6
            assert _max_overlap(leases)["*"] <= 2  # the org total, across both instances
            tasks = [d["task_id"] for d in leases]
            calls = list(mongo["outbound_simulator"]["sim_calls"].find({"task_id": {"$in": tasks}}))
            assert len(calls) == len({(c["task_id"], c["attempt"]) for c in calls}) == 6
            wait_until(  # the API's counters are a projection: they may trail the status
                lambda t=t, c=cid: t.admin.get(f"/v1/campaigns/{c}").json()["calls_made"] == 6,
                timeout=60,
                message="calls_made counted",
            )
    finally:
        for t in tenants:
            t.close()
        if first.proc is not None and first.proc.poll() is not None:
            slots_stack.start_service("slot-allocator")
        second.stop()
        slots_stack.wait_ready(timeout=240)
