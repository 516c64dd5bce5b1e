"""Generate the AsyncAPI document of every topic from the event models (``make docs``).

The document is generated, never hand-edited: the pydantic models are the contract, and a test
fails when ``docs/asyncapi.yaml`` is out of date."""

from __future__ import annotations

import sys
from typing import Any

from outbound_core import events as ev
from outbound_core.topics import (
    ALLOCATOR,
    CALLS,
    CAMPAIGNS,
    DEADLETTER,
    DISPATCH,
    DISPOSITIONS,
    LEADS,
    SUPPRESSIONS,
    TASKS_STATUS,
    TASKS_SUBMIT,
    Topic,
)

TOPIC_EVENTS: dict[Topic, tuple[type[ev.Payload], ...]] = {
    CAMPAIGNS: (
        ev.CampaignCreated,
        ev.ContactsAdded,
        ev.ContactsRemoved,
        ev.CampaignStatusChanged,
        ev.CampaignUpdated,
        ev.TasksControlled,
    ),
    TASKS_SUBMIT: (ev.TaskSubmit,),
    TASKS_STATUS: (ev.TaskStatusChanged,),
    ALLOCATOR: (
        ev.TaskQueued,
        ev.TaskWithdrawn,
        ev.CampaignWithdrawn,
        ev.CampaignStatusChanged,
        ev.LeaseReleased,
        ev.LeaseRenewed,
        ev.SlotsConfigured,
    ),
    DISPATCH: (ev.TaskDispatched, ev.LeaseExpired),
    CALLS: (ev.CallStarted, ev.CallEnded, ev.CallAborted),
    DISPOSITIONS: (ev.DispositionRecorded, ev.CampaignPauseRequested, ev.CampaignResumeRequested),
    SUPPRESSIONS: (ev.SuppressionAdded, ev.SuppressionRemoved),
    LEADS: (ev.LeadUpdated, ev.CampaignDrained),
    DEADLETTER: (ev.DeadLettered,),
}

PRODUCERS = {
    CAMPAIGNS: "campaign-api",
    TASKS_SUBMIT: "other services (realtime task producers); consumed by campaign-api",
    TASKS_STATUS: "campaign-api (accepted, rejected) and task-planner (every later state)",
    ALLOCATOR: "task-planner, dialer, campaign-api",
    DISPATCH: "slot-allocator",
    CALLS: "dialer",
    DISPOSITIONS: "disposition",
    SUPPRESSIONS: "disposition",
    LEADS: "task-planner",
    DEADLETTER: "every consumer",
}


_ENVELOPE_EXAMPLE = {
    "id": "evt_Zk2N8c1PqR4sT7uV",
    "version": 1,
    "occurred_at": "2027-02-01T09:30:00Z",
    "producer": "lead-forms",
    "org_id": "org_Aa1Bb2Cc3Dd4Ee5F",
    "workspace_id": "ws_Gg6Hh7Ii8Jj9Kk0L",
    "correlation_id": "lead-8841",
}
EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "task.submit": [
        {
            "name": "enveloped",
            "summary": "The task in the common envelope; Kafka key = task_ref.",
            "headers": {"authorization": "Bearer obp_…"},
            "payload": {**_ENVELOPE_EXAMPLE, "type": "task.submit", "data": ev.SAMPLE_TASK},
        },
        {
            "name": "bare",
            "summary": "The bare HTTP body, naming its workspace and carrying its credential.",
            "payload": {
                **ev.SAMPLE_TASK,
                "workspace_id": "ws_Gg6Hh7Ii8Jj9Kk0L",
                "api_key": "obp_…",
            },
        },
    ],
    "task.status": [
        {
            "name": "accepted",
            "payload": {
                **_ENVELOPE_EXAMPLE,
                "producer": "campaign-api",
                "type": "task.status",
                "data": {
                    "task_ref": "lead-8841",
                    "task_id": "tsk_Rr1Ss2Tt3Uu4Vv5W",
                    "campaign_id": "cmp_7fQ2xY9aB3kL0pWe",
                    "status": "accepted",
                    "duplicate": False,
                },
            },
        },
        {
            "name": "rejected",
            "payload": {
                **_ENVELOPE_EXAMPLE,
                "producer": "campaign-api",
                "type": "task.status",
                "data": {
                    "task_ref": "lead-8842",
                    "status": "rejected",
                    "reason": "invalid_intervals",
                    "detail": "2 attempts need 1 interval(s) (retries - 1), got 0",
                },
            },
        },
        {
            "name": "completed",
            "payload": {
                **_ENVELOPE_EXAMPLE,
                "producer": "task-planner",
                "type": "task.status",
                "data": {
                    "task_ref": "lead-8841",
                    "task_id": "tsk_Rr1Ss2Tt3Uu4Vv5W",
                    "campaign_id": "cmp_7fQ2xY9aB3kL0pWe",
                    "status": "completed",
                    "attempt": 2,
                    "last_disposition": "interested",
                },
            },
        },
    ],
}


def _message_name(model: type[ev.Payload]) -> str:
    return model.__name__


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    envelope = ev.Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    envelope.pop("$defs", None)
    schemas["Envelope"] = envelope
    for topic, models in TOPIC_EVENTS.items():
        channel_messages = {}
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
            name = _message_name(model)
            messages[name] = {
                "name": model.TYPE,
                "title": model.__name__,
                "summary": (model.__doc__ or model.TYPE).strip().splitlines()[0],
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "event-type": {"type": "string", "const": model.TYPE},
                        "event-id": {"type": "string"},
                    },
                },
                "payload": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Envelope"},
                        {
                            "type": "object",
                            "properties": {
                                "type": {"const": model.TYPE},
                                "version": {"const": model.VERSION},
                                "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                            },
                        },
                    ],
                },
            }
            if model.TYPE in EXAMPLES:
                messages[name]["examples"] = EXAMPLES[model.TYPE]
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        cid = topic.name.replace(".", "_")
        channels[cid] = {
            "address": topic.name,
            "description": f"{topic.description} Key: {topic.key}. Produced by {PRODUCERS[topic]}.",
            "messages": channel_messages,
        }
        operations[f"publish_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in channel_messages],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Outbound events",
            "version": "1.0.0",
            "description": "Every event travels in the common envelope; `data` holds the "
            "payload named by `type`. Delivery is at least once: consumers "
            "deduplicate on `id` and ignore unknown fields.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    import yaml  # dev dependency: only `make docs` and the tests render the document

    return str(yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, width=100))


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
