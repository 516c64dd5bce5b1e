"""One clock for every process.

Production uses the wall clock. Simulation uses a virtual clock defined by a virtual start
instant, the real (epoch) instant at which the virtual clock read that start, and a speed
factor. Because every process derives virtual time from the shared wall clock with the same
three numbers, all processes agree on "now" without talking to each other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    @property
    def speed(self) -> float:
        """Virtual seconds per real second (1 for the wall clock)."""
        ...

    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""
        ...

    def real_seconds(self, virtual: timedelta | float) -> float:
        """How many real seconds pass while ``virtual`` (seconds or a timedelta) elapses."""
        ...

    async def sleep(self, virtual: timedelta | float) -> None:
        """Sleep for a span of clock time."""
        ...


def _secs(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class WallClock:
    speed: float = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, virtual: timedelta | float) -> float:
        return max(0.0, _secs(virtual))

    async def sleep(self, virtual: timedelta | float) -> None:
        await asyncio.sleep(self.real_seconds(virtual))


@dataclass(frozen=True)
class VirtualClock:
    start: datetime
    anchor: float  # epoch seconds (real) at which virtual time == start
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("virtual clock start must be timezone-aware")
        if self.speed <= 0:
            raise ValueError("clock speed must be positive")

    def now(self) -> datetime:
        elapsed = (time.time() - self.anchor) * self.speed
        return (self.start + timedelta(seconds=elapsed)).astimezone(UTC)

    def real_seconds(self, virtual: timedelta | float) -> float:
        return max(0.0, _secs(virtual) / self.speed)

    async def sleep(self, virtual: timedelta | float) -> None:
        await asyncio.sleep(self.real_seconds(virtual))


def build_clock(*, start: datetime | None, anchor: float | None, speed: float) -> Clock:
    """The wall clock unless a virtual start or a speed other than 1 is configured."""
    if start is None and speed == 1.0:
        return WallClock()
    if start is None:
        start = datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return VirtualClock(
        start=start, anchor=anchor if anchor is not None else time.time(), speed=speed
    )


def utc(dt: datetime) -> datetime:
    """Normalise to aware UTC (naive values are taken as UTC, as MongoDB returns them)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def to_ms(dt: datetime) -> datetime:
    """Truncate to milliseconds, the precision MongoDB stores, so that an instant kept in memory
    compares equal to the same instant read back from the database."""
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)
