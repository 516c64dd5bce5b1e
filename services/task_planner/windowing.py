"""The calling window of a task under its campaign's settings, built once per shape (phone
zones × campaign hours × schedule) and cached: a tick considers many tasks that share one."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from outbound_core.windows import CallingWindow, Closed, build_window
from task_planner.realtime import hours_of
from task_planner.repository import Doc


def window_for(task: Doc, campaign: Doc) -> CallingWindow | Closed:
    """The calling window of the task's current phone under the campaign's settings, or under
    the task's own (a realtime task: its hours, zone, startAfter and endAfter)."""
    h = hours_of(task, campaign)
    weekdays = h["weekdays"]
    return _window(
        phone=task["phones"][task["phone_index"]],
        contact_timezone=task.get("timezone"),
        campaign_timezone=h["campaign_timezone"],
        hours_start=h["hours_start"],
        hours_end=h["hours_end"],
        weekdays=tuple(weekdays) if weekdays is not None else None,
        blackout_dates=tuple(str(d) for d in h["blackout_dates"]),
        not_before=h["not_before"],
        not_after=h["not_after"],
    )


@lru_cache(maxsize=65536)
def _window(
    *,
    phone: str,
    contact_timezone: str | None,
    campaign_timezone: str | None,
    hours_start: str,
    hours_end: str,
    weekdays: tuple[int, ...] | None,
    blackout_dates: tuple[str, ...],
    not_before: datetime | None,
    not_after: datetime | None,
) -> CallingWindow | Closed:
    # Cached: tasks of a campaign share a handful of shapes (one per number's zones).
    try:
        return build_window(
            phone=phone,
            contact_timezone=contact_timezone,
            campaign_timezone=campaign_timezone,
            hours_start=hours_start,
            hours_end=hours_end,
            weekdays=weekdays,
            blackout_dates=[date.fromisoformat(d) for d in blackout_dates],
            not_before=not_before,
            not_after=not_after,
        )
    except ValueError as exc:  # settings that cannot be read: never call at a guess
        return Closed("invalid_settings", str(exc))
