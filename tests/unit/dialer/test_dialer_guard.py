from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.domain import abort_reason

NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)  # Monday, 11:00 in New York
PHONE = "+12125550123"


def campaign(status: str = "running", **hours: object) -> dict[str, object]:
    return {"status": status, "calling_hours": {"start": "09:00", "end": "20:00", **hours}}


def reason(camp: dict[str, object] | None, *, now: datetime = NOW) -> str | None:
    return abort_reason(
        campaign=camp,
        phone=PHONE,
        contact_timezone=None,
        now=now,
        lease_expires_at=NOW + timedelta(minutes=10),
    )


def test_running_campaign_inside_hours_dials() -> None:
    assert reason(campaign()) is None


def test_unknown_campaign_is_aborted() -> None:
    assert reason(None) == "campaign_unknown"


@pytest.mark.parametrize("status", ["paused", "stopped", "completed", "scheduled"])
def test_campaign_not_running_is_aborted(status: str) -> None:
    assert reason(campaign(status)) == f"campaign_{status}"


def test_expired_lease_is_aborted() -> None:
    assert reason(campaign(), now=NOW + timedelta(minutes=11)) == "lease_expired"


def test_outside_calling_hours_is_aborted() -> None:
    assert reason(campaign(start="13:00", end="14:00")) == "outside_window"
