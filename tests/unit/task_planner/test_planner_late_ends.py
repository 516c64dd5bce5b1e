"""Late call ends and attempt reports: pure rules (``task_planner.late_ends``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from task_planner.domain import PhoneState, Position, RetryPolicy
from task_planner.late_ends import attempt_open, ends_contact, fold_late_end

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy.batch(
    max_attempts=3, retry_interval_minutes=30, retry_outcomes=["no_answer", "busy", "failed"]
)


def _pos(*attempts: int, last: str | None = "failed", index: int = 0) -> Position:
    return Position(
        phone_index=index,
        pass_number=max(attempts or (1,)),
        phones=tuple(PhoneState(last=last if a else None, attempts=a) for a in attempts),
    )


def _fold(history: list[dict[str, Any]], pos: Position, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "attempt": 2,
        "call_id": "call_2",
        "phone_index": 0,
        "disposition": "no_answer",
        "terminal": False,
        "ended_at": T0,
        "policy": POLICY,
    }
    args.update(kw)
    return fold_late_end(history=history, pos=pos, **args)


def test_whichever_report_comes_first_decides_the_attempt_and_later_ones_change_nothing() -> None:
    # queued/dialling attempt 4: its first report (abort, expiry or end) applies
    assert attempt_open(status="dialing", task_attempt=4, attempt=4)
    assert attempt_open(status="queued", task_attempt=4, attempt=4)
    # aborted first (back to pending, same attempt number): the lease expiry is stale
    assert not attempt_open(status="pending", task_attempt=4, attempt=4)
    # expired first (counted, waiting for the retry): the dialer's abort is stale
    assert not attempt_open(status="waiting_retry", task_attempt=4, attempt=4)
    # the next attempt is already queued: nothing of attempt 4 applies any more
    assert not attempt_open(status="queued", task_attempt=5, attempt=4)


def test_a_late_end_replaces_the_failure_its_lease_expiry_recorded_without_counting_twice() -> None:
    history = [
        {"attempt": 1, "call_id": "call_1", "phone_index": 0, "disposition": "no_answer"},
        {"attempt": 2, "call_id": None, "phone_index": 0, "disposition": "failed"},
    ]
    fold = _fold(history, _pos(2), disposition="busy")
    assert fold.kind == "replace"
    assert len(fold.history) == 2
    assert fold.history[1] == {
        "attempt": 2,
        "call_id": "call_2",
        "phone_index": 0,
        "disposition": "busy",
        "late": True,
        "expired_as": "failed",
    }
    assert fold.position.phones[0].attempts == 2  # counted once, by the expiry
    assert fold.position.phones[0].last == "busy"
    assert not fold.finishes
    assert history[1]["disposition"] == "failed"  # the input is not changed


def test_a_late_end_of_an_attempt_handed_back_uncounted_is_counted_once() -> None:
    history = [{"attempt": 1, "call_id": "call_1", "phone_index": 0, "disposition": "failed"}]
    fold = _fold(history, _pos(1), attempt=3, call_id="call_3")
    assert fold.kind == "append"
    assert [h["attempt"] for h in fold.history] == [1, 3]
    assert fold.history[1]["late"] is True
    assert fold.position.phones[0].attempts == 2
    # delivered again: recognised, nothing changes
    again = _fold(fold.history, fold.position, attempt=3, call_id="call_3")
    assert again.kind == "duplicate"
    assert again.history == fold.history
    assert again.position == fold.position


def test_a_late_end_on_another_phone_counts_on_that_phone_and_keeps_newer_outcomes() -> None:
    history = [
        {"attempt": 2, "call_id": None, "phone_index": 1, "disposition": "failed"},
        {"attempt": 3, "call_id": "call_3", "phone_index": 1, "disposition": "busy"},
    ]
    pos = Position(
        phone_index=0,
        pass_number=2,
        phones=(PhoneState(last="no_answer", attempts=1), PhoneState(last="busy", attempts=2)),
    )
    fold = _fold(history, pos, attempt=2, phone_index=1, disposition="voicemail")
    assert fold.kind == "replace"
    assert fold.position.phones[1].last == "busy"  # attempt 3 on that phone came later
    assert fold.position.phones[1].attempts == 2
    assert fold.position.phones[0] == pos.phones[0]


def test_which_late_outcomes_end_the_contact() -> None:
    assert ends_contact(disposition="interested", terminal=True, policy=POLICY)
    assert ends_contact(disposition="not_interested", terminal=False, policy=POLICY)
    assert not ends_contact(disposition="no_answer", terminal=False, policy=POLICY)
    assert not ends_contact(disposition="callback", terminal=False, policy=POLICY)
    fold = _fold([], _pos(1), disposition="interested", terminal=True, ended_at=T0)
    assert fold.finishes
    assert _fold([], _pos(1), disposition="wrong_number").position.phones[0].excluded
    assert fold.history[0]["ended_at"] == T0
