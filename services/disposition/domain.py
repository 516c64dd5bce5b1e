"""Disposition rules: provider results → canonical labels. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


def canonical_label(raw: str | None) -> tuple[str | None, bool]:
    """Map a provider label onto a canonical one; returns (label, is_custom)."""
    if raw is None or not raw.strip():
        return None, False
    key = raw.strip().lower()
    key = ALIASES.get(key, key)
    key = ALIASES.get(key.replace("-", "_"), key.replace("-", "_").replace(" ", "_"))
    if key in CANONICAL:
        return key, False
    return key, True


def decide(
    *, status: str, outcome: str | None, turns: int, callback_at: datetime | None
) -> Disposition:
    """The disposition of one ended call.

    - a call that did not connect takes its status (no_answer, busy, failed, voicemail);
    - a completed call with at most one conversation turn counts as no_answer;
    - otherwise the provider's outcome label (canonical, alias or custom), or ``completed``.
    """
    if status != "completed":
        label, _ = canonical_label(status)
        label = label if label in CANONICAL else "failed"
        return Disposition(label=label, connected=False, terminal=False)
    if turns <= 1:
        return Disposition(label="no_answer", connected=False, terminal=False)
    label, custom = canonical_label(outcome)
    if label is None:
        label = "completed"
    if custom:
        # Unknown labels are kept (never dropped) and treated as terminal outcomes of a
        # conversation; workspace-defined custom labels refine this later.
        return Disposition(label=label, connected=True, terminal=True, custom=True)
    if label == "callback":
        return Disposition(label=label, connected=True, terminal=False, callback_at=callback_at)
    return Disposition(label=label, connected=label in CONNECTED, terminal=label in TERMINAL)
