from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from disposition.breaker import BreakerPolicy, cooldown_seconds, judge, should_trip
from disposition.classifier import classify
from disposition.domain import CANONICAL, canonical_label, decide

END = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def said(*lines: str, agent: str = "Hi there, this is Maya.") -> list[dict[str, str]]:
    out = [{"role": "agent", "text": agent}]
    for line in lines:
        out += [{"role": "user", "text": line}, {"role": "agent", "text": "I see."}]
    return out


@pytest.mark.parametrize(
    ("line", "label"),
    [
        ("Please don't call me again.", "opt_out"),
        ("Stop calling me, seriously", "opt_out"),
        ("Take me off your list", "opt_out"),
        ("I think you have the wrong number.", "wrong_number"),
        ("There's nobody here by that name", "wrong_number"),
        ("I'm driving, call me back tomorrow", "callback"),
        ("Not a good time", "callback"),
    ],
)
def test_classifier_reads_explicit_phrases(line: str, label: str) -> None:
    found = classify(said("Hello?", line), ended_at=END)
    assert found is not None
    assert found.label == label
    assert found.matched  # says why


def test_classifier_reads_the_contact_only_and_may_find_nothing() -> None:
    assert (
        classify(said("Sure, go on.", agent="Say stop calling me to opt out"), ended_at=END) is None
    )
    assert classify(said("Sounds good, thanks."), ended_at=END) is None
    assert classify([], ended_at=END) is None


@pytest.mark.parametrize(
    ("line", "delta"),
    [
        ("call me back in 2 hours", timedelta(hours=2)),
        ("call back in 45 minutes please", timedelta(minutes=45)),
        ("can you call me back tomorrow", timedelta(days=1)),
        ("try me again next week", timedelta(days=7)),
    ],
)
def test_callback_with_a_time(line: str, delta: timedelta) -> None:
    found = classify(said(line), ended_at=END)
    assert found is not None
    assert found.label == "callback"
    assert found.callback_at == END + delta


def test_decide_uses_the_classifier_only_without_a_label() -> None:
    t = said("Hello", "wrong number, sorry")
    d = decide(
        status="completed", outcome=None, turns=4, callback_at=None, transcript=t, ended_at=END
    )
    assert (d.label, d.terminal, d.connected) == ("wrong_number", False, True)
    assert d.why is not None and "wrong number" in d.why
    labelled = decide(
        status="completed",
        outcome="interested",
        turns=4,
        callback_at=None,
        transcript=t,
        ended_at=END,
    )
    assert labelled.label == "interested"
    cb = decide(
        status="completed",
        outcome=None,
        turns=4,
        callback_at=None,
        transcript=said("call me back in 3 hours"),
        ended_at=END,
    )
    assert (cb.label, cb.terminal, cb.callback_at) == ("callback", False, END + timedelta(hours=3))


def test_short_call_rule_beats_everything() -> None:
    d = decide(
        status="completed",
        outcome="interested",
        turns=1,
        callback_at=None,
        transcript=said("don't call me"),
        ended_at=END,
    )
    assert (d.label, d.why) == ("no_answer", "short_call")


def test_custom_labels_terminal_retryable_and_unknown() -> None:
    labels = {"appointment_booked": "terminal", "needs_manager": "retryable"}
    booked = decide(
        status="completed",
        outcome="Appointment-Booked",
        turns=5,
        callback_at=None,
        custom_labels=labels,
    )
    assert (booked.label, booked.custom, booked.terminal, booked.why) == (
        "appointment_booked",
        True,
        True,
        None,
    )
    later = decide(
        status="completed", outcome="needs_manager", turns=5, callback_at=None, custom_labels=labels
    )
    assert (later.custom, later.terminal) == (True, False)
    unknown = decide(status="completed", outcome="weird", turns=5, callback_at=None)
    assert (unknown.label, unknown.custom, unknown.why) == ("weird", True, "unknown_label")


@pytest.mark.parametrize("alias", ["DND", "dnc", "Do_Not_Call", "unsubscribe"])
def test_opt_out_aliases(alias: str) -> None:
    assert canonical_label(alias) == ("opt_out", False)


def test_every_canonical_label_maps_to_itself() -> None:
    for label in CANONICAL:
        assert canonical_label(label.upper()) == (label, False)


def test_breaker_needs_min_attempts_and_threshold() -> None:
    p = BreakerPolicy(window=10, min_attempts=4, threshold=0.5)
    assert not should_trip([True, True, True], p)
    assert should_trip([True, True, False, False], p)
    assert not should_trip([True, False, False, False], p)
    # only the window counts: old failures fall out of it
    assert not should_trip([True] * 10 + [False] * 10, p)


def test_a_resumed_breaker_is_decided_by_its_probe_attempts() -> None:
    p = BreakerPolicy(window=40, min_attempts=20, threshold=0.5, probe_attempts=4)
    assert judge([True, True, True], p, half_open=True) == "count"  # the probe is not over
    assert judge([True, False, True, False], p, half_open=True) == "trip"
    assert judge([True, False, False, False], p, half_open=True) == "close"
    # closed: the probe size does not apply, and a closed breaker never "closes" again
    assert judge([True] * 4, p, half_open=False) == "count"
    assert judge([False] * 20, p, half_open=False) == "count"


def test_the_cool_down_doubles_with_each_consecutive_trip_up_to_its_ceiling() -> None:
    p = BreakerPolicy(
        window=40, min_attempts=20, threshold=0.5, cooldown_seconds=300, max_cooldown_seconds=1000
    )
    assert [cooldown_seconds(p, n) for n in (1, 2, 3, 4, 500)] == [300, 600, 1000, 1000, 1000]
    off = BreakerPolicy(window=40, min_attempts=20, threshold=0.5, cooldown_seconds=0)
    assert cooldown_seconds(off, 1) is None  # only a human resumes it
