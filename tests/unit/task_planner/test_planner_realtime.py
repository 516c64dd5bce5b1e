"""A realtime task's own configuration drives the planner's rules: its retry policy (attempts,
per-attempt gaps, retried outcomes), its attempt priorities and its window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from outbound_core.events import TaskConfig
from task_planner.domain import after_attempt, initial_position
from task_planner.realtime import attempt_priority, dial_extras, policy_for
from task_planner.windowing import window_for

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _task(**cfg: Any) -> dict[str, Any]:
    config = TaskConfig(**cfg).model_dump(mode="python")
    return {"phones": ["+919876543210"], "phone_index": 0, "pass_number": 1, "config": config}


def test_policy_uses_the_tasks_intervals_per_attempt() -> None:
    task = _task(retries=3, intervals_ms=[60_000, 600_000], retry_outcomes=["voicemail"])
    policy = policy_for(task, {"max_attempts": 5, "retry_interval_minutes": 240})
    assert policy.max_attempts == 3
    assert {"voicemail", "no_answer", "busy", "failed"} <= policy.retry_outcomes
    pos = initial_position(1)
    n1 = after_attempt(policy=policy, pos=pos, disposition="voicemail", terminal=False, ended_at=T0)
    assert n1.due_at == T0 + timedelta(minutes=1)
    n2 = after_attempt(
        policy=policy, pos=n1.position, disposition="no_answer", terminal=False, ended_at=T0
    )
    assert n2.due_at == T0 + timedelta(minutes=10)
    n3 = after_attempt(
        policy=policy, pos=n2.position, disposition="no_answer", terminal=False, ended_at=T0
    )
    assert n3.status == "not_reachable"


def test_an_outcome_not_listed_is_not_retried() -> None:
    policy = policy_for(_task(retries=2, intervals_ms=[1000]), {})
    n = after_attempt(
        policy=policy, pos=initial_position(1), disposition="voicemail", terminal=False, ended_at=T0
    )
    assert n.status == "completed"


def test_attempt_priorities_higher_first_and_batch_unchanged() -> None:
    task = _task(retries=3, intervals_ms=[1, 1], priorities=[100, 50])
    assert attempt_priority(task) == -100
    assert attempt_priority({**task, "pass_number": 2}) == -50
    assert attempt_priority({**task, "pass_number": 3}) == -50  # the last one holds
    assert attempt_priority({"pass_number": 2, "config": None}) == 2


def test_window_is_the_tasks_own() -> None:
    task = _task(
        hours_start="10:00",
        hours_end="18:00",
        timezone="Asia/Kolkata",
        start_after=T0,
        end_after=T0 + timedelta(days=1),
    )
    w = window_for(task, {"calling_hours": {"start": "00:00", "end": "00:00"}})
    # 15:00Z is 20:30 in Kolkata: next opening 10:00 IST = 04:30Z the next day
    assert w.next_open(T0) == datetime(2026, 3, 3, 4, 30, tzinfo=UTC)  # type: ignore[union-attr]
    extras = dial_extras(task)
    assert extras["window"].timezone == "Asia/Kolkata"
    assert dial_extras({"config": None}) == {}
