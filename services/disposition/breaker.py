"""The circuit breaker rule: pause a campaign whose recent attempts mostly failed, resume it
by itself after a cool-down, and let a few probe attempts decide whether it stays resumed. Pure.

The states are the usual three. *Closed*: every attempt's outcome is counted. *Open* (the
campaign is paused): outcomes of calls still in flight are not counted, and the campaign
resumes after a cool-down that doubles with each consecutive trip. *Half-open* (resumed, by the
cool-down or by a human): the first ``probe_attempts`` outcomes decide; as many failures as the
threshold asks for pause the campaign again, otherwise the breaker closes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BreakerPolicy:
    window: int
    min_attempts: int
    threshold: float
    probe_attempts: int = 10
    cooldown_seconds: float = 300.0
    max_cooldown_seconds: float = 3600.0


Verdict = Literal["trip", "close", "count"]


def judge(recent_failed: Sequence[bool], policy: BreakerPolicy, *, half_open: bool) -> Verdict:
    """``recent_failed``: one flag per attempt since the window last started, oldest first
    (only the last ``window`` count). ``trip``: pause the campaign; ``close``: the probe
    passed; ``count``: nothing to do yet."""
    recent = list(recent_failed)[-policy.window :]
    needed = min(policy.probe_attempts, policy.window) if half_open else policy.min_attempts
    if len(recent) < needed:
        return "count"
    if sum(recent) / len(recent) >= policy.threshold:
        return "trip"
    return "close" if half_open else "count"


def should_trip(recent_failed: Sequence[bool], policy: BreakerPolicy) -> bool:
    return judge(recent_failed, policy, half_open=False) == "trip"


def cooldown_seconds(policy: BreakerPolicy, streak: int) -> float | None:
    """How long a campaign stays paused after its ``streak``-th consecutive trip before it
    resumes by itself (virtual seconds); None: only a human resumes it."""
    if policy.cooldown_seconds <= 0:
        return None
    ceiling = max(policy.max_cooldown_seconds, policy.cooldown_seconds)
    return float(min(policy.cooldown_seconds * 2 ** min(max(streak - 1, 0), 30), ceiling))


def describe(recent_failed: Sequence[bool], policy: BreakerPolicy) -> str:
    recent = list(recent_failed)[-policy.window :]
    return (
        f"{sum(recent)} of the last {len(recent)} attempts failed "
        f"(threshold {policy.threshold:.0%})"
    )
