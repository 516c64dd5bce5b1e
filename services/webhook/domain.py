"""Webhook rules: which internal events become which webhook events, subscription filters,
and the retry schedule. Pure: no I/O."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbound_core.events import (
    CallEnded,
    CampaignStatusChanged,
    DispositionRecorded,
    LeadUpdated,
)

LEAD_UPDATED = "campaign.lead.updated"
CAMPAIGN_STATUS_CHANGED = "campaign.status.changed"
CALL_COMPLETED = "call.completed"
CALL_DISPOSITION_SET = "call.disposition_set"
CALL_ESCALATED = "call.escalated"
PING = "ping"

WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    LEAD_UPDATED,
    CAMPAIGN_STATUS_CHANGED,
    CALL_COMPLETED,
    CALL_DISPOSITION_SET,
    CALL_ESCALATED,
)


@dataclass(frozen=True)
class WebhookEvent:
    """One event as subscribers see it. ``order_key`` groups events that must arrive in order."""

    type: str
    order_key: str
    data: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# mapping internal events → webhook events


def from_lead_updated(p: LeadUpdated) -> list[WebhookEvent]:
    data = {
        "lead_id": p.task_id,
        "campaign_id": p.campaign_id,
        "status": p.status,
        "last_disposition": p.last_disposition,
        "current_phone": p.current_phone,
        "phone_index": p.phone_index,
        "pass": p.pass_number,
        "attempt": p.attempt,
        "next_attempt_at": _iso(p.next_attempt_at),
        "reason": p.reason,
        "name": p.name,
        "variables": dict(p.variables),
        "seq": p.seq,
    }
    return [WebhookEvent(LEAD_UPDATED, p.task_id, data)]


def from_campaign_status_changed(p: CampaignStatusChanged) -> list[WebhookEvent]:
    data = {
        "campaign_id": p.campaign_id,
        "status": p.status,
        "previous": p.previous,
        "action": p.action,
        "reason": p.reason,
    }
    return [WebhookEvent(CAMPAIGN_STATUS_CHANGED, p.campaign_id, data)]


def from_call_ended(p: CallEnded) -> list[WebhookEvent]:
    data = {
        "call_id": p.call_id,
        "lead_id": p.task_id,
        "campaign_id": p.campaign_id,
        "attempt": p.attempt,
        "phone_index": p.phone_index,
        "phone": p.phone,
        "provider": p.provider,
        "status": p.status,
        "outcome": p.outcome,
        "callback_at": _iso(p.callback_at),
        "duration_seconds": p.duration_seconds,
        "turns": p.turns,
        "transcript": [dict(t) for t in p.transcript],
        "recording_url": p.recording_url,
        "cost": p.cost,
        "started_at": _iso(p.started_at),
        "ended_at": _iso(p.ended_at),
    }
    return [WebhookEvent(CALL_COMPLETED, p.task_id, data)]


def from_disposition_recorded(p: DispositionRecorded) -> list[WebhookEvent]:
    data = {
        "call_id": p.call_id,
        "lead_id": p.task_id,
        "campaign_id": p.campaign_id,
        "attempt": p.attempt,
        "disposition": p.disposition,
        "raw_outcome": p.raw_outcome,
        "connected": p.connected,
        "terminal": p.terminal,
        "callback_at": _iso(p.callback_at),
        "duration_seconds": p.duration_seconds,
        "turns": p.turns,
    }
    out = [WebhookEvent(CALL_DISPOSITION_SET, p.task_id, data)]
    if p.disposition == "escalated":
        out.append(WebhookEvent(CALL_ESCALATED, p.task_id, dict(data)))
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def envelope_body(*, event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    """The exact JSON body sent (and signed): ``{type, timestamp, data}``, compact."""
    return json.dumps(
        {"type": event_type, "timestamp": _iso(timestamp), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


# ---------------------------------------------------------------------------------------------
# subscription filters


def matches(filters: Sequence[str], event_type: str) -> bool:
    """True if a subscription with ``filters`` wants ``event_type``.

    A filter is ``*`` (everything), an exact type, or a prefix wildcard such as ``call.*``.
    """
    for f in filters:
        if f in ("*", event_type):
            return True
        if f.endswith(".*") and event_type.startswith(f[:-1]):
            return True
    return False


def normalize_filters(filters: Sequence[str] | None) -> list[str]:
    """Validate and de-duplicate an events filter; raises ValueError naming the bad entry."""
    if not filters:
        return ["*"]
    out: list[str] = []
    for raw in filters:
        f = raw.strip()
        if f == "*" or f in WEBHOOK_EVENT_TYPES:
            pass
        elif f.endswith(".*") and any(matches([f], t) for t in WEBHOOK_EVENT_TYPES):
            pass
        else:
            known = ", ".join(WEBHOOK_EVENT_TYPES)
            raise ValueError(f"unknown event type {raw!r}; known: {known}, or '*' / 'prefix.*'")
        if f not in out:
            out.append(f)
    return ["*"] if "*" in out else out


# ---------------------------------------------------------------------------------------------
# retries


def retry_delay(
    *,
    attempts_made: int,
    schedule: Sequence[float],
    retry_after: float | None = None,
    jitter: float = 0.1,
    max_retry_after: float = 86_400,
    max_attempts: int | None = None,
    rng: random.Random | None = None,
) -> timedelta | None:
    """Delay before the next attempt after ``attempts_made`` failed ones, or None when the
    schedule is exhausted (the delivery is dead).

    ``schedule[i]`` is the delay before attempt ``i + 1`` (``schedule[0]`` is the first send),
    jittered by ±``jitter``. A ``Retry-After`` (seconds) from the subscriber is honoured when it
    asks for longer than the schedule would wait, up to ``max_retry_after``.
    """
    cap = len(schedule) if max_attempts is None else min(max_attempts, len(schedule))
    if attempts_made >= cap:
        return None
    base = float(schedule[attempts_made])
    if jitter and base > 0:
        base *= (rng or random).uniform(1 - jitter, 1 + jitter)
    if retry_after is not None and retry_after > base:
        base = min(retry_after, max_retry_after)
    return timedelta(seconds=max(0.0, base))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        secs = float(value.strip())
    except ValueError:
        return None
    return secs if secs >= 0 else None


def outcome_of(status_code: int | None) -> str:
    """``succeeded`` (2xx), ``gone`` (410: the subscriber asks us to stop) or ``retry``."""
    if status_code is not None and 200 <= status_code < 300:
        return "succeeded"
    if status_code == 410:
        return "gone"
    return "retry"
