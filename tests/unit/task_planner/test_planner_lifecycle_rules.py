"""Pure lifecycle rules: due times after a settings change, a task's state after a restart,
and the API's validation of the new calling-hours fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from campaign_api.domain import TransitionError, apply_action
from campaign_api.schemas import CallingHoursIn, CampaignPatch
from task_planner.domain import replanned_due, restart_fields

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_replanned_due() -> None:
    hour = timedelta(hours=1)
    now = T0 + 2 * hour
    common = {"current_due": T0 + 3 * DAY, "retry_interval": hour, "now": now}
    # a new pass waits the new interval after the last attempt ended
    assert (
        replanned_due(last_ended=T0, last_pass=1, pass_number=2, callback=False, **common)
        == T0 + hour
    )
    # the next phone of the same pass is due as soon as the last attempt ended
    assert replanned_due(last_ended=T0, last_pass=2, pass_number=2, callback=False, **common) == T0
    # a callback keeps its requested time; a task never tried is due now (the window is
    # applied when it is considered)
    assert (
        replanned_due(last_ended=T0, last_pass=1, pass_number=2, callback=True, **common)
        == T0 + 3 * DAY
    )
    assert (
        replanned_due(last_ended=None, last_pass=None, pass_number=1, callback=False, **common)
        == now
    )


def test_restart_fields_start_over_without_touching_the_attempt_counter() -> None:
    f = restart_fields(3, T0)
    assert (f["status"], f["due_at"], f["phone_index"], f["pass_number"]) == ("pending", T0, 0, 1)
    assert f["history"] == [] and f["last_disposition"] is None
    assert len(f["phone_states"]) == 3  # type: ignore[arg-type]
    assert "attempt" not in f  # it keys the dialer's one call per attempt: never reused


def test_restart_transitions() -> None:
    assert apply_action("completed", "restart") == "running"
    assert apply_action("paused", "restart") == "running"
    assert apply_action("running", "restart") == "running"
    for status in ("stopped", "scheduled"):
        with pytest.raises(TransitionError):
            apply_action(status, "restart")


def test_weekdays_and_blackouts_are_validated_and_normalised() -> None:
    h = CallingHoursIn(weekdays=["Mon", "fri", 2, "3"], blackout_dates=["2026-12-25", "2026-12-25"])
    assert h.weekdays == [0, 2, 3, 4]
    assert h.blackout_dates == ["2026-12-25"]
    for bad in (
        {"weekdays": ["someday"]},
        {"weekdays": [7]},
        {"weekdays": []},
        {"blackout_dates": ["25/12/2026"]},
    ):
        with pytest.raises(ValidationError):
            CallingHoursIn(**bad)  # type: ignore[arg-type]


def test_patch_body_separates_settings_from_actions() -> None:
    assert CampaignPatch(action="pause").settings() == {}
    p = CampaignPatch.model_validate({"max_attempts": 2, "max_slots": None})
    assert p.settings() == {"max_attempts": 2, "max_slots": None}
    with pytest.raises(ValidationError):
        CampaignPatch.model_validate({"max_attempts": 9})
