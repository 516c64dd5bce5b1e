"""Disposition rules: provider results → canonical labels. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from disposition.classifier import classify

CustomKind = Literal["terminal", "retryable"]

CANONICAL = (
    "interested",
    "not_interested",
    "callback",
    "voicemail",
    "wrong_number",
    "no_answer",
    "busy",
    "failed",
    "opt_out",
    "escalated",
    "completed",
    "not_reachable",
)
TERMINAL = frozenset({"interested", "not_interested", "opt_out", "escalated", "completed"})
CONNECTED = frozenset(
    {
        "interested",
        "not_interested",
        "callback",
        "opt_out",
        "escalated",
        "completed",
        "wrong_number",
    }
)

ALIASES: dict[str, str] = {
    "dnd": "opt_out",
    "dnc": "opt_out",
    "do_not_call": "opt_out",
    "optout": "opt_out",
    "opted_out": "opt_out",
    "unsubscribe": "opt_out",
    "no-answer": "no_answer",
    "noanswer": "no_answer",
    "no answer": "no_answer",
    "unanswered": "no_answer",
    "not_answered": "no_answer",
    "call_back": "callback",
    "call-back": "callback",
    "call back": "callback",
    "transferred": "escalated",
    "transfer": "escalated",
    "escalate": "escalated",
    "wrong number": "wrong_number",
    "wrong-number": "wrong_number",
    "not interested": "not_interested",
    "not-interested": "not_interested",
    "machine": "voicemail",
    "answering_machine": "voicemail",
    "error": "failed",
    "rejected": "failed",
}


@dataclass(frozen=True)
class Disposition:
    label: str
    connected: bool
    terminal: bool
    custom: bool = False
    callback_at: datetime | None = None
    why: str | None = None  # how the label was reached when it was not the provider's own


def canonical_label(raw: str | None) -> tuple[str | None, bool]:
    """Map a provider label onto a canonical one; returns (label, is_custom)."""
    if raw is None or not raw.strip():
        return None, False
    text = raw.strip().lower()
    # Spaces, hyphens and underscores are one separator: "Do Not Call" is do_not_call.
    key = re.sub(r"[\s_-]+", "_", text)
    key = ALIASES.get(text, ALIASES.get(key, key))
    if key in CANONICAL:
        return key, False
    return key, True


def decide(
    *,
    status: str,
    outcome: str | None,
    turns: int,
    callback_at: datetime | None,
    transcript: Sequence[Mapping[str, str]] = (),
    ended_at: datetime | None = None,
    custom_labels: Mapping[str, CustomKind] | None = None,
) -> Disposition:
    """The disposition of one ended call.

    - a call that did not connect takes its status (no_answer, busy, failed, voicemail);
    - a completed call with at most one conversation turn counts as no_answer;
    - otherwise the provider's outcome label (canonical, alias or custom);
    - with no label, the transcript classifier (opt-out, wrong number, callback phrases);
    - else ``completed``.

    Custom labels the workspace defined are terminal or retryable as defined; an unknown label
    is kept as a custom, terminal label (and reported by the caller), never dropped.
    """
    if status != "completed":
        label, _ = canonical_label(status)
        label = label if label in CANONICAL else "failed"
        return Disposition(label=label, connected=False, terminal=False)
    if turns <= 1:
        return Disposition(label="no_answer", connected=False, terminal=False, why="short_call")
    label, custom = canonical_label(outcome)
    why = None
    if label is None and transcript and ended_at is not None:
        found = classify(transcript, ended_at=ended_at)
        if found is not None:
            label, custom, why = found.label, False, f"transcript: {found.matched!r}"
            callback_at = callback_at or found.callback_at
    if label is None:
        label = "completed"
    if custom:
        kind = (custom_labels or {}).get(label)
        return Disposition(
            label=label,
            connected=True,
            terminal=kind != "retryable",
            custom=True,
            why=None if kind else "unknown_label",
        )
    if label == "callback":
        return Disposition(
            label=label, connected=True, terminal=False, callback_at=callback_at, why=why
        )
    return Disposition(
        label=label, connected=label in CONNECTED, terminal=label in TERMINAL, why=why
    )
