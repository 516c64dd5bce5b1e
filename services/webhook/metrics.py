"""Prometheus metrics of the webhook service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "webhook_deliveries_total",
    "Delivery attempts by result (succeeded, retry, dead, gone, refused, cancelled).",
    ["result"],
)
DELIVERY_SECONDS = Histogram(
    "webhook_delivery_seconds",
    "Wall time of one delivery attempt (request sent to response read).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_DELIVERY_SECONDS = Histogram(
    "webhook_event_latency_seconds",
    "Event received by the webhook service to its successful delivery (retries included), "
    "real seconds.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
