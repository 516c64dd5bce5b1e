"""Realtime task checks and mapping: every rejection reason, the reference's sample body as it
is (comments, trailing commas), HHMM hours, epoch-ms instants and idempotent ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_api.ingest import redact, unwrap
from campaign_api.realtime import (
    RejectedTask,
    check_task,
    effective_config,
    parse_lenient,
    public_status,
    task_id_for,
)

SAMPLE = """{
  "phone": "+919876543210", // phone number to call
  "from": "+918012345678", // your agent's number
  "agent": "agent_id",
  "start": 1000, //10 AM
  "end": 1800, //06 PM
  "timezone": "Asia/Kolkata",
  "startAfter": 1748629800000, //start time for 1st attempt
  "endAfter": 1748629800000, //end time for this task
  "priorities": [ //attempt wise priority
    100,
    50,
  ],
  "retries": 2, //total attempts
  "intervals": [ //gap between attempts
    180000
  ],
  "retryOutcomes": [ //outcomes for re-attempt
    "voicemail"
  ],
  "context": { //context for agent
    "name": "Tarun"
  },
  "campaign": "campaign_id"
}"""


def _task(**fields: Any) -> dict[str, Any]:
    return {"phone": "+919876543210", "campaign": "cmp_1", **fields}


def test_the_reference_sample_is_accepted_as_it_is() -> None:
    req = check_task(parse_lenient(SAMPLE))
    assert req.phone == "+919876543210"
    assert req.campaign_id == "campaign_id"
    assert req.agent_id == "agent_id"
    c = req.config
    assert (c.hours_start, c.hours_end, c.timezone) == ("10:00", "18:00", "Asia/Kolkata")
    assert c.start_after == datetime(2025, 5, 30, 18, 30, tzinfo=UTC)
    assert c.end_after == c.start_after
    assert c.priorities == [100, 50]
    assert c.retries == 2
    assert c.intervals_ms == [180000]
    assert c.retry_outcomes == ["voicemail"]
    assert c.from_number == "+918012345678"
    assert req.name == "Tarun"
    assert req.variables == {"name": "Tarun"}


def test_comment_markers_inside_strings_are_kept() -> None:
    assert parse_lenient('{"a": "http://x//y", "b": [1,],}') == {"a": "http://x//y", "b": [1]}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not a dict", "invalid_task"),
        (_task(phone=None), "missing_phone"),
        (_task(phone="+1 555"), "invalid_phone"),
        (_task(campaign=None), "missing_campaign"),
        (_task(retries=3, intervals=[1000]), "invalid_intervals"),
        (_task(retries=2), "invalid_intervals"),
        (_task(intervals=[1000]), "invalid_intervals"),
        (_task(retries=2, intervals=[-1]), "invalid_intervals"),
        (_task(retries=0), "invalid_retries"),
        (_task(retries=11), "invalid_retries"),
        (_task(priorities=[1, 2]), "invalid_priorities"),
        (_task(start=2500), "invalid_hours"),
        (_task(end="noon"), "invalid_hours"),
        (_task(timezone="Mars/Olympus"), "invalid_timezone"),
        (_task(startAfter="tomorrow"), "invalid_time"),
        (_task(startAfter=2000, endAfter=1000), "invalid_time"),
        (_task(context=[1]), "invalid_context"),
        (_task(**{"from": "12"}), "invalid_from"),
    ],
)
def test_each_problem_has_its_reason(raw: Any, reason: str) -> None:
    with pytest.raises(RejectedTask) as info:
        check_task(raw)
    assert info.value.rejection.reason == reason


def test_not_json_is_rejected() -> None:
    with pytest.raises(RejectedTask) as info:
        parse_lenient(b"{ nope")
    assert info.value.rejection.reason == "not_json"


def test_defaults_and_hhmm_forms() -> None:
    c = check_task(_task()).config
    assert (c.hours_start, c.hours_end, c.retries, c.intervals_ms) == ("09:00", "20:00", 1, [])
    assert check_task(_task(start=930, end="2130")).config.hours_start == "09:30"
    assert check_task(_task(start="09:30")).config.hours_start == "09:30"
    assert check_task(_task(start=0, end=0)).config.hours_end == "00:00"
    assert check_task(_task(retryOutcomes=["No Answer"])).config.retry_outcomes == ["no_answer"]


def test_task_ref_makes_ids_stable_per_workspace() -> None:
    a = task_id_for(workspace_id="ws_1", task_ref="lead-1")
    assert a == task_id_for(workspace_id="ws_1", task_ref="lead-1")
    assert a != task_id_for(workspace_id="ws_2", task_ref="lead-1")
    assert task_id_for(workspace_id="ws_1", task_ref=None) != task_id_for(
        workspace_id="ws_1", task_ref=None
    )
    assert check_task(_task(), default_task_ref="k1").task_ref == "k1"
    assert check_task(_task(task_ref="own"), default_task_ref="k1").task_ref == "own"


def test_public_status_and_effective_config() -> None:
    assert public_status("waiting_retry", campaign_status="running") == "queued"
    assert public_status("pending", campaign_status="paused") == "paused"
    assert public_status("dialing", campaign_status="paused") == "in_progress"
    assert public_status("not_reachable", campaign_status=None) == "completed"
    cfg = check_task(parse_lenient(SAMPLE)).config.model_dump(mode="python")
    eff = effective_config(cfg)
    assert eff["start"] == 1000 and eff["end"] == 1800
    assert eff["startAfter"] == 1748629800000
    assert eff["intervals"] == [180000]


def test_unwrap_envelope_and_bare_forms_and_redaction() -> None:
    bare = {"workspace_id": "ws_1", "api_key": "secret", "phone": "+1"}
    assert unwrap(bare, {}) == ("ws_1", "secret", bare)
    env = {"type": "task.submit", "workspace_id": "ws_2", "data": {"phone": "+1"}}
    assert unwrap(env, {"authorization": "Bearer tok"}) == ("ws_2", "tok", {"phone": "+1"})
    assert unwrap([1], {}) == (None, None, [1])
    assert redact(bare)["api_key"] == "***"
