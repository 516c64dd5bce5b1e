"""Realtime tasks carry their own configuration (``config`` on the task document): calling
hours and zone, start/end instants, per-attempt priorities, attempts and gaps, retried outcomes,
caller id and agent. These pure functions turn a task (and its campaign) into what the planner
uses, so that a batch task and a realtime task go through the very same rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from outbound_core.clock import utc
from outbound_core.events import AgentSnapshot, DialWindow
from task_planner.domain import RetryPolicy

Doc = dict[str, Any]
ALWAYS_RETRIED = ("no_answer", "busy", "failed")


def is_realtime(task: Doc) -> bool:
    return bool(task.get("config"))


def policy_for(task: Doc, campaign: Doc) -> RetryPolicy:
    """The task's retry policy: its own (realtime) or its campaign's (batch)."""
    cfg = task.get("config")
    if not cfg:
        return RetryPolicy.batch(
            max_attempts=campaign.get("max_attempts", 1),
            retry_interval_minutes=campaign.get("retry_interval_minutes", 240),
            retry_outcomes=campaign.get("retry_outcomes", list(ALWAYS_RETRIED)),
        )
    intervals = tuple(timedelta(milliseconds=ms) for ms in cfg.get("intervals_ms") or ())
    return RetryPolicy(
        max_attempts=int(cfg.get("retries", 1)),
        retry_interval=intervals[-1] if intervals else timedelta(0),
        retry_outcomes=frozenset({*ALWAYS_RETRIED, *(cfg.get("retry_outcomes") or ())}),
        intervals=intervals,
    )


def attempt_priority(task: Doc) -> int:
    """The allocator's attempt priority (lower runs first). Batch: the pass number, so every
    first attempt goes before any second one. Realtime: the task's ``priorities[attempt]``
    (higher runs first, hence negated); an attempt without one keeps the last given."""
    cfg = task.get("config")
    prios = (cfg or {}).get("priorities") or []
    if not prios:
        return int(task["pass_number"])
    return -int(prios[min(task["pass_number"], len(prios)) - 1])


def hours_of(task: Doc, campaign: Doc) -> dict[str, Any]:
    """Window settings in the shape of ``windowing.window_for``'s inputs."""
    cfg = task.get("config")
    if not cfg:
        schedule = campaign.get("schedule") or {}
        hours = campaign.get("calling_hours") or {}
        return {
            "hours_start": hours.get("start", "09:00"),
            "hours_end": hours.get("end", "20:00"),
            "campaign_timezone": schedule.get("timezone")
            if hours.get("use_campaign_timezone")
            else None,
            "weekdays": hours.get("weekdays"),
            "blackout_dates": hours.get("blackout_dates") or (),
            "not_before": utc(schedule["start_time"]) if schedule.get("start_time") else None,
            "not_after": utc(schedule["end_time"]) if schedule.get("end_time") else None,
        }
    return {
        "hours_start": cfg.get("hours_start", "00:00"),
        "hours_end": cfg.get("hours_end", "00:00"),
        "campaign_timezone": cfg.get("timezone"),
        "weekdays": None,
        "blackout_dates": (),
        "not_before": utc(cfg["start_after"]) if cfg.get("start_after") else None,
        "not_after": utc(cfg["end_after"]) if cfg.get("end_after") else None,
    }


def dial_extras(task: Doc) -> dict[str, Any]:
    """DialRequest fields a realtime task adds: its caller id, agent and window."""
    cfg = task.get("config")
    if not cfg:
        return {}
    h = hours_of(task, {})
    return {
        "from_number": cfg.get("from_number"),
        "agent": AgentSnapshot.model_validate(cfg["agent"]) if cfg.get("agent") else None,
        "window": DialWindow(
            hours_start=h["hours_start"],
            hours_end=h["hours_end"],
            timezone=h["campaign_timezone"],
            not_before=h["not_before"],
            not_after=h["not_after"],
        ),
    }
