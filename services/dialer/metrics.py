"""Dialer metrics (module-level: prometheus_client registers each name once per process)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLS_PLACED = Counter("calls_placed_total", "Calls handed to the voice provider.")
CALLS_ENDED = Counter("calls_ended_total", "Calls that ended, by status.", ["status"])
CALLS_ABORTED = Counter(
    "calls_aborted_total", "Dispatches refused at the last moment, by reason.", ["reason"]
)
DISPATCH_SECONDS = Histogram(
    "dialer_dispatch_latency_seconds",
    "Slot granted (TaskDispatched) to call handed to the provider, real seconds.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
