"""Slot-allocator metrics (module-level: prometheus_client registers each name once)."""

from __future__ import annotations

from prometheus_client import Histogram

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
