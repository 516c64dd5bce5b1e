"""Planner rules: what happens to a task after an attempt, and when it may be queued. Pure.

Phones are tried breadth-first. Within a pass, a contact's phones are tried in order until one
reaches a person; outcomes that do not (no answer, busy, failed, voicemail, wrong number) move
on to the next phone at once. The next pass starts ``retry_interval`` after the attempt that
closed the previous one ended; a pass retries only the phones whose last outcome is in
``retry_outcomes``; a wrong number is never tried again. At most ``max_attempts`` passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from outbound_core.windows import CallingWindow, Closed

MOVE_ON = frozenset({"no_answer", "busy", "failed", "voicemail", "wrong_number", "silence"})
TERMINAL_LABELS = frozenset({"interested", "not_interested", "opt_out", "escalated", "completed"})
ACTIVE_STATUSES = ("pending", "waiting_retry", "queued", "dialing")
SCHEDULABLE_STATUSES = ("pending", "waiting_retry")
FINAL_STATUSES = ("completed", "not_reachable", "archived", "blocked")
ALL_STATUSES = (*ACTIVE_STATUSES, *FINAL_STATUSES)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    retry_interval: timedelta
    retry_outcomes: frozenset[str]
    intervals: tuple[timedelta, ...] = ()  # realtime: the gap after each attempt

    def interval_after(self, pass_number: int) -> timedelta:
        """The gap between the end of pass ``pass_number`` and the next pass: the task's own
        ``intervals`` (realtime) when it has one for that pass, else the campaign's interval."""
        if 1 <= pass_number <= len(self.intervals):
            return self.intervals[pass_number - 1]
        return self.retry_interval

    @staticmethod
    def batch(
        *, max_attempts: int, retry_interval_minutes: int, retry_outcomes: list[str]
    ) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts,
            retry_interval=timedelta(minutes=retry_interval_minutes),
            retry_outcomes=frozenset(retry_outcomes),
        )


@dataclass(frozen=True)
class PhoneState:
    last: str | None = None
    attempts: int = 0
    excluded: bool = False
    suppressed: bool = False  # on the org's suppression list: skipped, never dialled


