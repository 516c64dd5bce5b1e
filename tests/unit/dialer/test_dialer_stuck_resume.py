"""A call recorded but never confirmed placed is resumed only while its lease lasts: after
that its slot is gone and its window may be closed (the chaos short suite found one dialled
at 00:42 local, fourteen virtual hours after its lease ended)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialer.handlers import stuck_lease_over

NOW = datetime(2026, 3, 4, 8, 42, tzinfo=UTC)


def _doc(renewed_hours_ago: float, ttl_hours: float) -> dict[str, object]:
    renewed = (NOW - timedelta(hours=renewed_hours_ago)).replace(tzinfo=None)  # as stored
    return {"lease_renewed_at": renewed, "lease_ttl_seconds": ttl_hours * 3600}


def test_a_lease_still_running_is_resumed() -> None:
    assert not stuck_lease_over(_doc(renewed_hours_ago=1, ttl_hours=10), now=NOW)


def test_a_lease_run_out_is_never_dialled_again() -> None:
    assert stuck_lease_over(_doc(renewed_hours_ago=14, ttl_hours=10), now=NOW)
    assert stuck_lease_over(_doc(renewed_hours_ago=10, ttl_hours=10), now=NOW)
