"""Disposition rules: provider results → canonical labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disposition.domain import ALIASES, CANONICAL, CONNECTED, TERMINAL, canonical_label, decide

PROPS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
CB = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def _cases(s: str) -> list[str]:
    return [s, s.upper(), s.title(), f"  {s}  ", s.swapcase()]


@pytest.mark.parametrize("label", CANONICAL)
def test_canonical_labels_map_to_themselves(label: str) -> None:
    for variant in _cases(label):
        assert canonical_label(variant) == (label, False)


@pytest.mark.parametrize(("alias", "label"), sorted(ALIASES.items()))
def test_aliases_any_case(alias: str, label: str) -> None:
    for variant in _cases(alias):
        assert canonical_label(variant) == (label, False), variant


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("DND", "opt_out"),
        ("dnc", "opt_out"),
        ("No Answer", "no_answer"),
        ("transferred", "escalated"),
        ("TRANSFERRED", "escalated"),
        ("Call Back", "callback"),
        ("Not-Interested", "not_interested"),
        ("WRONG NUMBER", "wrong_number"),
        ("wrong-number", "wrong_number"),
        ("Opt-Out", "opt_out"),
        ("Do-Not-Call", "opt_out"),
        ("answering-machine", "voicemail"),
        ("No_Answer", "no_answer"),
        ("Escalate", "escalated"),
    ],
)
def test_alias_examples(raw: str, label: str) -> None:
    assert canonical_label(raw) == (label, False)


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("Do Not Call", "opt_out"),
        ("answering machine", "voicemail"),
        ("opted out", "opt_out"),
        ("not answered", "no_answer"),
    ],
)
def test_space_separated_aliases(raw: str, label: str) -> None:
    assert canonical_label(raw) == (label, False)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_empty_label(raw: str | None) -> None:
    assert canonical_label(raw) == (None, False)


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("Appointment Booked", "appointment_booked"),
        ("sale-made", "sale_made"),
        ("VIP", "vip"),
        ("needs info", "needs_info"),
    ],
)
def test_unknown_labels_are_kept_as_custom(raw: str, label: str) -> None:
    assert canonical_label(raw) == (label, True)
    d = decide(status="completed", outcome=raw, turns=5, callback_at=None)
    assert d.label == label and d.custom and d.connected and d.terminal


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip()))
@PROPS
def test_canonical_label_never_drops_a_label(raw: str) -> None:
    label, custom = canonical_label(raw)
    assert label
    assert custom == (label not in CANONICAL)
    assert canonical_label(label) == (label, custom)  # idempotent


@pytest.mark.parametrize("status", ["no_answer", "busy", "failed", "voicemail"])
def test_non_completed_statuses_map_to_themselves(status: str) -> None:
    d = decide(status=status, outcome="interested", turns=10, callback_at=CB)
    assert d.label == status
    assert not d.connected and not d.terminal and not d.custom
    assert d.callback_at is None


def test_unexpected_status_is_failed() -> None:
    d = decide(status="exploded", outcome=None, turns=0, callback_at=None)
    assert d.label == "failed" and not d.connected and not d.terminal


@pytest.mark.parametrize("turns", [-1, 0, 1])
def test_completed_with_at_most_one_turn_is_no_answer(turns: int) -> None:
    d = decide(status="completed", outcome="interested", turns=turns, callback_at=None)
    assert d.label == "no_answer" and not d.connected and not d.terminal


@pytest.mark.parametrize("label", CANONICAL)
def test_completed_conversation_takes_the_outcome(label: str) -> None:
    d = decide(status="completed", outcome=label.upper(), turns=2, callback_at=CB)
    assert d.label == label and not d.custom
    assert d.terminal == (label in TERMINAL)
    assert d.connected == (label in CONNECTED)
    if label == "callback":
        assert d.callback_at == CB and d.connected and not d.terminal
    else:
        assert d.callback_at is None


def test_completed_without_outcome_is_completed() -> None:
    d = decide(status="completed", outcome=None, turns=4, callback_at=None)
    assert d.label == "completed" and d.connected and d.terminal


def test_completed_alias_outcome() -> None:
    d = decide(status="completed", outcome="DNC", turns=3, callback_at=None)
    assert (d.label, d.terminal, d.connected, d.custom) == ("opt_out", True, True, False)
    d = decide(status="completed", outcome="transferred", turns=3, callback_at=None)
    assert d.label == "escalated" and d.terminal


def test_tables_are_consistent() -> None:
    assert set(ALIASES.values()) <= set(CANONICAL)
    assert set(TERMINAL) <= set(CANONICAL) and set(CONNECTED) <= set(CANONICAL)
    assert all(k == k.lower() for k in ALIASES)
