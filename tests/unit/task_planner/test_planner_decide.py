"""The planner's scheduling decision: queue, wait for the next window, or block for good."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from outbound_core.windows import CallingWindow, Closed, parse_hhmm
from task_planner.domain import decide
from task_planner.windowing import window_for

PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
RECHECK = timedelta(hours=24)
NY = ZoneInfo("America/New_York")
MON_10_NY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York


def campaign(**hours: object) -> dict[str, object]:
    return {"calling_hours": {"start": "09:00", "end": "20:00", **hours}, "schedule": None}


def task(phone: str = "+12127363001", timezone: str | None = None) -> dict[str, object]:
    return {"phones": [phone], "phone_index": 0, "timezone": timezone}


def test_open_now_queues() -> None:
    d = decide(window_for(task(), campaign()), MON_10_NY, recheck=RECHECK)
    assert (d.action, d.due_at) == ("queue", MON_10_NY)


def test_outside_hours_waits_for_local_start() -> None:
    at = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # Monday 21:00 in New York
    d = decide(window_for(task(), campaign()), at, recheck=RECHECK)
    assert d.action == "wait"
    assert d.due_at == datetime(2026, 3, 3, 9, 0, tzinfo=NY)


def test_recipient_zone_not_callers_zone() -> None:
    # 10:00 in New York is 20:30 in Kolkata: the Indian number waits for 09:00 IST.
    d = decide(window_for(task("+919876543210"), campaign()), MON_10_NY, recheck=RECHECK)
    assert d.action == "wait"
    assert d.due_at == datetime(2026, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    # 07:00 in Los Angeles: waits two hours.
    d = decide(window_for(task("+13105551234"), campaign()), MON_10_NY, recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def test_contact_timezone_wins_over_number() -> None:
    d = decide(window_for(task(timezone="Asia/Kolkata"), campaign()), MON_10_NY, recheck=RECHECK)
    assert d.action == "wait"


def test_weekdays_and_blackouts() -> None:
    fri_only = campaign(weekdays=[4])
    d = decide(window_for(task(), fri_only), MON_10_NY, recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 6, 9, 0, tzinfo=NY)
    holiday = campaign(blackout_dates=["2026-03-02", "2026-03-03"])
    d = decide(window_for(task(), holiday), MON_10_NY, recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 4, 9, 0, tzinfo=NY)


def test_midnight_crossing_window_belongs_to_the_evening_it_opened() -> None:
    fri_night = campaign(start="20:00", end="02:00", weekdays=[4])
    w = window_for(task(), fri_night)
    assert isinstance(w, CallingWindow)
    assert w.is_open(datetime(2026, 3, 7, 1, 30, tzinfo=NY))  # Saturday 01:30: Friday's window
    assert not w.is_open(datetime(2026, 3, 7, 2, 0, tzinfo=NY))
    assert not w.is_open(datetime(2026, 3, 7, 21, 0, tzinfo=NY))  # Saturday evening
    d = decide(w, MON_10_NY, recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 6, 20, 0, tzinfo=NY)


def test_dst_skipped_start_opens_at_the_transition() -> None:
    # 2026-03-08 02:00 does not exist in New York; a 02:30 start opens at 03:00 EDT.
    w = window_for(task(), campaign(start="02:30", end="05:00"))
    assert isinstance(w, CallingWindow)
    d = decide(w, datetime(2026, 3, 8, 5, 0, tzinfo=UTC), recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_fail_closed_reasons() -> None:
    bad_zone = decide(
        window_for(task(timezone="Mars/Olympus"), campaign()), MON_10_NY, recheck=RECHECK
    )
    assert (bad_zone.action, bad_zone.reason) == ("block", "invalid_timezone")
    unknown = decide(window_for(task("+80012345678"), campaign()), MON_10_NY, recheck=RECHECK)
    assert (unknown.action, unknown.reason) == ("block", "unknown_timezone")
    # A US toll-free number maps to 42 zones from Guam to Newfoundland: 09–17 never overlaps
    # in all of them (09–20 does, for half an hour: 09:00 in Guam is 19:30 in St John's).
    toll_free = decide(
        window_for(task("+18005551234"), campaign(end="17:00")), MON_10_NY, recheck=RECHECK
    )
    assert (toll_free.action, toll_free.reason) == ("block", "empty_window")
    narrow = decide(window_for(task("+18005551234"), campaign()), MON_10_NY, recheck=RECHECK)
    assert narrow.action == "wait"
    assert narrow.due_at == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    broken = decide(
        window_for(task(), campaign(blackout_dates=["not a date"])), MON_10_NY, recheck=RECHECK
    )
    assert (broken.action, broken.reason) == ("block", "invalid_settings")


def test_several_zones_only_where_all_are_open() -> None:
    w = CallingWindow(
        zones=(ZoneInfo("America/Adak"), ZoneInfo("America/Anchorage")),
        start=parse_hhmm("09:00"),
        end=parse_hhmm("20:00"),
    )
    d = decide(w, datetime(2026, 3, 2, 17, 0, tzinfo=UTC), recheck=RECHECK)  # 08:00 AKST
    # Adak is an hour behind Anchorage: the intersection opens at 09:00 in Adak.
    assert d.due_at == datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("America/Adak"))


def test_schedule_end_and_start() -> None:
    c = campaign()
    c["schedule"] = {
        "start_time": datetime(2026, 3, 4, 0, 0, tzinfo=UTC),  # 19:00 in NY
        "end_time": datetime(2026, 3, 5, 0, 0, tzinfo=UTC),
        "timezone": "UTC",
    }
    d = decide(window_for(task(), c), MON_10_NY, recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 4, 0, 0, tzinfo=UTC)
    d = decide(window_for(task(), c), datetime(2026, 3, 4, 1, 0, tzinfo=UTC), recheck=RECHECK)
    assert d.due_at == datetime(2026, 3, 4, 9, 0, tzinfo=NY)
    d = decide(window_for(task(), c), datetime(2026, 3, 5, 0, 0, tzinfo=UTC), recheck=RECHECK)
    assert d.action == "ended"


ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Adak",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Europe/Berlin",
]
HHMM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30]))
INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
)


@PROPS
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    start=HHMM,
    end=HHMM,
    now=INSTANTS,
    weekdays=st.none() | st.sets(st.integers(0, 6), min_size=1),
    blackout=st.lists(st.dates(date(2025, 1, 1), date(2028, 1, 1)), max_size=5),
)
def test_decision_never_queues_outside_and_waits_for_an_open_instant(
    zones: list[str],
    start: str,
    end: str,
    now: datetime,
    weekdays: set[int] | None,
    blackout: list[date],
) -> None:
    w = CallingWindow(
        zones=tuple(ZoneInfo(z) for z in zones),
        start=parse_hhmm(start),
        end=parse_hhmm(end),
        weekdays=frozenset(weekdays) if weekdays else None,
        blackout_dates=frozenset(blackout),
    )
    d = decide(w, now, recheck=RECHECK)
    if d.action == "queue":
        assert w.is_open(now)
    elif d.action == "wait":
        assert d.due_at is not None and d.due_at > now
        assert not w.is_open(now)
        if d.due_at != now + RECHECK:
            assert w.is_open(d.due_at)
            # nothing open between now and then, at minute resolution near the start
            probe = d.due_at - timedelta(minutes=1)
            assert probe <= now or not w.is_open(probe)
    else:
        assert d.action == "block" and d.reason == "empty_window"
        assert not isinstance(w, Closed)
        assert not any(w.is_open(now + timedelta(minutes=30 * k)) for k in range(48 * 3))
