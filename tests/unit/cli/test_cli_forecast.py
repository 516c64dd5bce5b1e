"""The dry-run forecast uses the planner's rules: no simulated call outside its window, never
more calls at once than slots, attempts within the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from outbound_cli.forecast import ForecastInput, forecast
from outbound_core.windows import CallingWindow, build_window

PHONES = [["+12127363001"], ["+14155552671"], ["+919876543210"], ["+12127363002", "+14155552672"]]


def _inp(**kw: object) -> ForecastInput:
    base: dict[str, object] = {
        "phones": PHONES * 25,
        "timezones": [None] * 100,
        "start": datetime(2026, 3, 2, 12, tzinfo=UTC),
        "slots": 5,
        "connect_rate": 0.3,
        "max_attempts": 3,
        "retry_interval_minutes": 60,
    }
    return ForecastInput(**{**base, **kw})  # type: ignore[arg-type]


def test_every_simulated_call_starts_inside_the_recipients_window() -> None:
    inp = _inp()
    result = forecast(inp)
    assert result.attempts == len(result.starts) > 0
    for at, idx, phone_index in result.starts:
        w = build_window(
            phone=inp.phones[idx][phone_index],
            contact_timezone=None,
            hours_start="09:00",
            hours_end="20:00",
        )
        assert isinstance(w, CallingWindow)
        assert w.is_open(at), (at, inp.phones[idx][phone_index])


def test_attempts_respect_policy_and_every_contact_ends() -> None:
    result = forecast(_inp())
    assert result.reached + result.not_reachable + result.blocked + result.unfinished == 100
    assert result.attempts <= sum(len(p) for p in PHONES * 25) * 3
    assert result.not_reachable > 0 and result.reached > 0


def test_more_slots_finish_sooner() -> None:
    slow = forecast(_inp(slots=1, connect_rate=0.9, max_attempts=1))
    fast = forecast(_inp(slots=20, connect_rate=0.9, max_attempts=1))
    assert fast.duration < slow.duration


def test_schedule_end_leaves_work_unfinished() -> None:
    inp = _inp(slots=1, end=datetime(2026, 3, 2, 15, tzinfo=UTC))
    result = forecast(inp)
    assert result.unfinished > 0
    assert all(at < datetime(2026, 3, 2, 15, tzinfo=UTC) for at, _, _ in result.starts)
    assert result.last_call_end is not None
    assert result.last_call_end < datetime(2026, 3, 2, 15, tzinfo=UTC) + timedelta(hours=1)
