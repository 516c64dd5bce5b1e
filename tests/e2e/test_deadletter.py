"""Poison messages on every input topic go to the dead-letter topic with the reason, and every
service keeps consuming. Published with kafka-python, as another service would."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from outbound_core.devstack import DevStack
from outbound_core.topics import (
    ALLOCATOR,
    CALLS,
    CAMPAIGNS,
    DEADLETTER,
    DISPATCH,
    DISPOSITIONS,
    LEADS,
)
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

INPUT_TOPICS = [CAMPAIGNS, ALLOCATOR, DISPATCH, CALLS, DISPOSITIONS, LEADS]


def _envelope(event_type: str, data: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": event_type,
            "version": 1,
            "occurred_at": "2026-03-02T15:00:00Z",
            "producer": "test",
            "org_id": "org_x",
            "workspace_id": "ws_x",
            "correlation_id": "corr",
            "data": data,
        }
    ).encode()


def test_poison_messages_are_deadlettered_and_consumers_go_on(stack: DevStack, api: object) -> None:
    assert stack.kafka_url
    marker = uuid.uuid4().hex
    producer = KafkaProducer(bootstrap_servers=stack.kafka_url, api_version=(2, 5))
    poison = {
        "not_json": b"\xff\xfe not json " + marker.encode(),
        "invalid_envelope": json.dumps({"hello": marker}).encode(),
    }
    for topic in INPUT_TOPICS:
        for body in poison.values():
            producer.send(topic.name, key=marker.encode(), value=body)
    # A known type with a payload that fails validation.
    producer.send(
        CAMPAIGNS.name,
        key=marker.encode(),
        value=_envelope("campaign.status_changed", {"campaign_id": marker, "status": "exploded"}),
    )
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        DEADLETTER.name,
        bootstrap_servers=stack.kafka_url,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=1000,
        api_version=(2, 5),
    )
    seen: list[dict[str, object]] = []

    def collected() -> bool:
        for msg in consumer:
            data = json.loads(msg.value)["data"]
            if marker in data["raw"] or data.get("key") == marker:
                seen.append(data)
        reasons = {(d["source_topic"], d["reason"]) for d in seen}
        expected = {(t.name, r) for t in INPUT_TOPICS for r in poison}
        expected.add((CAMPAIGNS.name, "invalid_payload"))
        return expected <= reasons

    wait_until(collected, timeout=60, message="dead letters for every topic")
    consumer.close()
    invalid = next(d for d in seen if d["reason"] == "invalid_payload")
    assert "status" in str(invalid["error"])  # the reason names the bad field
    # Every service is still alive and ready after the poison.
    import httpx

    for name in stack.services:
        assert httpx.get(f"{stack.url(name)}/readyz", timeout=5).status_code == 200, name
