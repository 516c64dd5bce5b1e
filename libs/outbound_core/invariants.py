"""The invariant checker: Outbound's promises, checked against what the services stored and
what the simulated phone network saw.

:func:`check` is pure: it takes a :class:`Snapshot` (documents read from every service's
database and the simulator's ``sim_calls``) and returns every :class:`Breach` with its evidence.
``outbound_core.invariants_cli`` reads a snapshot from MongoDB and runs it
(``python -m outbound_core.invariants_cli check``).

The promises, most damaging first:

1. ``window`` / ``opted_out``: no number dialled outside its window, no opted-out number dialled;
2. ``double_dial`` / ``overlap``: no attempt dialled twice, no contact in two calls at once;
3. ``cap``: no org total, hard workspace allocation or campaign cap exceeded at any instant;
4. ``lost`` / ``attempts``: every contact ends terminal or waits with a due time, with the
   attempts its policy allows;
5. ``mismatch``: counters, lead states, call records and webhook deliveries agree.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from outbound_core.clock import utc
from outbound_core.windows import Closed, build_window

Doc = dict[str, Any]

ACTIVE = frozenset({"pending", "waiting_retry", "queued", "dialing"})
SCHEDULABLE = frozenset({"pending", "waiting_retry"})
FINAL = frozenset({"completed", "not_reachable", "archived", "blocked"})
ENDED_CAMPAIGN = frozenset({"completed", "stopped"})
DEFAULT_RETRY_OUTCOMES = ("no_answer", "busy", "failed")


@dataclass(frozen=True)
class Breach:
    """One broken promise: ``kind`` (see the module doc), who, and the evidence."""

    kind: str
    subject: str
    detail: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.detail}"


@dataclass
class Snapshot:
    """The stored state of one deployment (or of the orgs a run cares about)."""

    sim_calls: list[Doc] = field(default_factory=list)  # simulator: what reached the network
    dialer_calls: list[Doc] = field(default_factory=list)
    tasks: list[Doc] = field(default_factory=list)  # task-planner
    campaigns: list[Doc] = field(default_factory=list)  # task-planner's campaign settings
    slot_configs: list[Doc] = field(default_factory=list)  # slot-allocator
    suppressions: list[Doc] = field(default_factory=list)  # disposition: the org opt-out list
    dispositions: list[Doc] = field(default_factory=list)
    api_campaigns: list[Doc] = field(default_factory=list)  # campaign-api: counters
    api_leads: list[Doc] = field(default_factory=list)
    api_calls: list[Doc] = field(default_factory=list)
    deliveries: list[Doc] = field(default_factory=list)  # webhook
    default_org_slots: int = 20


@dataclass(frozen=True)
class Options:
    """``window_slack``: virtual time allowed between the dialer's last-moment check and the
    network seeing the call (real processing time times the clock speed in a simulation).
    ``settled``: the run is over (every campaign ended): nothing may still be in flight."""

    window_slack: timedelta = timedelta(0)
    settled: bool = False


def check(snap: Snapshot, options: Options | None = None) -> list[Breach]:
    """Every breach of the promises in ``snap``; an empty list when all hold."""
    opts = options or Options()
    ctx = _Context(snap)
    out: list[Breach] = []
    out += _windows_and_opt_outs(ctx, opts)
    out += _double_dials_and_overlaps(ctx)
    out += _caps(ctx)
    out += _lost_and_attempts(ctx, opts)
    out += _consistency(ctx, opts)
    return out


def summarize(breaches: Iterable[Breach]) -> dict[str, int]:
    return dict(Counter(b.kind for b in breaches))


# -- context --------------------------------------------------------------------------------------


class _Context:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.tasks = {t["_id"]: t for t in snap.tasks}
        self.campaigns = {c["_id"]: c for c in snap.campaigns}
        self.dialled = [c for c in snap.sim_calls if c.get("status") != "rejected"]
        self.intervals = [(_start(c), _end(c), c) for c in self.dialled]

    def task_of(self, call: Doc) -> Doc | None:
        return self.tasks.get(call.get("task_id", ""))

    def campaign_of(self, task: Doc | None) -> Doc:
        return self.campaigns.get(task["campaign_id"], {}) if task else {}


def _start(call: Doc) -> datetime:
    return utc(call["placed_at"])


def _end(call: Doc) -> datetime:
    for key in ("ended_at", "ends_at", "cut_at"):
        if call.get(key) is not None:
            return utc(call[key])
    return datetime.max.replace(tzinfo=UTC)  # still ringing: open-ended


def _ids(docs: Iterable[Doc], key: str = "_id") -> list[str]:
    return sorted(str(d.get(key)) for d in docs)[:20]


# -- 1. windows and opt-outs ----------------------------------------------------------------------


def _window_of(task: Doc, campaign: Doc, phone: str) -> Any:
    schedule = campaign.get("schedule") or {}
    hours = campaign.get("calling_hours") or {}
    weekdays = hours.get("weekdays")
    try:
        return build_window(
            phone=phone,
            contact_timezone=task.get("timezone"),
            campaign_timezone=schedule.get("timezone")
            if hours.get("use_campaign_timezone")
            else None,
            hours_start=hours.get("start", "09:00"),
            hours_end=hours.get("end", "20:00"),
            weekdays=weekdays,
            blackout_dates=[date.fromisoformat(str(d)) for d in hours.get("blackout_dates") or ()],
            not_before=utc(schedule["start_time"]) if schedule.get("start_time") else None,
            not_after=utc(schedule["end_time"]) if schedule.get("end_time") else None,
        )
    except ValueError as exc:
        return Closed("invalid_settings", str(exc))


def _windows_and_opt_outs(ctx: _Context, opts: Options) -> list[Breach]:
    out: list[Breach] = []
    opted: dict[tuple[str, str], datetime] = {}
    for s in ctx.snap.suppressions:
        at = utc(s["at"]) if s.get("at") else datetime.min.replace(tzinfo=UTC)
        opted[(s["org_id"], s["phone"])] = at
    for call in ctx.dialled:
        task = ctx.task_of(call)
        placed = _start(call)
        if task is None:
            out.append(Breach("lost", call["_id"], "call for a task the planner does not know"))
            continue
        window = _window_of(task, ctx.campaign_of(task), call["to"])
        open_ = not isinstance(window, Closed) and (
            window.is_open(placed) or window.is_open(placed - opts.window_slack)
        )
        if not open_:
            out.append(
                Breach(
                    "window",
                    call["_id"],
                    "dialled outside the recipient's calling window",
                    {"placed_at": placed.isoformat(), "task_id": task["_id"]},
                )
            )
        since = opted.get((task["org_id"], call["to"]))
        if since is not None and placed > since:
            out.append(
                Breach(
                    "opted_out",
                    call["_id"],
                    "dialled a number on the org's opt-out list",
                    {"placed_at": placed.isoformat(), "opted_out_at": since.isoformat()},
                )
            )
    return out


# -- 2. double dials and overlapping calls --------------------------------------------------------


def _double_dials_and_overlaps(ctx: _Context) -> list[Breach]:
    out: list[Breach] = []
    per_attempt: dict[tuple[str, int], list[Doc]] = defaultdict(list)
    for call in ctx.dialled:
        per_attempt[(call["task_id"], call["attempt"])].append(call)
    for (task_id, attempt), calls in per_attempt.items():
        if len(calls) > 1:
            out.append(
                Breach(
                    "double_dial",
                    task_id,
                    f"attempt {attempt} dialled {len(calls)} times",
                    {"calls": _ids(calls)},
                )
            )
    for key, label in (("task_id", "contact"), ("to", "number")):
        groups: dict[str, list[tuple[datetime, datetime, Doc]]] = defaultdict(list)
        for iv in ctx.intervals:
            groups[str(iv[2].get(key))].append(iv)
        for subject, ivs in groups.items():
            ivs.sort(key=lambda iv: iv[0])
            for prev, nxt in itertools.pairwise(ivs):
                if nxt[0] < prev[1]:
                    out.append(
                        Breach(
                            "overlap",
                            subject if label == "contact" else prev[2]["task_id"],
                            f"{label} in two calls at once",
                            {"calls": [prev[2]["_id"], nxt[2]["_id"]]},
                        )
                    )
                    break
    return out


# -- 3. caps --------------------------------------------------------------------------------------


def _caps(ctx: _Context) -> list[Breach]:
    configs = {c["_id"]: c for c in ctx.snap.slot_configs}
    scopes: dict[tuple[str, str], list[tuple[datetime, datetime, Doc]]] = defaultdict(list)
    limits: dict[tuple[str, str], int] = {}
    for start, end, call in ctx.intervals:
        task = ctx.task_of(call)
        if task is None:
            continue
        org, ws = task["org_id"], task["workspace_id"]
        cfg = configs.get(org, {})
        total = cfg.get("total_slots") or ctx.snap.default_org_slots
        scopes[("org", org)].append((start, end, call))
        limits[("org", org)] = int(total)
        for w in cfg.get("workspaces") or ():
            if w.get("workspace_id") == ws and w.get("mode") == "hard":
                scopes[("workspace", ws)].append((start, end, call))
                limits[("workspace", ws)] = int(w["allocation"])
        cap = ctx.campaign_of(task).get("max_slots")
        if cap:
            scopes[("campaign", task["campaign_id"])].append((start, end, call))
            limits[("campaign", task["campaign_id"])] = int(cap)
    out: list[Breach] = []
    for scope, ivs in scopes.items():
        peak, at, active = _peak(ivs)
        if peak > limits[scope]:
            out.append(
                Breach(
                    "cap",
                    f"{scope[0]} {scope[1]}",
                    f"{peak} calls at once, limit {limits[scope]}",
                    {"at": at.isoformat() if at else None, "calls": active[:50]},
                )
            )
    return out


def _peak(ivs: list[tuple[datetime, datetime, Doc]]) -> tuple[int, datetime | None, list[str]]:
    # Ends sort before starts at the same instant: a slot freed and reused at once is fine.
    events = sorted(
        [(s, 1, c["_id"]) for s, _, c in ivs] + [(e, 0, c["_id"]) for _, e, c in ivs],
        key=lambda ev: (ev[0], ev[1]),
    )
    live: set[str] = set()
    peak, at, snapshot = 0, None, []
    for when, kind, call_id in events:
        if kind == 1:
            live.add(call_id)
            if len(live) > peak:
                peak, at, snapshot = len(live), when, sorted(live)
        else:
            live.discard(call_id)
    return peak, at, snapshot


# -- 4. lost contacts and attempts ----------------------------------------------------------------


def _lost_and_attempts(ctx: _Context, opts: Options) -> list[Breach]:
    out: list[Breach] = []
    for lead in ctx.snap.api_leads:
        if lead["_id"] not in ctx.tasks and not lead.get("removed"):
            out.append(Breach("lost", lead["_id"], "accepted contact has no task"))
    calls_per_task: Counter[str] = Counter(c["task_id"] for c in ctx.dialled)
    for task in ctx.snap.tasks:
        tid, status = task["_id"], task.get("status")
        camp = ctx.campaign_of(task)
        if status in SCHEDULABLE and task.get("due_at") is None:
            out.append(Breach("lost", tid, f"{status} without a due time"))
        elif status in ACTIVE and (opts.settled or camp.get("status") in ENDED_CAMPAIGN):
            out.append(
                Breach(
                    "lost",
                    tid,
                    f"still {status} after its campaign ended",
                    {"campaign_status": camp.get("status")},
                )
            )
        elif status not in ACTIVE and status not in FINAL:
            out.append(Breach("lost", tid, f"unknown status {status!r}"))
        history = task.get("history") or []
        max_attempts = int(camp.get("max_attempts", 1))
        allowed = max_attempts * len(task.get("phones") or [1])
        if len(history) > allowed or calls_per_task[tid] > allowed:
            out.append(
                Breach(
                    "attempts",
                    tid,
                    f"{max(len(history), calls_per_task[tid])} attempts, policy allows {allowed}",
                )
            )
        if status == "not_reachable":
            retry = set(camp.get("retry_outcomes") or DEFAULT_RETRY_OUTCOMES)
            per_phone: dict[int, list[Doc]] = defaultdict(list)
            for h in history:
                per_phone[int(h.get("phone_index", 0))].append(h)
            for idx, hs in per_phone.items():
                if hs[-1].get("disposition") in retry and len(hs) < max_attempts:
                    out.append(
                        Breach(
                            "attempts",
                            tid,
                            f"gave up on phone {idx} after {len(hs)} of {max_attempts} attempts",
                            {"dispositions": [h.get("disposition") for h in hs]},
                        )
                    )
    return out


# -- 5. consistency -------------------------------------------------------------------------------


def _consistency(ctx: _Context, opts: Options) -> list[Breach]:
    out: list[Breach] = []
    out += _leads_agree(ctx)
    out += _calls_agree(ctx, opts)
    out += _counters_agree(ctx)
    out += _deliveries_agree(ctx)
    return out


def _lead_status(status: str, attempts: int) -> str:
    return "waiting_retry" if status == "pending" and attempts > 0 else status


def _leads_agree(ctx: _Context) -> list[Breach]:
    out: list[Breach] = []
    leads = {lead["_id"]: lead for lead in ctx.snap.api_leads}
    for task in ctx.snap.tasks:
        lead = leads.get(task["_id"])
        attempts = len(task.get("history") or [])
        want = _lead_status(task["status"], attempts)
        if lead is None:
            out.append(Breach("mismatch", task["_id"], "task has no lead in campaign-api"))
        elif lead.get("seq") != task.get("seq") or lead.get("status") != want:
            out.append(
                Breach(
                    "mismatch",
                    task["_id"],
                    "lead state disagrees with its task",
                    {
                        "lead": {"status": lead.get("status"), "seq": lead.get("seq")},
                        "task": {"status": want, "seq": task.get("seq")},
                    },
                )
            )
    return out


def _calls_agree(ctx: _Context, opts: Options) -> list[Breach]:
    out: list[Breach] = []
    dialer = {c["_id"]: c for c in ctx.snap.dialer_calls}
    dispositions = {d["_id"] for d in ctx.snap.dispositions}
    for call in ctx.dialled:
        if call["_id"] not in dialer:
            out.append(Breach("mismatch", call["_id"], "network call the dialer never recorded"))
    for call in ctx.snap.dialer_calls:
        task = ctx.tasks.get(call["task_id"])
        if call.get("status") != "ended":
            if opts.settled:
                out.append(Breach("lost", call["_id"], f"call still {call.get('status')}"))
            continue
        closed_by = call.get("closed_by", "provider")
        if closed_by == "aborted":
            continue  # recorded, never dialled: handed back to the planner
        if closed_by != "lease_expired" and call["_id"] not in dispositions:
            out.append(Breach("mismatch", call["_id"], "ended call has no disposition"))
        if task is not None and task.get("status") in FINAL:
            attempts = {h.get("attempt") for h in task.get("history") or []}
            if call["attempt"] not in attempts:
                out.append(
                    Breach(
                        "mismatch",
                        call["_id"],
                        "ended call is missing from its task's history",
                        {"task_id": task["_id"], "attempt": call["attempt"]},
                    )
                )
    return out


def _counters_agree(ctx: _Context) -> list[Breach]:
    out: list[Breach] = []
    by_campaign: Counter[str] = Counter()
    for call in ctx.dialled:
        task = ctx.task_of(call)
        if task is not None:
            by_campaign[task["campaign_id"]] += 1
    recorded: Counter[str] = Counter(d["campaign_id"] for d in ctx.snap.dispositions)
    # A provider fault (rejected) is a call attempt on record too, though nothing rang.
    attempted: Counter[str] = Counter()
    for call in ctx.snap.sim_calls:
        task = ctx.task_of(call)
        if task is not None:
            attempted[task["campaign_id"]] += 1
    api_calls: Counter[str] = Counter(
        c["campaign_id"] for c in ctx.snap.api_calls if c.get("started_at")
    )
    for camp in ctx.snap.api_campaigns:
        cid = camp["_id"]
        made = int(camp.get("calls_made", 0))
        summary = sum(int(v) for v in (camp.get("disposition_summary") or {}).values())
        if made != by_campaign[cid]:
            out.append(
                Breach(
                    "mismatch",
                    cid,
                    f"calls_made {made} but the network saw {by_campaign[cid]} calls",
                )
            )
        if summary != recorded[cid]:
            out.append(
                Breach(
                    "mismatch",
                    cid,
                    f"disposition summary counts {summary} but {recorded[cid]} were recorded",
                )
            )
        if api_calls[cid] != attempted[cid]:
            out.append(
                Breach(
                    "mismatch",
                    cid,
                    f"{api_calls[cid]} call records but the network had {attempted[cid]} requests",
                )
            )
    return out


def _deliveries_agree(ctx: _Context) -> list[Breach]:
    out: list[Breach] = []
    seen: Counter[tuple[str, str]] = Counter()
    for d in ctx.snap.deliveries:
        seen[(str(d.get("subscription_id")), str(d.get("msg_id")))] += 1
        if d.get("status") == "pending" and d.get("next_attempt_at") is None:
            out.append(Breach("lost", d["_id"], "pending webhook delivery with no next attempt"))
    for (sub, msg), n in seen.items():
        if n > 1:
            out.append(Breach("mismatch", sub, f"webhook message {msg} stored {n} times"))
    return out
