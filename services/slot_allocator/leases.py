"""Lease renewal: which renewal the allocator honours. Pure and synchronous.

A dialer renews the lease of every call it is placing or has live; the allocator extends only
the lease it still holds for that very (task, attempt): an expired or released lease is never
brought back (its slot may have gone to another call), and a renewal carrying another attempt
or task (a stale holder) is refused. A renewal only ever moves the deadlines later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from outbound_core.clock import utc

Verdict = Literal["renew", "ended", "not_holder", "unknown"]


@dataclass(frozen=True)
class Deadlines:
    expires_at: datetime  # virtual
    real_deadline: float  # epoch seconds


def renewal_verdict(lease: dict[str, Any] | None, *, task_id: str, attempt: int) -> Verdict:
    """Whether a renewal of ``lease`` for (``task_id``, ``attempt``) may extend it."""
    if lease is None:
        return "unknown"
    if lease.get("task_id") != task_id or lease.get("attempt") != attempt:
        return "not_holder"
    if lease.get("status", "active") != "active":
        return "ended"
    return "renew"


def renewed_deadlines(
    *,
    now: datetime,
    real_now: float,
    ttl: timedelta,
    ttl_real: float,
    current_expires_at: datetime,
    current_real_deadline: float,
) -> Deadlines:
    """A full TTL from now (virtual and real), never earlier than the deadlines it has."""
    return Deadlines(
        expires_at=max(current_expires_at, now + ttl),
        real_deadline=max(current_real_deadline, real_now + ttl_real),
    )


def is_due(lease: dict[str, Any], *, now: datetime, real_now: float) -> bool:
    """A lease expires once both its virtual and its real deadline have passed."""
    return utc(lease["expires_at"]) <= now and float(lease["real_deadline"]) <= real_now
