"""Calling windows: examples (DST, midnight crossing, multi-zone numbers) and properties of
``CallingWindow.is_open`` / ``next_open``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbound_core.windows import (
    CallingWindow,
    Closed,
    build_window,
    parse_hhmm,
    resolve_zones,
)

PROPS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NY = ZoneInfo("America/New_York")
ZONE_NAMES = sorted(
    z
    for z in available_timezones()
    if not z.startswith(("SystemV/", "posix", "right/")) and z not in ("Factory", "localtime")
)
TOLERANCE = timedelta(minutes=1)
STEP = timedelta(minutes=7)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def window(start: str, end: str, zone: str = "America/New_York", **kw: object) -> CallingWindow:
    w = build_window(
        phone="+12125550123", contact_timezone=zone, hours_start=start, hours_end=end, **kw
    )  # type: ignore[arg-type]
    assert isinstance(w, CallingWindow)
    return w


# --------------------------------------------------------------------------------- parse_hhmm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00", time(9, 0)),
        ("0900", time(9, 0)),
        (" 23:59 ", time(23, 59)),
        ("00:00", time(0, 0)),
        ("24:00", time(0, 0)),
        ("2400", time(0, 0)),
        ("12:30", time(12, 30)),
    ],
)
def test_parse_hhmm_accepts(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize(
    "text", ["9:00", "25:00", "12:60", "24:01", "noon", "", "12:3", "123456", "-1:00", "ab:cd"]
)
def test_parse_hhmm_rejects_with_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(text)


@given(st.integers(0, 23), st.integers(0, 59), st.booleans())
@PROPS
def test_parse_hhmm_round_trip(hh: int, mm: int, colon: bool) -> None:
    text = f"{hh:02d}:{mm:02d}" if colon else f"{hh:02d}{mm:02d}"
    assert parse_hhmm(text) == time(hh, mm)


# ------------------------------------------------------------------------ resolve / build


def test_alaska_number_maps_to_several_zones() -> None:
    zones = resolve_zones(phone="+19075551234", contact_timezone=None, campaign_timezone=None)
    assert isinstance(zones, tuple)
    assert len(zones) >= 2
    assert all(z.key.startswith("America/") for z in zones)
    assert ZoneInfo("America/Anchorage") in zones


def test_toll_free_number_window_is_the_intersection_of_many_zones() -> None:
    w = build_window(
        phone="+18005551234", contact_timezone=None, hours_start="09:00", hours_end="20:00"
    )
    assert isinstance(w, CallingWindow)
    assert len(w.zones) > 10
    singles = [CallingWindow(zones=(z,), start=w.start, end=w.end) for z in w.zones]
    at = utc(2026, 1, 5, 0, 0)
    for k in range(0, 7 * 24 * 60, 10):
        t = at + timedelta(minutes=k)
        assert w.is_open(t) == all(s.is_open(t) for s in singles)
    r = w.next_open(at)
    if r is not None:
        assert r >= at and w.is_open(r)
        assert all(s.is_open(r) for s in singles)


def test_contact_timezone_beats_number_and_campaign_timezone_beats_both() -> None:
    zones = resolve_zones(
        phone="+19075551234", contact_timezone="Europe/Paris", campaign_timezone=None
    )
    assert zones == (ZoneInfo("Europe/Paris"),)
    zones = resolve_zones(
        phone="+19075551234", contact_timezone="Europe/Paris", campaign_timezone="Asia/Tokyo"
    )
    assert zones == (ZoneInfo("Asia/Tokyo"),)


@pytest.mark.parametrize("phone", ["+99912345678", "not a number", "+80012345678"])
def test_unknown_timezone_fails_closed(phone: str) -> None:
    w = build_window(phone=phone, contact_timezone=None, hours_start="09:00", hours_end="20:00")
    assert isinstance(w, Closed)
    assert w.reason == "unknown_timezone"


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "America/Nowhere", "../etc/passwd"])
def test_invalid_timezone_fails_closed(tz: str) -> None:
    w = build_window(
        phone="+12125550123", contact_timezone=tz, hours_start="09:00", hours_end="20:00"
    )
    assert isinstance(w, Closed)
    assert w.reason == "invalid_timezone"
    w = build_window(
        phone="+12125550123",
        contact_timezone=None,
        campaign_timezone=tz,
        hours_start="09:00",
        hours_end="20:00",
    )
    assert isinstance(w, Closed) and w.reason == "invalid_timezone"


def test_build_window_passes_settings_through() -> None:
    nb, na = utc(2026, 3, 2), utc(2026, 4, 1)
    w = window(
        "0900",
        "20:00",
        weekdays=[0, 1],
        blackout_dates=[date(2026, 3, 3)],
        not_before=nb,
        not_after=na,
    )
    assert w.start == time(9) and w.end == time(20)
    assert w.weekdays == frozenset({0, 1})
    assert w.blackout_dates == frozenset({date(2026, 3, 3)})
    assert (w.not_before, w.not_after) == (nb, na)


# ---------------------------------------------------------------------------------- examples


def test_simple_day_window_in_new_york() -> None:
    w = window("09:00", "20:00")
    monday_8 = datetime(2026, 3, 2, 8, 0, tzinfo=NY)
    assert not w.is_open(monday_8)
    assert w.is_open(datetime(2026, 3, 2, 9, 0, tzinfo=NY))
    assert w.is_open(datetime(2026, 3, 2, 19, 59, tzinfo=NY))
    assert not w.is_open(datetime(2026, 3, 2, 20, 0, tzinfo=NY))  # end is exclusive
    assert w.next_open(monday_8) == datetime(2026, 3, 2, 9, 0, tzinfo=NY)
    at = datetime(2026, 3, 2, 12, 0, tzinfo=NY)
    assert w.next_open(at) == at
    assert w.next_open(datetime(2026, 3, 2, 20, 0, tzinfo=NY)) == datetime(
        2026, 3, 3, 9, 0, tzinfo=NY
    )


def test_spring_forward_window_starting_in_the_skipped_hour() -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC): 02:30 never happens that night.
    w = window("02:30", "20:00")
    transition = utc(2026, 3, 8, 7, 0)
    at = utc(2026, 3, 8, 5, 0)  # 00:00 EST
    r = w.next_open(at)
    assert r == transition
    assert r.astimezone(NY).hour == 3
    for k in range(0, 120, 1):  # nothing opens before the transition
        assert not w.is_open(at + timedelta(minutes=k))
    # other days open at 02:30 local
    assert w.next_open(utc(2026, 3, 9, 5, 0)) == datetime(2026, 3, 9, 2, 30, tzinfo=NY)
    assert w.next_open(utc(2026, 3, 7, 5, 0)) == datetime(2026, 3, 7, 2, 30, tzinfo=NY)


def test_spring_forward_day_window_unaffected() -> None:
    w = window("09:00", "20:00")
    r = w.next_open(utc(2026, 3, 8, 5, 0))
    assert r == utc(2026, 3, 8, 13, 0)  # 09:00 EDT
    assert r.astimezone(NY).time() == time(9, 0)


def test_fall_back_repeated_hour_opens_at_first_occurrence() -> None:
    # 2026-11-01 02:00 EDT → 01:00 EST: 01:30 happens twice (05:30 and 06:30 UTC).
    w = window("01:30", "05:00")
    at = utc(2026, 11, 1, 4, 0)  # 00:00 EDT
    assert w.next_open(at) == utc(2026, 11, 1, 5, 30)
    assert w.is_open(utc(2026, 11, 1, 5, 59))  # 01:59 EDT
    assert not w.is_open(utc(2026, 11, 1, 6, 0))  # 01:00 EST (the clock went back)
    assert w.is_open(utc(2026, 11, 1, 6, 30))  # 01:30 EST, the second time
    # the window closes at 05:00 EST = 10:00 UTC
    assert w.is_open(utc(2026, 11, 1, 9, 59))
    assert not w.is_open(utc(2026, 11, 1, 10, 0))


def test_fall_back_day_window_length() -> None:
    w = window("00:00", "03:00")
    # on the fall-back night the 00:00–03:00 local window lasts four real hours
    start = utc(2026, 11, 1, 4, 0)
    assert w.next_open(start - timedelta(hours=1)) == start
    assert w.is_open(start + timedelta(hours=3, minutes=59))
    assert not w.is_open(start + timedelta(hours=4))


def test_fall_back_reopening_is_found_by_next_open() -> None:
    w = window("22:00", "01:30")
    at = utc(2026, 11, 1, 5, 45)  # 01:45 EDT: closed
    assert not w.is_open(at)
    assert w.is_open(utc(2026, 11, 1, 6, 10))  # 01:10 EST: open again
    r = w.next_open(at)
    assert r is not None and r <= utc(2026, 11, 1, 6, 0) + TOLERANCE


def test_midnight_crossing_window_belongs_to_the_evening_it_started() -> None:
    friday = 4
    w = window("20:00", "02:00", weekdays=[friday])
    assert w.is_open(datetime(2026, 3, 6, 21, 0, tzinfo=NY))  # Friday evening
    assert w.is_open(datetime(2026, 3, 7, 1, 30, tzinfo=NY))  # Saturday 01:30 (Friday's)
    assert not w.is_open(datetime(2026, 3, 7, 2, 0, tzinfo=NY))
    assert not w.is_open(datetime(2026, 3, 7, 21, 0, tzinfo=NY))  # Saturday evening
    assert not w.is_open(datetime(2026, 3, 6, 1, 0, tzinfo=NY))  # Thursday's night
    assert w.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=NY)) == datetime(
        2026, 3, 13, 20, 0, tzinfo=NY
    )


def test_midnight_crossing_window_blackout_uses_evening_date() -> None:
    w = window("20:00", "02:00", blackout_dates=[date(2026, 3, 6)])
    assert not w.is_open(datetime(2026, 3, 6, 22, 0, tzinfo=NY))
    assert not w.is_open(datetime(2026, 3, 7, 1, 0, tzinfo=NY))  # still the 6th's window
    assert w.is_open(datetime(2026, 3, 6, 1, 0, tzinfo=NY))  # the 5th's window
    assert w.is_open(datetime(2026, 3, 7, 20, 0, tzinfo=NY))
    assert w.next_open(datetime(2026, 3, 6, 19, 0, tzinfo=NY)) == datetime(
        2026, 3, 7, 20, 0, tzinfo=NY
    )


def test_weekdays_skip_the_weekend() -> None:
    w = window("09:00", "17:00", weekdays=range(5))
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=NY)
    assert not w.is_open(saturday)
    assert w.next_open(saturday) == datetime(2026, 3, 9, 9, 0, tzinfo=NY)


def test_equal_start_and_end_means_all_day() -> None:
    w = window("09:00", "09:00")
    for h in range(0, 24 * 7):
        assert w.is_open(utc(2026, 3, 2) + timedelta(hours=h, minutes=17))
    at = utc(2026, 3, 2, 3, 3)
    assert w.next_open(at) == at


def test_all_day_window_with_weekdays_next_open_is_midnight() -> None:
    w = window("09:00", "09:00", weekdays=[1])  # Tuesdays only
    monday = datetime(2026, 3, 2, 12, 0, tzinfo=NY)
    assert not w.is_open(monday)
    assert w.is_open(datetime(2026, 3, 3, 0, 0, tzinfo=NY))
    assert w.next_open(monday) == datetime(2026, 3, 3, 0, 0, tzinfo=NY)


def test_all_day_window_from_midnight_with_weekdays() -> None:
    w = window("00:00", "00:00", weekdays=[1])
    monday = datetime(2026, 3, 2, 12, 0, tzinfo=NY)
    assert w.next_open(monday) == datetime(2026, 3, 3, 0, 0, tzinfo=NY)
    assert not w.is_open(datetime(2026, 3, 4, 0, 0, tzinfo=NY))


def test_schedule_bounds() -> None:
    nb = datetime(2026, 3, 4, 12, 0, tzinfo=NY)
    na = datetime(2026, 3, 6, 12, 0, tzinfo=NY)
    w = window("09:00", "20:00", not_before=nb, not_after=na)
    monday = datetime(2026, 3, 2, 10, 0, tzinfo=NY)
    assert not w.is_open(monday)  # inside hours, before the schedule
    assert w.next_open(monday) == nb  # not_before itself is inside hours
    assert w.is_open(nb)
    assert w.is_open(na - timedelta(seconds=1))
    assert not w.is_open(na)  # not_after exclusive
    assert w.next_open(na) is None
    assert w.next_open(na + timedelta(days=1)) is None
    assert w.next_open(datetime(2026, 3, 5, 21, 0, tzinfo=NY)) == datetime(
        2026, 3, 6, 9, 0, tzinfo=NY
    )


def test_not_before_at_night_opens_at_next_start() -> None:
    nb = datetime(2026, 3, 4, 22, 0, tzinfo=NY)
    w = window("09:00", "20:00", not_before=nb)
    assert w.next_open(datetime(2026, 3, 2, 10, 0, tzinfo=NY)) == datetime(
        2026, 3, 5, 9, 0, tzinfo=NY
    )


def test_schedule_end_before_next_start_gives_none() -> None:
    na = datetime(2026, 3, 5, 8, 0, tzinfo=NY)
    w = window("09:00", "20:00", not_after=na)
    assert w.next_open(datetime(2026, 3, 4, 21, 0, tzinfo=NY)) is None


# -------------------------------------------------------------------------------- properties

times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
weekday_sets = st.none() | st.frozensets(st.integers(0, 6), min_size=1)
zones_st = st.lists(st.sampled_from(ZONE_NAMES), min_size=1, max_size=3, unique=True).map(
    lambda names: tuple(ZoneInfo(n) for n in names)
)


def _assert_first(w: CallingWindow, at: datetime, r: datetime) -> None:
    t = at + STEP
    limit = r - TOLERANCE
    while t < limit:
        assert not w.is_open(t), f"open at {t} before next_open {r} (from {at})"
        t += STEP


@given(zones=zones_st, start=times_of_day, end=times_of_day, days=weekday_sets, at=instants)
@PROPS
def test_next_open_is_open_and_first(
    zones: tuple[ZoneInfo, ...],
    start: time,
    end: time,
    days: frozenset[int] | None,
    at: datetime,
) -> None:
    w = CallingWindow(zones=zones, start=start, end=end, weekdays=days)
    r = w.next_open(at)
    if w.is_open(at):
        assert r == at
    if r is None:
        if len(zones) == 1:
            pytest.fail("a single-zone window with allowed days always opens within two weeks")
        return
    assert r >= at
    assert w.is_open(r)
    _assert_first(w, at, r)


@given(
    zone=st.sampled_from(ZONE_NAMES),
    start=times_of_day,
    end=times_of_day,
    at=instants,
    nb_hours=st.integers(-48, 24 * 12),
    span_hours=st.integers(1, 24 * 10),
)
@PROPS
def test_next_open_respects_schedule(
    zone: str, start: time, end: time, at: datetime, nb_hours: int, span_hours: int
) -> None:
    nb = at + timedelta(hours=nb_hours, minutes=11)
    na = nb + timedelta(hours=span_hours)
    w = CallingWindow(zones=(ZoneInfo(zone),), start=start, end=end, not_before=nb, not_after=na)
    r = w.next_open(at)
    if r is None:
        return
    assert nb <= r < na
    assert r >= at and w.is_open(r)
    _assert_first(w, at, r)


@given(
    zones=st.lists(st.sampled_from(ZONE_NAMES), min_size=2, max_size=4, unique=True),
    start=times_of_day,
    end=times_of_day,
    days=weekday_sets,
    at=instants,
)
@PROPS
def test_multi_zone_window_is_the_intersection(
    zones: list[str], start: time, end: time, days: frozenset[int] | None, at: datetime
) -> None:
    zi = tuple(ZoneInfo(z) for z in zones)
    multi = CallingWindow(zones=zi, start=start, end=end, weekdays=days)
    singles = [CallingWindow(zones=(z,), start=start, end=end, weekdays=days) for z in zi]
    for k in range(0, 24 * 60, 97):
        t = at + timedelta(minutes=k)
        assert multi.is_open(t) == all(s.is_open(t) for s in singles)
    r = multi.next_open(at)
    if r is not None:
        assert all(s.is_open(r) for s in singles)
        assert all(s.next_open(at) is not None and s.next_open(at) <= r for s in singles)
