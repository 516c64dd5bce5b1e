from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.providers.sim_script import KNOWN_OUTCOMES, pick_outcome, plan_call
from dialer.settings import DEFAULT_SIM_WEIGHTS

PHONE = "+14155550123"


def pick(script: list[str], attempt: int, phone: str = PHONE) -> str:
    return pick_outcome(script=script, attempt=attempt, phone=phone, weights=DEFAULT_SIM_WEIGHTS)


def test_script_gives_one_outcome_per_attempt() -> None:
    script = ["no_answer", "busy", "interested"]
    assert [pick(script, a) for a in (1, 2, 3)] == script


def test_last_scripted_outcome_repeats() -> None:
    assert [pick(["no_answer", "voicemail"], a) for a in (2, 3, 5)] == ["voicemail"] * 3


def test_draw_is_deterministic_per_phone_and_attempt() -> None:
    first = [pick([], a) for a in range(1, 6)]
    assert first == [pick([], a) for a in range(1, 6)]
    assert all(o in DEFAULT_SIM_WEIGHTS for o in first)


def test_draw_follows_the_weights() -> None:
    only = {"busy": 1.0, "interested": 0.0}
    outcomes = {
        pick_outcome(script=[], attempt=1, phone=f"+1415555{i:04d}", weights=only)
        for i in range(50)
    }
    assert outcomes == {"busy"}


def test_draw_varies_across_phones() -> None:
    outcomes = {pick([], 1, phone=f"+1415555{i:04d}") for i in range(200)}
    assert len(outcomes) >= 6


def plan(outcome: str, attempt: int = 1):  # type: ignore[no-untyped-def]
    return plan_call(
        outcome=outcome,
        phone=PHONE,
        attempt=attempt,
        greeting="Hi there",
        ring_range=(20.0, 30.0),
        cost_per_minute=0.1,
    )


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("no_answer", "no_answer"),
        ("busy", "busy"),
        ("failed", "failed"),
        ("timeout", "failed"),
        ("error_5xx", "failed"),
    ],
)
def test_not_connected_outcomes(outcome: str, status: str) -> None:
    p = plan(outcome)
    assert (p.status, p.label, p.turns, p.duration_seconds, p.cost) == (status, None, 0, 0.0, 0.0)
    assert 20.0 <= p.ring_seconds <= 30.0
    placed = datetime(2025, 1, 1, tzinfo=UTC)
    assert p.ends_at(placed) == placed + timedelta(seconds=p.ring_seconds)


def test_voicemail() -> None:
    p = plan("voicemail")
    assert (p.status, p.label, p.turns) == ("voicemail", None, 0)


def test_short_call_is_completed_with_one_turn_and_no_label() -> None:
    p = plan("short")
    assert (p.status, p.label, p.turns) == ("completed", None, 1)


@pytest.mark.parametrize(
    "outcome",
    [
        "interested",
        "not_interested",
        "callback",
        "wrong_number",
        "opt_out",
        "escalated",
        "completed",
    ],
)
def test_conversation_outcomes(outcome: str) -> None:
    p = plan(outcome)
    assert (p.status, p.label) == ("completed", outcome)
    assert 4 <= p.turns <= 10
    assert 30.0 <= p.duration_seconds <= 240.0
    assert p.cost == pytest.approx(p.duration_seconds / 60 * 0.1, abs=1e-4)
    assert p.transcript[0] == {"role": "agent", "text": "Hi there"}
    assert all(set(line) == {"role", "text"} for line in p.transcript)


def test_callback_is_requested_a_day_after_the_call_ends() -> None:
    ended = datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert plan("callback").callback_at(ended) == ended + timedelta(days=1)
    assert plan("interested").callback_at(ended) is None


def test_hang_never_ends() -> None:
    p = plan("hang")
    assert p.status is None
    assert p.ends_at(datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_unknown_outcome_is_a_custom_conversation_label() -> None:
    p = plan("appointment_booked")
    assert (p.status, p.label) == ("completed", "appointment_booked")


def test_every_known_outcome_has_a_plan_and_is_deterministic() -> None:
    for outcome in KNOWN_OUTCOMES:
        assert plan(outcome) == plan(outcome)
    assert plan("interested", 1) != plan("interested", 2)
