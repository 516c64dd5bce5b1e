"""Late call ends and attempt reports. Pure, no I/O.

An attempt can be reported over by two sources: the dialer (a guard refused the dispatch:
CallAborted, nothing counted) and the allocator (the lease expired: LeaseExpired, counted as
a failed attempt). Whichever reaches the planner first decides the attempt; any later report
of the same (task, attempt) changes nothing (``attempt_open``).

A call can also end after its attempt was decided without it: its lease expired while it was
still live (the dialer was restarted, the provider was slow) or the dialer aborted a call
that the network had already taken. Its end is real, so it is folded into that attempt
(``fold_late_end``) instead of being dropped:

- the attempt is in the history as ``failed`` (lease expiry): that entry takes the real
  outcome; the attempt is not counted again;
- the attempt is not in the history (aborted, never counted): it is counted now, once;
- the same call folded before (a redelivery): nothing changes.

When the late outcome ends the contact (a conversation outcome, or terminal) and nothing of
the contact is in flight, the task completes with it; a later attempt already being dialled
is never cancelled (and no attempt is ever dialled twice)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from task_planner.domain import MOVE_ON, Position, RetryPolicy

Doc = dict[str, Any]


def attempt_open(*, status: str, task_attempt: int, attempt: int) -> bool:
    """True while a report of ``attempt`` (its end, abort or lease expiry) still decides it:
    the task is queued for or dialling that very attempt. The first report moves the task on,
    so every later one for the same (task, attempt) finds it closed."""
    return task_attempt == attempt and status in ("queued", "dialing")


@dataclass(frozen=True)
class LateEnd:
    kind: Literal["duplicate", "replace", "append"]
    history: list[Doc]
    position: Position
    finishes: bool  # the late outcome ends the contact


def ends_contact(*, disposition: str, terminal: bool, policy: RetryPolicy) -> bool:
    """Whether this outcome completes the contact (what ``after_attempt`` would decide)."""
    if disposition == "callback":
        return False
    return terminal or (disposition not in MOVE_ON and disposition not in policy.retry_outcomes)


def fold_late_end(
    *,
    history: list[Doc],
    pos: Position,
    attempt: int,
    call_id: str,
    phone_index: int | None,
    disposition: str,
    terminal: bool,
    ended_at: datetime,
    policy: RetryPolicy,
) -> LateEnd:
    """Fold the late end of ``attempt`` (call ``call_id``) into the task's history and phone
    states (see the module docstring)."""
    finishes = ends_contact(disposition=disposition, terminal=terminal, policy=policy)
    entries = [dict(h) for h in history]
    prior = next((h for h in entries if h.get("attempt") == attempt), None)
    if prior is not None and prior.get("call_id") == call_id:
        return LateEnd("duplicate", list(history), pos, finishes)
    phones = list(pos.phones)
    if prior is not None:
        kind: Literal["replace", "append"] = "replace"
        idx = int(prior.get("phone_index", pos.phone_index))
        prior.update(
            call_id=call_id, disposition=disposition, late=True, expired_as=prior["disposition"]
        )
    else:
        kind = "append"
        idx = pos.phone_index if phone_index is None else phone_index
        entries.append(
            {
                "attempt": attempt,
                "call_id": call_id,
                "phone_index": idx,
                "pass_number": pos.pass_number,
                "disposition": disposition,
                "ended_at": ended_at,
                "late": True,
            }
        )
        entries.sort(key=lambda h: int(h.get("attempt", 0)))
        if 0 <= idx < len(phones):
            phones[idx] = replace(phones[idx], attempts=phones[idx].attempts + 1)
    if 0 <= idx < len(phones):
        newer = any(
            int(h.get("attempt", 0)) > attempt and int(h.get("phone_index", -1)) == idx
            for h in entries
        )
        if not newer:  # the phone's last outcome is this one
            phones[idx] = replace(
                phones[idx],
                last=disposition,
                excluded=phones[idx].excluded or disposition == "wrong_number",
            )
    return LateEnd(kind, entries, replace(pos, phones=tuple(phones)), finishes)
