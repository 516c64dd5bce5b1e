"""What the simulated phone network does with one call. Pure and deterministic: the same
(phone, attempt) always gives the same outcome, length and transcript."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

CONVERSATION_OUTCOMES = frozenset(
    {
        "interested",
        "not_interested",
        "callback",
        "wrong_number",
        "opt_out",
        "escalated",
        "completed",
    }
)
NOT_CONNECTED = {
    "no_answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "timeout": "failed",
    "error_5xx": "failed",
}
HANG = "hang"  # the call never ends: no CallEnded, the lease expires instead
KNOWN_OUTCOMES = frozenset({*CONVERSATION_OUTCOMES, *NOT_CONNECTED, "voicemail", "short", HANG})

_CLOSING_LINES = {
    "interested": "Yes, that sounds good, tell me more.",
    "not_interested": "No thanks, I'm not interested.",
    "callback": "I'm busy right now, call me back tomorrow.",
    "wrong_number": "I think you have the wrong number.",
    "opt_out": "Please don't call me again.",
    "escalated": "Can I talk to a real person?",
    "completed": "Okay, thanks, bye.",
}


@dataclass(frozen=True)
class SimPlan:
    outcome: str
    status: str | None  # None: the call hangs and never ends
    label: str | None
    turns: int
    ring_seconds: float
    duration_seconds: float
    transcript: list[dict[str, str]] = field(default_factory=list)
    cost: float = 0.0

    def ends_at(self, placed_at: datetime) -> datetime | None:
        if self.status is None:
            return None
        return placed_at + timedelta(seconds=self.ring_seconds + self.duration_seconds)

    def callback_at(self, ended_at: datetime) -> datetime | None:
        return ended_at + timedelta(days=1) if self.outcome == "callback" else None


def _rng(phone: str, attempt: int, purpose: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across processes and runs.
    return random.Random(f"{phone}|{attempt}|{purpose}")  # noqa: S311 - simulation, not crypto


def pick_outcome(
    *, script: Sequence[str], attempt: int, phone: str, weights: Mapping[str, float]
) -> str:
    """The scripted outcome for this attempt (the last one repeats), else a seeded draw."""
    if script:
        return script[min(max(attempt, 1), len(script)) - 1].strip().lower()
    names = sorted(weights)
    return _rng(phone, attempt, "outcome").choices(names, weights=[weights[n] for n in names])[0]


def plan_call(
    *,
    outcome: str,
    phone: str,
    attempt: int,
    greeting: str,
    ring_range: tuple[float, float] = (20.0, 30.0),
    cost_per_minute: float = 0.0,
) -> SimPlan:
    """Status, label, turns, length, transcript and cost of one simulated call.

    An outcome the simulator does not know is taken as a custom label the agent assigned at the
    end of a conversation (so custom dispositions can be scripted)."""
    rng = _rng(phone, attempt, "shape")
    lo, hi = sorted(ring_range)
    ring = round(rng.uniform(lo, hi), 1)
    if outcome == HANG:
        return SimPlan(outcome, None, None, 0, ring, 0.0)
    if outcome in NOT_CONNECTED:
        return SimPlan(outcome, NOT_CONNECTED[outcome], None, 0, ring, 0.0)
    if outcome == "voicemail":
        duration = round(rng.uniform(8, 30), 1)
        transcript = [{"role": "system", "text": "voicemail greeting detected"}]
        return SimPlan(
            outcome,
            "voicemail",
            None,
            0,
            ring,
            duration,
            transcript,
            _cost(duration, cost_per_minute),
        )
    if outcome == "short":
        duration = round(rng.uniform(3, 10), 1)
        transcript = [{"role": "agent", "text": greeting}, {"role": "user", "text": "Hello?"}]
        return SimPlan(
            outcome,
            "completed",
            None,
            1,
            ring,
            duration,
            transcript,
            _cost(duration, cost_per_minute),
        )
    turns = rng.randint(4, 10)
    duration = round(rng.uniform(30, 240), 1)
    transcript = [{"role": "agent", "text": greeting}]
    for i in range(1, turns):
        transcript.append({"role": "user", "text": f"(reply {i})"})
        transcript.append({"role": "agent", "text": f"(agent turn {i + 1})"})
    transcript.append({"role": "user", "text": _CLOSING_LINES.get(outcome, "Okay.")})
    return SimPlan(
        outcome,
        "completed",
        outcome,
        turns,
        ring,
        duration,
        transcript,
        _cost(duration, cost_per_minute),
    )


def _cost(duration_seconds: float, per_minute: float) -> float:
    return round(duration_seconds / 60.0 * per_minute, 4)
