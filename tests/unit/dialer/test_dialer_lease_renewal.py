"""When the dialer renews a call's lease: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer.domain import lease_ttl_seconds, renewal_due

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
TTL = 3900.0  # seconds: max call 3600 + grace 300


def _due(**kw: Any) -> bool:
    args: dict[str, Any] = {
        "status": "active",
        "placing": False,
        "since": T0,
        "renewed_at": T0,
        "ttl_seconds": TTL,
        "now": T0 + timedelta(seconds=1300),
        "max_call_seconds": 1800.0,
        "grace_seconds": 300.0,
        "fraction": 1 / 3,
    }
    args.update(kw)
    return renewal_due(**args)


def test_a_live_or_placing_call_is_renewed_every_fraction_of_the_ttl() -> None:
    assert _due()
    assert _due(status="dialing")
    assert not _due(now=T0 + timedelta(seconds=1299))  # not yet a third of the TTL
    assert _due(renewed_at=T0 + timedelta(seconds=100), now=T0 + timedelta(seconds=1400))


def test_an_ended_call_is_never_renewed() -> None:
    for status in ("ended", "aborted", "unknown"):
        assert not _due(status=status)


def test_a_call_longer_than_any_call_may_be_stops_renewing_unless_still_being_placed() -> None:
    # dialled 2101 s ago, max 1800 + grace 300: its end will never come, let the lease go
    late = T0 + timedelta(seconds=2101)
    assert not _due(now=late, renewed_at=late - timedelta(seconds=2000))
    assert _due(now=T0 + timedelta(seconds=2100), renewed_at=T0 + timedelta(seconds=700))
    # still waiting on a slow provider in this very process: renewed however long it takes
    assert _due(now=late, renewed_at=late - timedelta(seconds=2000), placing=True)


def test_a_lease_run_out_is_never_renewed() -> None:
    # a dialer back after a stop longer than the lease: the allocator has let it go
    assert not _due(now=T0 + timedelta(seconds=TTL))
    assert not _due(now=T0 + timedelta(seconds=TTL + 1), placing=True)
    assert _due(now=T0 + timedelta(seconds=TTL - 1), placing=True)


def test_the_ttl_is_the_virtual_one_or_the_real_floor_in_a_fast_clock() -> None:
    expires = T0 + timedelta(seconds=TTL)
    assert lease_ttl_seconds(
        granted_at=T0, lease_expires_at=expires, min_real_seconds=30, speed=1.0
    ) == pytest.approx(TTL)
    # at 3600x the allocator holds a lease at least 30 real seconds: 30 virtual hours
    assert lease_ttl_seconds(
        granted_at=T0, lease_expires_at=expires, min_real_seconds=30, speed=3600.0
    ) == pytest.approx(108_000.0)
