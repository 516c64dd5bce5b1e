"""Dialer metrics (module-level: prometheus_client registers each name once per process)."""

from __future__ import annotations

from prometheus_client import Counter

CALLS_PLACED = Counter("calls_placed_total", "Calls handed to the voice provider.")
CALLS_ENDED = Counter("calls_ended_total", "Calls that ended, by status.", ["status"])
CALLS_ABORTED = Counter(
    "calls_aborted_total", "Dispatches refused at the last moment, by reason.", ["reason"]
)
