"""The circuit breaker rule: pause a campaign whose recent attempts mostly failed. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BreakerPolicy:
    window: int
    min_attempts: int
    threshold: float


def should_trip(recent_failed: Sequence[bool], policy: BreakerPolicy) -> bool:
    """``recent_failed``: one flag per attempt, oldest first (only the last ``window`` count)."""
    recent = list(recent_failed)[-policy.window :]
    if len(recent) < policy.min_attempts:
        return False
    return sum(recent) / len(recent) >= policy.threshold


def describe(recent_failed: Sequence[bool], policy: BreakerPolicy) -> str:
    recent = list(recent_failed)[-policy.window :]
    return (
        f"{sum(recent)} of the last {len(recent)} attempts failed "
        f"(threshold {policy.threshold:.0%})"
    )
