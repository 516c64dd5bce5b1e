"""Prometheus metrics common to every service."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

EVENTS_CONSUMED = Counter(
    "outbound_events_consumed_total",
    "Events consumed, by topic, type and result (ok, ignored, retried, deadlettered).",
    ["service", "topic", "type", "result"],
)
EVENTS_PUBLISHED = Counter(
    "outbound_events_published_total",
    "Events published, by topic and type.",
    ["service", "topic", "type"],
)
HANDLER_SECONDS = Histogram(
    "outbound_handler_seconds",
    "Time spent handling one event.",
    ["service", "type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DEADLETTERS = Counter(
    "outbound_deadletters_total",
    "Messages sent to the dead-letter topic.",
    ["service", "topic", "reason"],
)


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
