"""Planner rules: breadth-first phones, passes, retries and final statuses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_planner.domain import (
    MOVE_ON,
    TERMINAL_LABELS,
    Next,
    Position,
    RetryPolicy,
    after_attempt,
    exclude_phones,
    initial_position,
    lead_status,
    skip_suppressed,
)

PROPS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CALL = timedelta(minutes=2)
DEFAULT_RETRY = ["no_answer", "busy", "failed"]
LABELS = sorted(MOVE_ON | TERMINAL_LABELS | {"not_reachable", "custom_label"})


def policy(
    max_attempts: int = 3, minutes: int = 240, retry: list[str] | None = None
) -> RetryPolicy:
    return RetryPolicy.batch(
        max_attempts=max_attempts,
        retry_interval_minutes=minutes,
        retry_outcomes=DEFAULT_RETRY if retry is None else retry,
    )


def is_terminal(label: str) -> bool:
    # what the disposition service says: canonical terminal labels and custom labels
    return label in TERMINAL_LABELS or label == "custom_label"


@dataclass
class Attempt:
    phone_index: int
    pass_number: int
    started: datetime
    ended: datetime
    outcome: str
    decision: Next


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Next:
        return self.attempts[-1].decision

    def phones_tried(self) -> list[int]:
        return [a.phone_index for a in self.attempts]


def simulate(
    pol: RetryPolicy, phone_count: int, outcomes: Iterator[str] | list[str], *, limit: int = 500
) -> Run:
    """Feed outcomes (per attempt, in order) until the task reaches a final status."""
    it = iter(outcomes)
    pos = initial_position(phone_count)
    due = T0
    run = Run()
    for _ in range(limit):
        outcome = next(it)
        ended = due + CALL
        d = after_attempt(
            policy=pol, pos=pos, disposition=outcome, terminal=is_terminal(outcome), ended_at=ended
        )
        run.attempts.append(Attempt(pos.phone_index, pos.pass_number, due, ended, outcome, d))
        if d.status in ("completed", "not_reachable"):
            return run
        assert d.due_at is not None
        pos, due = d.position, d.due_at
    raise AssertionError("the task never reached a final status")


def simulate_scripted(pol: RetryPolicy, scripts: list[list[str]]) -> Run:
    """Each phone answers from its own script (one outcome per attempt on that phone)."""
    counters = [0] * len(scripts)
    pos = initial_position(len(scripts))
    due = T0
    run = Run()
    for _ in range(500):
        i = pos.phone_index
        outcome = scripts[i][counters[i]] if counters[i] < len(scripts[i]) else scripts[i][-1]
        counters[i] += 1
        ended = due + CALL
        d = after_attempt(
            policy=pol, pos=pos, disposition=outcome, terminal=is_terminal(outcome), ended_at=ended
        )
        run.attempts.append(Attempt(i, pos.pass_number, due, ended, outcome, d))
        if d.status in ("completed", "not_reachable"):
            return run
        assert d.due_at is not None
        pos, due = d.position, d.due_at
    raise AssertionError("the task never reached a final status")


# ---------------------------------------------------------------------------------- examples


def test_initial_position() -> None:
    pos = initial_position(3)
    assert pos.phone_index == 0 and pos.pass_number == 1
    assert len(pos.phones) == 3
    assert all(p.attempts == 0 and p.last is None and not p.excluded for p in pos.phones)


def test_skeleton_interested_at_once() -> None:
    run = simulate(policy(), 1, ["interested"])
    assert len(run.attempts) == 1
    assert run.final.status == "completed"
    assert run.final.final_disposition == "interested"


def test_skeleton_no_answer_then_interested() -> None:
    run = simulate(policy(), 1, ["no_answer", "interested"])
    assert len(run.attempts) == 2
    first = run.attempts[0].decision
    assert first.status == "waiting_retry"
    assert first.due_at == run.attempts[0].ended + timedelta(minutes=240)
    assert first.position.pass_number == 2
    assert run.final.status == "completed" and run.final.final_disposition == "interested"


def test_skeleton_never_answers_is_not_reachable_after_exactly_max_attempts() -> None:
    run = simulate(policy(max_attempts=3), 1, ["no_answer"] * 10)
    assert len(run.attempts) == 3
    assert [a.pass_number for a in run.attempts] == [1, 2, 3]
    assert run.final.status == "not_reachable"
    assert run.final.final_disposition == "not_reachable"
    assert run.final.position.phones[0].attempts == 3


def test_breadth_first_over_three_phones() -> None:
    pol = policy(max_attempts=3, minutes=60)
    run = simulate_scripted(
        pol,
        [
            ["no_answer", "no_answer", "interested"],
            ["busy", "busy"],
            ["wrong_number"],
        ],
    )
    tried = [(a.phone_index, a.pass_number) for a in run.attempts]
    assert tried == [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (0, 3)]
    a = run.attempts
    # pass 1: one after another, immediately
    assert a[1].started == a[0].ended and a[2].started == a[1].ended
    assert a[0].decision.status == a[1].decision.status == "pending"
    # pass 2 starts retry_interval after the last attempt of pass 1
    assert a[2].decision.status == "waiting_retry"
    assert a[3].started == a[2].ended + timedelta(minutes=60)
    assert a[4].started == a[3].ended
    assert a[5].started == a[4].ended + timedelta(minutes=60)
    # the wrong number was never tried again
    assert [x.phone_index for x in a].count(2) == 1
    assert run.final.status == "completed" and run.final.final_disposition == "interested"


def test_breadth_first_all_unreachable() -> None:
    run = simulate_scripted(
        policy(max_attempts=2, minutes=30), [["no_answer"], ["busy"], ["wrong_number"]]
    )
    assert [(a.phone_index, a.pass_number) for a in run.attempts] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (0, 2),
        (1, 2),
    ]
    assert run.final.status == "not_reachable"


def test_all_phones_wrong_number() -> None:
    run = simulate_scripted(policy(max_attempts=5), [["wrong_number"]] * 3)
    assert run.phones_tried() == [0, 1, 2]
    assert run.final.status == "completed"
    assert run.final.final_disposition == "wrong_number"
    assert all(p.excluded for p in run.final.position.phones)


def test_voicemail_not_in_retry_outcomes_is_not_retried() -> None:
    run = simulate(policy(max_attempts=3), 1, ["voicemail"] * 5)
    assert len(run.attempts) == 1
    assert run.final.status == "completed"
    assert run.final.final_disposition == "voicemail"


def test_voicemail_in_retry_outcomes_is_retried() -> None:
    run = simulate(policy(max_attempts=3, retry=["voicemail"]), 1, ["voicemail"] * 5)
    assert len(run.attempts) == 3
    assert run.final.status == "not_reachable"


def test_voicemail_moves_on_to_next_phone_but_only_retryable_phones_get_a_second_pass() -> None:
    run = simulate_scripted(policy(max_attempts=3), [["voicemail"], ["no_answer"]])
    assert [(a.phone_index, a.pass_number) for a in run.attempts] == [
        (0, 1),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    assert run.final.status == "not_reachable"


def test_second_pass_skips_non_retryable_phone_in_the_middle() -> None:
    run = simulate_scripted(
        policy(max_attempts=2), [["no_answer"], ["voicemail"], ["busy"], ["wrong_number"]]
    )
    assert [(a.phone_index, a.pass_number) for a in run.attempts] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (0, 2),
        (2, 2),
    ]


def test_callback_is_due_at_callback_time() -> None:
    pol = policy()
    pos = initial_position(2)
    ended = T0 + CALL
    cb = T0 + timedelta(days=1, hours=3)
    d = after_attempt(
        policy=pol, pos=pos, disposition="callback", terminal=False, ended_at=ended, callback_at=cb
    )
    assert d.status == "waiting_retry"
    assert d.callback is True
    assert d.due_at == cb
    # the same phone, as the next pass: a callback uses up an attempt
    assert d.position.phone_index == 0 and d.position.pass_number == 2
    assert d.position.phones[0].last == "callback" and d.position.phones[0].attempts == 1


def test_a_contact_that_keeps_asking_for_a_callback_gets_max_attempts_calls() -> None:
    pol = policy(max_attempts=3)
    pos = initial_position(1)
    ended = T0 + CALL
    calls = 0
    while True:
        calls += 1
        d = after_attempt(
            policy=pol,
            pos=pos,
            disposition="callback",
            terminal=False,
            ended_at=ended,
            callback_at=ended + timedelta(hours=1),
        )
        if d.status != "waiting_retry":
            break
        pos, ended = d.position, d.due_at + CALL  # type: ignore[operator]
    assert calls == 3
    assert (d.status, d.final_disposition) == ("completed", "callback")


@pytest.mark.parametrize("cb", [None, T0 - timedelta(hours=1), T0 + CALL])
def test_callback_without_a_future_time_waits_retry_interval(cb: datetime | None) -> None:
    pol = policy(minutes=45)
    ended = T0 + CALL
    d = after_attempt(
        policy=pol,
        pos=initial_position(1),
        disposition="callback",
        terminal=False,
        ended_at=ended,
        callback_at=cb,
    )
    assert d.callback and d.status == "waiting_retry"
    assert d.due_at == ended + timedelta(minutes=45)


@pytest.mark.parametrize("label", sorted(TERMINAL_LABELS))
def test_terminal_labels_are_never_retried(label: str) -> None:
    pol = policy(max_attempts=5, retry=[*DEFAULT_RETRY, label])
    for count in (1, 3):
        pos = initial_position(count)
        d = after_attempt(policy=pol, pos=pos, disposition=label, terminal=True, ended_at=T0)
        assert d.status == "completed"
        assert d.final_disposition == label
        assert d.due_at is None


def test_unknown_non_moving_label_completes() -> None:
    d = after_attempt(
        policy=policy(),
        pos=initial_position(3),
        disposition="custom_label",
        terminal=False,
        ended_at=T0,
    )
    assert d.status == "completed" and d.final_disposition == "custom_label"


def test_lead_status() -> None:
    assert lead_status("pending", 0) == "pending"
    assert lead_status("pending", 2) == "waiting_retry"
    assert lead_status("queued", 2) == "queued"
    assert lead_status("completed", 1) == "completed"


def test_retry_policy_batch() -> None:
    p = RetryPolicy.batch(max_attempts=2, retry_interval_minutes=15, retry_outcomes=["busy"])
    assert p == RetryPolicy(2, timedelta(minutes=15), frozenset({"busy"}))


# -------------------------------------------------------------------------------- properties


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RetryPolicy, int, list[str]]:
    phones = draw(st.integers(1, 10))
    max_attempts = draw(st.integers(1, 5))
    retry = draw(st.lists(st.sampled_from(LABELS), unique=True, max_size=6))
    minutes = draw(st.integers(1, 24 * 60))
    # outcomes mostly non-terminal so that runs are long
    common = st.sampled_from(["no_answer", "busy", "failed", "voicemail", "silence"])
    outcome = st.one_of(common, common, common, st.sampled_from(LABELS))
    outcomes = draw(
        st.lists(outcome, min_size=phones * max_attempts, max_size=phones * max_attempts)
    )
    pol = RetryPolicy.batch(
        max_attempts=max_attempts, retry_interval_minutes=minutes, retry_outcomes=retry
    )
    return pol, phones, outcomes


def _check_run(pol: RetryPolicy, phones: int, run: Run) -> None:
    counts = [run.phones_tried().count(i) for i in range(phones)]
    assert max(counts) <= pol.max_attempts
    assert len(run.attempts) <= phones * pol.max_attempts
    assert all(1 <= a.pass_number <= pol.max_attempts for a in run.attempts)
    final_phones = run.final.position.phones
    assert [p.attempts for p in final_phones] == counts
    excluded: set[int] = set()
    for prev, cur in zip(run.attempts, run.attempts[1:], strict=False):
        d = prev.decision
        assert cur.phone_index not in excluded, "a wrong number was dialled again"
        if cur.pass_number == prev.pass_number:
            assert cur.phone_index > prev.phone_index, "phones go in order within a pass"
            assert d.status == "pending" and cur.started == prev.ended
        else:
            assert cur.pass_number == prev.pass_number + 1
            assert d.status == "waiting_retry" and not d.callback
            assert cur.started >= prev.ended + pol.retry_interval
            # a new pass only retries phones whose last outcome asks for it
            assert d.position.phones[cur.phone_index].last in pol.retry_outcomes
        if prev.outcome == "wrong_number":
            excluded.add(prev.phone_index)
    # pass 1 tries every phone in order until something final happens
    p1 = [a.phone_index for a in run.attempts if a.pass_number == 1]
    assert p1 == list(range(len(p1)))
    last = run.attempts[-1]
    final = run.final
    assert final.status in ("completed", "not_reachable")
    if is_terminal(last.outcome):
        assert final.status == "completed" and final.final_disposition == last.outcome
    if final.status == "not_reachable":
        assert last.pass_number == pol.max_attempts
        assert any(not p.excluded and p.last in pol.retry_outcomes for p in final_phones)
    # never give up early: if passes remain, nothing retryable is left
    stop_early = not is_terminal(last.outcome) and (
        last.outcome in MOVE_ON or last.outcome in pol.retry_outcomes
    )
    if stop_early and last.pass_number < pol.max_attempts:
        assert not any(not p.excluded and p.last in pol.retry_outcomes for p in final_phones)
    if all(p.excluded for p in final_phones):
        assert final.final_disposition == "wrong_number"


@given(scenarios())
@PROPS
def test_simulation_respects_the_retry_policy(scenario: tuple[RetryPolicy, int, list[str]]) -> None:
    pol, phones, outcomes = scenario
    run = simulate(pol, phones, outcomes)
    _check_run(pol, phones, run)


@given(
    st.integers(1, 10),
    st.integers(1, 5),
    st.integers(1, 600),
    st.lists(st.lists(st.sampled_from(LABELS), min_size=1, max_size=5), min_size=10, max_size=10),
    st.lists(st.sampled_from(LABELS), unique=True, max_size=6),
)
@PROPS
def test_scripted_phones_respect_the_retry_policy(
    phones: int, max_attempts: int, minutes: int, scripts: list[list[str]], retry: list[str]
) -> None:
    pol = RetryPolicy.batch(
        max_attempts=max_attempts, retry_interval_minutes=minutes, retry_outcomes=retry
    )
    run = simulate_scripted(pol, scripts[:phones])
    _check_run(pol, phones, run)


@given(st.integers(1, 10), st.integers(1, 5))
@PROPS
def test_never_answering_uses_every_attempt(phones: int, max_attempts: int) -> None:
    run = simulate(policy(max_attempts=max_attempts), phones, ["no_answer"] * 100)
    assert len(run.attempts) == phones * max_attempts
    assert run.final.status == "not_reachable"
    assert [a.phone_index for a in run.attempts] == list(range(phones)) * max_attempts


def test_position_is_immutable() -> None:
    pos = initial_position(2)
    after_attempt(policy=policy(), pos=pos, disposition="no_answer", terminal=False, ended_at=T0)
    assert pos == initial_position(2)
    assert isinstance(pos, Position)


# A suppressed phone is skipped; the contact goes on with its other phones -------------------


def test_a_suppressed_secondary_phone_moves_on_to_the_next_phone() -> None:
    pos = Position(phone_index=1, pass_number=1, phones=initial_position(3).phones)
    nxt = skip_suppressed(policy=policy(), pos=pos, now=T0)
    assert (nxt.status, nxt.position.phone_index, nxt.due_at) == ("pending", 2, T0)
    assert nxt.position.phones[1].suppressed and nxt.position.phones[1].excluded


def test_a_suppressed_last_phone_ends_the_pass_and_the_next_pass_skips_it() -> None:
    first = after_attempt(
        policy=policy(max_attempts=2),
        pos=initial_position(2),
        disposition="no_answer",
        terminal=False,
        ended_at=T0,
    )
    assert first.position.phone_index == 1
    nxt = skip_suppressed(policy=policy(max_attempts=2), pos=first.position, now=T0)
    assert (nxt.status, nxt.position.phone_index, nxt.position.pass_number) == (
        "waiting_retry",
        0,
        2,
    )
    again = after_attempt(
        policy=policy(max_attempts=2),
        pos=nxt.position,
        disposition="no_answer",
        terminal=False,
        ended_at=T0 + timedelta(hours=4),
    )
    assert again.status == "not_reachable"  # phone 1 never dialled again


def test_every_phone_suppressed_archives_the_task_as_opted_out() -> None:
    pos = exclude_phones(initial_position(3), [1, 2])
    nxt = skip_suppressed(policy=policy(), pos=pos, now=T0)
    assert (nxt.status, nxt.final_disposition) == ("archived", "opted_out")


def test_a_phone_suppressed_ahead_of_its_turn_is_skipped_by_the_rotation() -> None:
    pos = exclude_phones(initial_position(10), [1, 2])
    nxt = after_attempt(
        policy=policy(), pos=pos, disposition="no_answer", terminal=False, ended_at=T0
    )
    assert nxt.position.phone_index == 3