@dataclass(frozen=True)
class Position:
    phone_index: int
    pass_number: int
    phones: tuple[PhoneState, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Next:
    """The decision after an attempt: either another attempt or a final status."""

    status: str  # waiting_retry | pending | completed | not_reachable
    position: Position
    due_at: datetime | None = None
    callback: bool = False
    final_disposition: str | None = None


def initial_position(phone_count: int) -> Position:
    return Position(
        phone_index=0, pass_number=1, phones=tuple(PhoneState() for _ in range(phone_count))
    )


def _eligible_next_pass(pos: Position, policy: RetryPolicy) -> list[int]:
    return [
        i for i, p in enumerate(pos.phones) if not p.excluded and p.last in policy.retry_outcomes
    ]


def after_attempt(
    *,
    policy: RetryPolicy,
    pos: Position,
    disposition: str,
    terminal: bool,
    ended_at: datetime,
    callback_at: datetime | None = None,
) -> Next:
    """Decide what follows an attempt on ``pos.phone_index`` that ended with ``disposition``."""
    phones = list(pos.phones)
    cur = phones[pos.phone_index]
    updated = replace(
        cur,
        last=disposition,
        attempts=cur.attempts + 1,
        excluded=cur.excluded or disposition == "wrong_number",
    )
    phones[pos.phone_index] = updated
    here = replace(pos, phones=tuple(phones))

    if disposition == "callback":
        # The contact asked to be called back: the same phone, at the time asked for, as the
        # next pass. A callback is a retry (it uses up an attempt): a contact who keeps asking
        # is not called for ever, and one whose attempts are used up ends `completed` with the
        # callback as its last outcome, for a person to follow up.
        if pos.pass_number >= policy.max_attempts:
            return Next(status="completed", position=here, final_disposition="callback")
        due = (
            callback_at
            if callback_at and callback_at > ended_at
            else (ended_at + policy.interval_after(pos.pass_number))
        )
        return Next(
            status="waiting_retry",
            position=replace(here, pass_number=pos.pass_number + 1),
            due_at=due,
            callback=True,
        )
    if terminal or (disposition not in MOVE_ON and disposition not in policy.retry_outcomes):
        return Next(status="completed", position=here, final_disposition=disposition)

    return _advance(here, policy, ended_at=ended_at, disposition=disposition)


def skip_suppressed(*, policy: RetryPolicy, pos: Position, now: datetime) -> Next:
    """The phone at ``pos.phone_index`` is on the org's suppression list: it is never tried
    again, and the contact goes on with its other phones (same pass first); only when no phone
    is left does the task end, ``archived`` with ``opted_out``."""
    phones = list(pos.phones)
    phones[pos.phone_index] = replace(phones[pos.phone_index], excluded=True, suppressed=True)
    here = replace(pos, phones=tuple(phones))
    if all(p.excluded for p in phones):
        return Next(status="archived", position=here, final_disposition="opted_out")
    return _advance(here, policy, ended_at=now, disposition="opted_out")


def exclude_phones(pos: Position, indexes: list[int]) -> Position:
    """Mark phones other than the current one as suppressed (the rotation skips them)."""
    phones = list(pos.phones)
    for i in indexes:
        phones[i] = replace(phones[i], excluded=True, suppressed=True)
    return replace(pos, phones=tuple(phones))


def _advance(here: Position, policy: RetryPolicy, *, ended_at: datetime, disposition: str) -> Next:
    pos, phones = here, list(here.phones)
    # Same pass: the next phone after this one that this pass should try.
    for j in range(pos.phone_index + 1, len(phones)):
        p = phones[j]
        if p.excluded:
            continue
        if pos.pass_number == 1 or p.last in policy.retry_outcomes:
            return Next(status="pending", position=replace(here, phone_index=j), due_at=ended_at)

    # End of the pass.
    if pos.pass_number < policy.max_attempts:
        eligible = _eligible_next_pass(here, policy)
        if eligible:
            return Next(
                status="waiting_retry",
                position=replace(here, phone_index=eligible[0], pass_number=pos.pass_number + 1),
                due_at=ended_at + policy.interval_after(pos.pass_number),
            )
    if all(p.excluded for p in phones):
        if any(p.suppressed for p in phones) and not any(p.last == "wrong_number" for p in phones):
            return Next(status="archived", position=here, final_disposition="opted_out")
        return Next(status="completed", position=here, final_disposition="wrong_number")
    if any(p.last in policy.retry_outcomes for p in phones if not p.excluded):
        return Next(status="not_reachable", position=here, final_disposition="not_reachable")
    return Next(status="completed", position=here, final_disposition=disposition)


def lead_status(status: str, attempt_count: int) -> str:
    """The externally visible lead status of a stored task status."""
    if status == "pending" and attempt_count > 0:
        return "waiting_retry"
    return status


# ---------------------------------------------------------------------------------------------
# when may a waiting task be queued


@dataclass(frozen=True)
class Decision:
    """What to do with a task that is due: ``queue`` it now, ``wait`` until ``due_at``,
    ``block`` it for good (``reason``), or leave it to the campaign's end (``ended``)."""

    action: str  # queue | wait | block | ended
    due_at: datetime | None = None
    reason: str | None = None


def decide(window: CallingWindow | Closed, now: datetime, *, recheck: timedelta) -> Decision:
    """The scheduling decision for a due task under ``window`` at ``now``.

    Fails closed: a window that cannot be built (unknown or invalid zone) or whose daily hours
    never overlap in all of the recipient's candidate zones blocks the task with a reason
    instead of calling it at a guess."""
    if isinstance(window, Closed):
        return Decision("block", reason=window.reason)
    nxt = window.next_open(now)  # ``now`` itself when open
    if nxt == now:
        return Decision("queue", due_at=now)
    if nxt is not None:
        return Decision("wait", due_at=nxt)
    if window.not_after is not None and now >= window.not_after:
        return Decision("ended")
    # Nothing within the horizon: either weekdays/blackouts/schedule push it further out, or
    # the zones' hours never overlap at all (e.g. a toll-free number spanning the continent).
    bare = replace(
        window, weekdays=None, blackout_dates=frozenset(), not_before=None, not_after=None
    )
    if bare.next_open(now) is None:
        return Decision("block", reason="empty_window")
    due = now + recheck
    if window.not_after is not None:
        due = min(due, window.not_after)  # the schedule's end archives it; look again then
    return Decision("wait", due_at=due)


def replanned_due(
    *,
    last_ended: datetime | None,
    last_pass: int | None,
    pass_number: int,
    callback: bool,
    current_due: datetime,
    retry_interval: timedelta,
    now: datetime,
) -> datetime:
    """When a waiting task becomes due again after the campaign's settings changed: a callback
    keeps its requested time; a task never tried is due now; the next phone of the same
    pass right after the last attempt ended; a new pass ``retry_interval`` after it. The
    calling window is applied afterwards, when the task is considered."""
    if callback:
        return current_due
    if last_ended is None:
        return now
    if last_pass is not None and pass_number > last_pass:
        return last_ended + retry_interval
    return last_ended


def restart_fields(phone_count: int, now: datetime) -> dict[str, object]:
    """A task's state at the start of a campaign restart: back to pending on its first phone,
    first pass, no history. The internal ``attempt`` counter is left alone on purpose: it keys
    the dialer's one-call-per-attempt guarantee, so it must never repeat."""
    pos = initial_position(phone_count)
    return {
        "status": "pending",
        "due_at": now,
        "phone_index": pos.phone_index,
        "pass_number": pos.pass_number,
        "phone_states": [
            {"last": p.last, "attempts": p.attempts, "excluded": p.excluded} for p in pos.phones
        ],
        "history": [],
        "last_disposition": None,
        "reason": None,
        "callback": False,
        "restart_after_call": False,
    }


class DecisionCache:
    """Decisions at one instant, memoised per window object: the tasks due in one tick share a
    handful of window shapes (one per campaign and recipient zone set), and ``window_for``
    returns the same object for the same shape."""

    def __init__(self, now: datetime, *, recheck: timedelta) -> None:
        self.now = now
        self.recheck = recheck
        self._memo: dict[int, tuple[CallingWindow | Closed, Decision]] = {}

    def decide(self, window: CallingWindow | Closed) -> Decision:
        hit = self._memo.get(id(window))
        if hit is not None and hit[0] is window:
            return hit[1]
        d = decide(window, self.now, recheck=self.recheck)
        self._memo[id(window)] = (window, d)
        return d


def caller_numbers(campaign: Mapping[str, Any]) -> list[str]:
    """The pool a campaign's calls go out on: its resolved pool, else its single `from`
    number, else none (the provider's default caller id)."""
    pool = list(campaign.get("caller_numbers") or ())
    if not pool and campaign.get("from_number"):
        pool = [str(campaign["from_number"])]
    return pool
