"""``outbound dry-run``: forecast a campaign in simulated time.

A discrete-event simulation that uses the planner's own pure rules (calling windows in each
recipient's zone, breadth-first passes over the phones, retry intervals, retry outcomes) and a
fixed number of slots, with outcomes drawn at the given connect rate and call durations drawn
from a log-normal distribution. It answers: how long will it take, how many attempts, when does
it end, and what share of contacts will be reached."""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from outbound_core.windows import CallingWindow, Closed, build_window
from task_planner.domain import Position, RetryPolicy, after_attempt, initial_position


@dataclass
class ForecastInput:
    phones: list[list[str]]
    timezones: list[str | None]
    start: datetime
    slots: int
    connect_rate: float
    hours_start: str = "09:00"
    hours_end: str = "20:00"
    max_attempts: int = 1
    retry_interval_minutes: int = 240
    retry_outcomes: tuple[str, ...] = ("no_answer", "busy", "failed")
    end: datetime | None = None
    talk_median_seconds: float = 90.0
    ring_seconds: float = 25.0
    seed: int = 1


@dataclass
class Forecast:
    contacts: int
    attempts: int = 0
    reached: int = 0
    not_reachable: int = 0
    blocked: int = 0
    unfinished: int = 0
    first_call: datetime | None = None
    last_call_end: datetime | None = None
    busy_seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    starts: list[tuple[datetime, int, int]] = field(default_factory=list)  # (at, contact, phone)

    @property
    def duration(self) -> timedelta:
        if self.first_call is None or self.last_call_end is None:
            return timedelta(0)
        return self.last_call_end - self.first_call


@dataclass
class _Task:
    idx: int
    pos: Position
    window: CallingWindow | None
    done: bool = False


def forecast(inp: ForecastInput, *, horizon_days: int = 60) -> Forecast:
    rng = random.Random(inp.seed)  # noqa: S311 - simulation
    policy = RetryPolicy.batch(
        max_attempts=inp.max_attempts,
        retry_interval_minutes=inp.retry_interval_minutes,
        retry_outcomes=list(inp.retry_outcomes),
    )
    result = Forecast(contacts=len(inp.phones))
    limit = inp.start + timedelta(days=horizon_days)
    due: list[tuple[datetime, int]] = []  # (instant, task)
    ends: list[tuple[datetime, int, str]] = []  # (call end, task, outcome)
    ready: list[tuple[datetime, int]] = []
    tasks: list[_Task] = []
    for i, phones in enumerate(inp.phones):
        tasks.append(_Task(i, initial_position(len(phones)), None))
        heapq.heappush(due, (inp.start, i))
    free = inp.slots
    sigma = 0.6
    mu = math.log(inp.talk_median_seconds)

    def window_of(t: _Task) -> CallingWindow | Closed:
        return build_window(
            phone=inp.phones[t.idx][t.pos.phone_index],
            contact_timezone=inp.timezones[t.idx],
            hours_start=inp.hours_start,
            hours_end=inp.hours_end,
            not_before=inp.start,
            not_after=inp.end,
        )

    while due or ends or ready:
        nxt_due = due[0][0] if due else None
        nxt_end = ends[0][0] if ends else None
        if nxt_end is not None and (nxt_due is None or nxt_end <= nxt_due):
            now, idx, outcome = heapq.heappop(ends)
            free += 1
            t = tasks[idx]
            connected = outcome != "no_answer"
            nx = after_attempt(
                policy=policy, pos=t.pos, disposition=outcome, terminal=connected, ended_at=now
            )
            t.pos = nx.position
            if nx.due_at is not None:
                heapq.heappush(due, (nx.due_at, idx))
            else:
                t.done = True
                result.reached += nx.status == "completed"
                result.not_reachable += nx.status == "not_reachable"
        elif nxt_due is not None:
            now, idx = heapq.heappop(due)
            if now > limit:
                result.unfinished += 1
                continue
            w = window_of(tasks[idx])
            if isinstance(w, Closed):
                result.blocked += 1
                continue
            if not w.is_open(now):
                opens = w.next_open(now)
                if opens is None:
                    result.unfinished += 1
                else:
                    heapq.heappush(due, (opens, idx))
                continue
            heapq.heappush(ready, (now, idx))
        else:
            now = ready[0][0]
        # Start calls while slots are free (ready tasks whose window is still open).
        while free > 0 and ready:
            _, idx = heapq.heappop(ready)
            t = tasks[idx]
            w = window_of(t)
            if isinstance(w, Closed) or not w.is_open(now):
                heapq.heappush(due, (now, idx))
                continue
            connected = rng.random() < inp.connect_rate
            outcome = rng.choice(["interested", "not_interested"]) if connected else "no_answer"
            secs = rng.lognormvariate(mu, sigma) if connected else inp.ring_seconds
            free -= 1
            result.attempts += 1
            result.busy_seconds += secs
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
            result.first_call = result.first_call or now
            result.starts.append((now, idx, t.pos.phone_index))
            end = now + timedelta(seconds=secs)
            result.last_call_end = max(result.last_call_end or end, end)
            heapq.heappush(ends, (end, idx, outcome))
        if not ends and not due and ready:
            break  # nothing can free a slot: only possible with zero slots
    return result
