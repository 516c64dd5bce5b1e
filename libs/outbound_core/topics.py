"""Kafka topic names. Every topic is versioned; the key of each is documented beside it
because keys decide order and ownership."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    description: str


CAMPAIGNS = Topic(
    "campaigns.v1", "campaign_id", "Campaign lifecycle and contacts, from campaign-api."
)
TASKS_SUBMIT = Topic(
    "tasks.submit.v1", "producer idempotency key", "Realtime tasks pushed by other services."
)
TASKS_STATUS = Topic(
    "tasks.status.v1",
    "task_ref (the producer's idempotency key)",
    "What became of each realtime task: accepted, rejected, queued, dialing, completed…",
)
ALLOCATOR = Topic(
    "allocator.v1",
    "org_id",
    "Everything the slot-allocator consumes: queued/withdrawn tasks, lease releases.",
)
DISPATCH = Topic(
    "dispatch.v1", "task_id", "Slot grants (leases) and lease expiries, from slot-allocator."
)
CALLS = Topic("calls.v1", "task_id", "Call lifecycle, from the dialer.")
DISPOSITIONS = Topic(
    "dispositions.v1",
    "task_id (dispositions) / campaign_id (pause requests)",
    "Dispositions and circuit-breaker pause requests, from the disposition service.",
)
SUPPRESSIONS = Topic(
    "suppressions.v1", "org_id", "Numbers added to / removed from an org's suppression list."
)
LEADS = Topic(
    "leads.v1",
    "task_id (lead events) / campaign_id (campaign events)",
    "Lead state changes and campaign progress, from task-planner.",
)
DEADLETTER = Topic(
    "deadletter.v1", "source topic", "Messages no consumer could process, with the reason."
)

ALL_TOPICS: tuple[Topic, ...] = (
    CAMPAIGNS,
    TASKS_SUBMIT,
    TASKS_STATUS,
    ALLOCATOR,
    DISPATCH,
    CALLS,
    DISPOSITIONS,
    SUPPRESSIONS,
    LEADS,
    DEADLETTER,
)
