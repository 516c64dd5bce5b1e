"""Calling windows: when a number may be dialled.

Pure and synchronous. A window is the intersection of
- the campaign schedule (``not_before`` … ``not_after``, UTC instants),
- the daily calling hours in *every* candidate zone of the recipient (a number that maps to
  several zones may be called only when it is inside the hours in all of them),
- optional allowed weekdays and blackout dates (judged on the local date the daily window
  started, so a 20:00–02:00 window belongs to the evening it began).

Unknown or invalid zones fail closed: :func:`build_window` returns a :class:`Closed` reason
instead of a window, and callers never dial at a guess.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outbound_core.phones import UNKNOWN_TIMEZONE, timezones_for_number

_HORIZON_DAYS = 15


@dataclass(frozen=True)
class Closed:
    """Why a task can never be called under the current settings."""

    reason: str
    detail: str


def parse_hhmm(value: str) -> time:
    """``"09:00"`` or ``"0900"`` → time; raises ValueError with a clear message."""
    text = value.strip().replace(":", "")
    if len(text) != 4 or not text.isdigit():
        raise ValueError(f"{value!r} is not a time of day in HH:MM or HHMM form")
    hh, mm = int(text[:2]), int(text[2:])
    if hh == 24 and mm == 0:
        return time(0, 0)
    if hh > 23 or mm > 59:
        raise ValueError(f"{value!r} is not a time of day in HH:MM or HHMM form")
    return time(hh, mm)


@dataclass(frozen=True)
class CallingWindow:
    zones: tuple[ZoneInfo, ...]
    start: time
    end: time
    weekdays: frozenset[int] | None = None  # 0 = Monday
    blackout_dates: frozenset[date] = frozenset()
    not_before: datetime | None = None
    not_after: datetime | None = None

    def _open_in_zone(self, at: datetime, zone: ZoneInfo) -> bool:
        # Hot path (every due task): plain comparisons, no intermediate objects.
        local = at.astimezone(zone)
        start, end = self.start, self.end
        if start == end:  # all day: weekdays and blackouts judge the calendar day
            opened_on = local.date()
        else:
            t = local.time()
            if start < end:
                if not start <= t < end:
                    return False
                opened_on = local.date()
            elif t >= start:  # crosses midnight, evening part
                opened_on = local.date()
            elif t < end:  # crosses midnight, early-morning part: the evening before's window
                opened_on = local.date() - timedelta(days=1)
            else:
                return False
        if self.weekdays is not None and opened_on.weekday() not in self.weekdays:
            return False
        return not self.blackout_dates or opened_on not in self.blackout_dates

    def is_open(self, at: datetime) -> bool:
        """True when a call may start at instant ``at``."""
        if self.not_before is not None and at < self.not_before:
            return False
        if self.not_after is not None and at >= self.not_after:
            return False
        for zone in self.zones:
            if not self._open_in_zone(at, zone):
                return False
        return True

    def next_open(self, at: datetime) -> datetime | None:
        """The first instant ≥ ``at`` when a call may start, or None if none is within the
        planning horizon (about two weeks) or the schedule has ended."""
        if self.not_after is not None and at >= self.not_after:
            return None
        if self.is_open(at):
            return at
        # The window can only open at a daily opening in some zone, at a DST transition (a
        # fall-back repeated hour re-opens it) or at the schedule's start.
        opens_at = time(0, 0) if self.start == self.end else self.start
        daily = _openings(self.zones, opens_at, at.astimezone(UTC).date())
        later = daily[bisect_right(daily, at) :]
        if self.not_before is not None and self.not_before > at:
            later = tuple(sorted({self.not_before, *later}))
        horizon = at + timedelta(days=_HORIZON_DAYS)
        for candidate in later:
            if candidate > horizon:
                break
            if self.is_open(candidate):
                return candidate
        return None


@lru_cache(maxsize=4096)
def _openings(zones: tuple[ZoneInfo, ...], opens_at: time, day: date) -> tuple[datetime, ...]:
    """Sorted UTC instants, from the day before ``day`` (UTC) to past the planning horizon, at
    which a daily window opening at local ``opens_at`` in any of ``zones`` can open: the
    local openings and every UTC-offset transition. Cached: many tasks share a shape."""
    start = datetime.combine(day, time(0, 0), tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(days=_HORIZON_DAYS + 3)
    out: set[datetime] = set()
    for zone in zones:
        out.update(_transitions(zone, start, end))
        local_day = start.astimezone(zone).date()
        for offset in range(-1, _HORIZON_DAYS + 4):
            d = local_day + timedelta(days=offset)
            for fold in (0, 1):
                local = datetime.combine(d, opens_at, tzinfo=zone).replace(fold=fold)
                instant = local.astimezone(UTC)
                # A start inside a skipped (DST) hour opens at the transition itself.
                if instant.astimezone(zone).time().replace(tzinfo=None) != opens_at:
                    instant = _next_transition(instant - timedelta(hours=2), zone) or instant
                out.add(instant)
    return tuple(sorted(out))


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterable[datetime]:
    """UTC instants in (start, end] at which ``zone``'s offset changes, to the minute."""
    step = timedelta(hours=12)
    lo = start
    lo_off = lo.astimezone(zone).utcoffset()
    while lo < end:
        hi = lo + step
        hi_off = hi.astimezone(zone).utcoffset()
        if hi_off != lo_off:
            a, b = lo, hi  # offset(a) == lo_off != offset(b): bisect to the minute
            while b - a > timedelta(minutes=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == lo_off:
                    a = mid
                else:
                    b = mid
            floor = b.replace(second=0, microsecond=0)
            yield floor if floor.astimezone(zone).utcoffset() != lo_off else b
        lo, lo_off = hi, hi_off


def _next_transition(after: datetime, zone: ZoneInfo) -> datetime | None:
    """First UTC instant after ``after`` at which ``zone``'s UTC offset changes (minute steps
    over a few hours: only used for the rare start time that falls into a skipped hour)."""
    probe = after.replace(second=0, microsecond=0)
    offset = probe.astimezone(zone).utcoffset()
    for _ in range(6 * 60):
        probe += timedelta(minutes=1)
        if probe.astimezone(zone).utcoffset() != offset:
            return probe
    return None


def resolve_zones(
    *, phone: str, contact_timezone: str | None, campaign_timezone: str | None
) -> tuple[ZoneInfo, ...] | Closed:
    """Zones whose hours apply: the campaign's (when the campaign says so), else the contact's
    ``timezone``, else every zone the number maps to."""
    names: Sequence[str]
    if campaign_timezone:
        names = (campaign_timezone,)
    elif contact_timezone:
        names = (contact_timezone,)
    else:
        names = timezones_for_number(phone)
    zones: list[ZoneInfo] = []
    for name in names:
        if name == UNKNOWN_TIMEZONE:
            return Closed("unknown_timezone", "the number's timezone cannot be determined")
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            return Closed("invalid_timezone", f"{name!r} is not an IANA timezone")
    return tuple(zones)


def build_window(
    *,
    phone: str,
    contact_timezone: str | None,
    hours_start: str,
    hours_end: str,
    campaign_timezone: str | None = None,
    weekdays: Iterable[int] | None = None,
    blackout_dates: Iterable[date] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> CallingWindow | Closed:
    zones = resolve_zones(
        phone=phone, contact_timezone=contact_timezone, campaign_timezone=campaign_timezone
    )
    if isinstance(zones, Closed):
        return zones
    return CallingWindow(
        zones=zones,
        start=parse_hhmm(hours_start),
        end=parse_hhmm(hours_end),
        weekdays=frozenset(weekdays) if weekdays is not None else None,
        blackout_dates=frozenset(blackout_dates),
        not_before=not_before,
        not_after=not_after,
    )
