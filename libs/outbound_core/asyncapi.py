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
    Topic,
)

TOPIC_EVENTS: dict[Topic, tuple[type[ev.Payload], ...]] = {
    CAMPAIGNS: (
        ev.CampaignCreated,
        ev.ContactsAdded,
        ev.ContactsRemoved,
        ev.CampaignStatusChanged,
        ev.CampaignUpdated,
    ),
    ALLOCATOR: (
        ev.TaskQueued,
        ev.TaskWithdrawn,
        ev.CampaignWithdrawn,
        ev.CampaignStatusChanged,
        ev.LeaseReleased,
        ev.SlotsConfigured,
    ),
    DISPATCH: (ev.TaskDispatched, ev.LeaseExpired),
    CALLS: (ev.CallStarted, ev.CallEnded, ev.CallAborted),
    DISPOSITIONS: (ev.DispositionRecorded, ev.CampaignPauseRequested),
    SUPPRESSIONS: (ev.SuppressionAdded, ev.SuppressionRemoved),
    LEADS: (ev.LeadUpdated, ev.CampaignDrained),
    DEADLETTER: (ev.DeadLettered,),
}

PRODUCERS = {
    CAMPAIGNS: "campaign-api",
    ALLOCATOR: "task-planner, dialer, campaign-api",
    DISPATCH: "slot-allocator",
    CALLS: "dialer",
    DISPOSITIONS: "disposition",
    SUPPRESSIONS: "disposition",
    LEADS: "task-planner",
    DEADLETTER: "every consumer",
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
