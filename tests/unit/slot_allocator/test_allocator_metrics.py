"""The allocator's per-org gauges (read at scrape time) that the stalled-campaign alert uses."""

from __future__ import annotations

from slot_allocator.domain import Allocator, WorkspaceSlots
from slot_allocator.metrics import SlotGauges
from tests.unit.slot_allocator.test_allocator_slots_props import ORG, _task


def _values(gauges: SlotGauges) -> dict[tuple[str, str], float]:
    return {
        (family.name, sample.labels["org_id"]): sample.value
        for family in gauges.collect()
        for sample in family.samples
    }


def test_gauges_show_slots_leases_and_the_work_caps_allow() -> None:
    a = Allocator(default_org_slots=0)
    a.configure(ORG, total_slots=3, workspaces={"ws_1": WorkspaceSlots(3, "hard")})
    for i in range(5):
        a.enqueue(_task(f"t{i}", "c1", "ws_1"))
    assert a.grant(ORG, "l1") is not None
    gauges = SlotGauges(lambda: [ORG, "org_not_here"], a)
    assert _values(gauges) == {
        ("allocator_slots_total", ORG): 3,
        ("allocator_slots_active", ORG): 1,
        ("allocator_grantable_tasks", ORG): 4,
    }


def test_only_owned_orgs_are_reported() -> None:
    a = Allocator(default_org_slots=2)
    a.enqueue(_task("t1", "c1", "ws_1"))
    assert _values(SlotGauges(lambda: [], a)) == {}
