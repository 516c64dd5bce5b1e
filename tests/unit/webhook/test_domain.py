from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from outbound_core.events import CallEnded, CampaignStatusChanged, DispositionRecorded, LeadUpdated
from webhook.domain import (
    WEBHOOK_EVENT_TYPES,
    envelope_body,
    from_call_ended,
    from_campaign_status_changed,
    from_disposition_recorded,
    from_lead_updated,
    matches,
    normalize_filters,
    outcome_of,
    parse_retry_after,
    retry_delay,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000]


def test_lead_updated_maps_to_campaign_lead_updated_keyed_by_task() -> None:
    p = LeadUpdated(
        task_id="tsk_1",
        campaign_id="cmp_1",
        seq=3,
        status="waiting_retry",
        last_disposition="no_answer",
        current_phone="+14155550100",
        phone_index=1,
        pass_number=2,
        attempt=4,
        next_attempt_at=T0,
        name="Ada",
        variables={"plan": "gold"},
    )
    [ev] = from_lead_updated(p)
    assert ev.type == "campaign.lead.updated"
    assert ev.order_key == "tsk_1"
    assert ev.data["lead_id"] == "tsk_1"
    assert ev.data["pass"] == 2
    assert ev.data["seq"] == 3
    assert ev.data["next_attempt_at"] == "2025-03-01T12:00:00Z"
    assert ev.data["variables"] == {"plan": "gold"}


def test_campaign_status_keyed_by_campaign() -> None:
    [ev] = from_campaign_status_changed(
        CampaignStatusChanged(campaign_id="cmp_9", status="paused", previous="running")
    )
    assert (ev.type, ev.order_key, ev.data["status"]) == (
        "campaign.status.changed",
        "cmp_9",
        "paused",
    )


def test_call_ended_maps_to_call_completed() -> None:
    [ev] = from_call_ended(
        CallEnded(
            call_id="call_1",
            task_id="tsk_1",
            campaign_id="cmp_1",
            attempt=1,
            provider="sim",
            status="completed",
            turns=4,
            started_at=T0,
            ended_at=T0 + timedelta(seconds=30),
        )
    )
    assert ev.type == "call.completed"
    assert ev.order_key == "tsk_1"
    assert ev.data["ended_at"] == "2025-03-01T12:00:30Z"


@pytest.mark.parametrize(
    ("disposition", "types"),
    [
        ("interested", ["call.disposition_set"]),
        ("escalated", ["call.disposition_set", "call.escalated"]),
    ],
)
def test_disposition_maps_and_escalation_adds_event(disposition: str, types: list[str]) -> None:
    evs = from_disposition_recorded(
        DispositionRecorded(
            call_id="call_1",
            task_id="tsk_1",
            campaign_id="cmp_1",
            attempt=1,
            disposition=disposition,
        )
    )
    assert [e.type for e in evs] == types
    assert all(e.order_key == "tsk_1" for e in evs)


@pytest.mark.parametrize(
    ("filters", "event_type", "expected"),
    [
        (["*"], "call.completed", True),
        (["call.completed"], "call.completed", True),
        (["call.completed"], "call.escalated", False),
        (["call.*"], "call.escalated", True),
        (["call.*"], "campaign.lead.updated", False),
        (["campaign.*"], "campaign.status.changed", True),
        ([], "call.completed", False),
    ],
)
def test_filter_matching(filters: list[str], event_type: str, expected: bool) -> None:
    assert matches(filters, event_type) is expected


def test_normalize_filters() -> None:
    assert normalize_filters(None) == ["*"]
    assert normalize_filters([]) == ["*"]
    assert normalize_filters(["call.*", "call.*", "campaign.lead.updated"]) == [
        "call.*",
        "campaign.lead.updated",
    ]
    assert normalize_filters(["call.completed", "*"]) == ["*"]
    for bad in (["call.nope"], ["nothing.*"], ["lead.updated"]):
        with pytest.raises(ValueError, match="unknown event type"):
            normalize_filters(bad)
    assert all(matches(["*"], t) for t in WEBHOOK_EVENT_TYPES)


def test_body_is_compact_type_timestamp_data() -> None:
    body = envelope_body(event_type="ping", timestamp=T0, data={"a": "é"})
    assert json.loads(body) == {
        "type": "ping",
        "timestamp": "2025-03-01T12:00:00Z",
        "data": {"a": "é"},
    }
    assert " " not in body


def test_retry_schedule_without_jitter() -> None:
    delays = [retry_delay(attempts_made=n, schedule=SCHEDULE, jitter=0) for n in range(1, 8)]
    assert delays[:6] == [timedelta(seconds=s) for s in SCHEDULE[1:]]
    assert delays[6] is None  # 7 attempts made: exhausted → dead


def test_retry_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    for n, base in enumerate(SCHEDULE[1:], start=1):
        for _ in range(50):
            d = retry_delay(attempts_made=n, schedule=SCHEDULE, jitter=0.1, rng=rng)
            assert d is not None
            assert base * 0.9 <= d.total_seconds() <= base * 1.1


def test_retry_after_is_honoured_when_longer_and_capped() -> None:
    d = retry_delay(attempts_made=1, schedule=SCHEDULE, jitter=0, retry_after=120)
    assert d == timedelta(seconds=120)
    # shorter than the schedule: the schedule wins
    d = retry_delay(attempts_made=2, schedule=SCHEDULE, jitter=0, retry_after=10)
    assert d == timedelta(seconds=300)
    d = retry_delay(
        attempts_made=1, schedule=SCHEDULE, jitter=0, retry_after=10**9, max_retry_after=3600
    )
    assert d == timedelta(seconds=3600)
    # exhausted stays exhausted whatever Retry-After says
    assert retry_delay(attempts_made=7, schedule=SCHEDULE, retry_after=5) is None


def test_max_attempts_caps_schedule() -> None:
    assert retry_delay(attempts_made=1, schedule=SCHEDULE, max_attempts=1) is None
    assert retry_delay(attempts_made=1, schedule=SCHEDULE, max_attempts=2, jitter=0) == timedelta(
        seconds=5
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("-1", None),
        ("Wed, 21 Oct 2015", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_retry_after(raw: str | None, expected: float | None) -> None:
    assert parse_retry_after(raw) == expected


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (200, "succeeded"),
        (204, "succeeded"),
        (299, "succeeded"),
        (410, "gone"),
        (301, "retry"),
        (404, "retry"),
        (429, "retry"),
        (500, "retry"),
        (None, "retry"),
    ],
)
def test_outcome_of(code: int | None, outcome: str) -> None:
    assert outcome_of(code) == outcome
