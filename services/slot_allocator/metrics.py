"""Slot-allocator metrics (module-level: prometheus_client registers each name once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily

from slot_allocator.domain import Allocator

QUEUE_WAIT_SECONDS = Histogram(
    "allocator_queue_wait_seconds",
    "Task eligible (TaskQueued's eligible_at) to slot granted, real seconds.",
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 14400),
)
DECISION_SECONDS = Histogram(
    "allocator_decision_seconds",
    "CPU-bound time of one grant decision (which queued task gets a free slot).",
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01),
)


class SlotGauges:
    """Per-org gauges read from the allocator's state at scrape time (no bookkeeping on the
    hot path): slots of the org, slots held by leases, and queued tasks some cap allows now.
    Grantable work with free slots that stays so is a stalled allocator (the alert
    OutboundStalledCampaign)."""

    def __init__(self, owned: Callable[[], Iterable[str]], alloc: Allocator) -> None:
        self.owned = owned
        self.alloc = alloc

    def collect(self) -> Iterator[GaugeMetricFamily]:
        total = GaugeMetricFamily(
            "allocator_slots_total", "Simultaneous calls the org may have.", labels=["org_id"]
        )
        active = GaugeMetricFamily(
            "allocator_slots_active", "Slots held by a lease.", labels=["org_id"]
        )
        grantable = GaugeMetricFamily(
            "allocator_grantable_tasks",
            "Queued tasks their campaign cap allows now (before the workspace and org limits).",
            labels=["org_id"],
        )
        for org_id in list(self.owned()):
            org = self.alloc.orgs.get(org_id)
            if org is None:
                continue
            total.add_metric([org_id], org.total_slots)
            active.add_metric([org_id], org.active)
            grantable.add_metric(
                [org_id], sum(ws.grantable for ws in list(org.workspaces.values()))
            )
        yield from (total, active, grantable)


_gauges: SlotGauges | None = None


def install_slot_gauges(owned: Callable[[], Iterable[str]], alloc: Allocator) -> None:
    """Expose the gauges of this allocator (once per process; a rebuilt app replaces it)."""
    global _gauges
    if _gauges is None:
        _gauges = SlotGauges(owned, alloc)
        REGISTRY.register(_gauges)
    else:
        _gauges.owned, _gauges.alloc = owned, alloc
