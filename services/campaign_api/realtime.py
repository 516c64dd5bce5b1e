"""Realtime task rules: reading a submitted task (HTTP body or Kafka message), checking it and
turning it into the task's effective configuration. Pure: no I/O, so every rejection reason is
unit-tested; the service layer adds what needs the database (campaign, agent, caller id,
opt-outs, credentials).

Every rejection carries a machine-readable ``reason`` (the dead-letter topic, the producer's
rejection event and the HTTP problem all use the same codes) and the field it is about."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outbound_core.events import TaskConfig
from outbound_core.ids import new_id, stable_id
from outbound_core.phones import InvalidPhone, normalize_e164
from outbound_core.windows import parse_hhmm

MAX_BATCH = 1000
MAX_RETRIES = 10
MAX_CONTEXT_BYTES = 16_000
DEFAULT_HOURS = ("09:00", "20:00")

# reason → HTTP status of the problem answering it
HTTP_STATUS: dict[str, int] = {
    "not_json": 400,
    "unknown_campaign": 404,
    "campaign_other_workspace": 404,
    "campaign_archived": 409,
    "not_realtime_campaign": 409,
    "opted_out": 422,
    "missing_credential": 401,
    "invalid_credential": 401,
    "workspace_mismatch": 403,
}


@dataclass(frozen=True)
class Rejection:
    reason: str
    field: str
    message: str

    def problem_error(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


@dataclass
class TaskRequest:
    """A submitted task that passed every check that needs no database."""

    phone: str
    campaign_id: str
    task_ref: str | None
    config: TaskConfig
    agent_id: str | None
    name: str
    variables: dict[str, str]
    sim_outcomes: list[str] = field(default_factory=list)


class RejectedTask(ValueError):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.reason}: {rejection.field}: {rejection.message}")
        self.rejection = rejection


# ---------------------------------------------------------------------------------------------
# parsing

_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.S)
_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


def parse_lenient(body: bytes | str) -> Any:
    """JSON, also as people paste it from documentation: ``//`` and ``/* */`` comments and
    trailing commas are tolerated (the reference's sample body has both). Raises
    :class:`RejectedTask` (``not_json``) otherwise."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise RejectedTask(Rejection("not_json", "body", f"not UTF-8: {exc}")) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass

    def keep_strings(m: re.Match[str]) -> str:
        return m.group(0) if m.group(0).startswith('"') else ""

    cleaned = _COMMENT_OR_STRING.sub(keep_strings, text)
    # trailing commas, outside strings: strip them between string literals only
    parts = re.split(r'("(?:\\.|[^"\\])*")', cleaned)
    cleaned = "".join(p if i % 2 else _TRAILING_COMMA.sub(r"\1", p) for i, p in enumerate(parts))
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise RejectedTask(Rejection("not_json", "body", f"not JSON: {exc}")) from exc


# ---------------------------------------------------------------------------------------------
# checking


def _reject(reason: str, where: str, message: str) -> RejectedTask:
    return RejectedTask(Rejection(reason, where, message))


def _hhmm(value: Any, where: str) -> str:
    """``1000`` / ``"1000"`` / ``"10:00"`` / ``930`` → ``"10:00"`` (HHMM as the reference
    writes it: an integer, so 9:30 is ``930``)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _reject("invalid_hours", where, f"{value!r} is not a time of day in HHMM form")
    text = f"{value:04d}" if isinstance(value, int) and 0 <= value <= 2400 else str(value)
    try:
        t = parse_hhmm(text)
    except ValueError as exc:
        raise _reject("invalid_hours", where, str(exc)) from exc
    return f"{t.hour:02d}:{t.minute:02d}"


def _epoch_ms(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _reject("invalid_time", where, f"{value!r} is not epoch milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _reject("invalid_time", where, f"{value!r} is out of range") from exc


def _int_list(value: Any, where: str, reason: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise _reject(reason, where, "must be a list of integers")
    return list(value)


def _outcome(label: str) -> str:
    return re.sub(r"[\s-]+", "_", label.strip().lower())


def check_task(raw: Any, *, default_task_ref: str | None = None) -> TaskRequest:
    """Check one submitted task (the reference body, plus an optional ``task_ref``); raises
    :class:`RejectedTask` with the first problem found."""
    if not isinstance(raw, dict):
        raise _reject("invalid_task", "body", "a task is a JSON object")
    phone_raw = raw.get("phone")
    if phone_raw in (None, ""):
        raise _reject("missing_phone", "phone", "a task needs a phone number")
    try:
        phone = normalize_e164(str(phone_raw))
    except InvalidPhone as exc:
        raise _reject("invalid_phone", "phone", str(exc)) from exc
    campaign = raw.get("campaign") or raw.get("campaign_id")
    if not isinstance(campaign, str) or not campaign:
        raise _reject("missing_campaign", "campaign", "a task names its realtime campaign")
    task_ref = raw.get("task_ref", default_task_ref)
    if task_ref is not None and (not isinstance(task_ref, str) or not 0 < len(task_ref) <= 200):
        raise _reject("invalid_task", "task_ref", "task_ref is a string of 1–200 characters")

    from_number = raw.get("from")
    if from_number is not None:
        try:
            from_number = normalize_e164(str(from_number))
        except InvalidPhone as exc:
            raise _reject("invalid_from", "from", str(exc)) from exc
    agent = raw.get("agent")
    if agent is not None and (not isinstance(agent, str) or not agent):
        raise _reject("invalid_task", "agent", "agent is an agent id")

    start = _hhmm(raw["start"], "start") if raw.get("start") is not None else DEFAULT_HOURS[0]
    end = _hhmm(raw["end"], "end") if raw.get("end") is not None else DEFAULT_HOURS[1]
    tz = raw.get("timezone")
    if tz is not None:
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _reject("invalid_timezone", "timezone", f"{tz!r} is not an IANA zone") from exc
    start_after = _epoch_ms(raw.get("startAfter"), "startAfter")
    end_after = _epoch_ms(raw.get("endAfter"), "endAfter")
    if start_after and end_after and end_after < start_after:
        raise _reject("invalid_time", "endAfter", "endAfter is before startAfter")

    retries = raw.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= MAX_RETRIES:
        raise _reject("invalid_retries", "retries", f"retries (total attempts) is 1–{MAX_RETRIES}")
    intervals = _int_list(raw.get("intervals") or [], "intervals", "invalid_intervals")
    if len(intervals) != retries - 1:
        raise _reject(
            "invalid_intervals",
            "intervals",
            f"{retries} attempts need {retries - 1} interval(s) (retries - 1), "
            f"got {len(intervals)}",
        )
    if any(ms < 0 for ms in intervals):
        raise _reject("invalid_intervals", "intervals", "intervals are milliseconds ≥ 0")
    priorities = _int_list(raw.get("priorities") or [], "priorities", "invalid_priorities")
    if len(priorities) > retries:
        raise _reject(
            "invalid_priorities", "priorities", f"at most one priority per attempt ({retries})"
        )
    outcomes_raw = raw.get("retryOutcomes") or []
    if not isinstance(outcomes_raw, list) or not all(isinstance(o, str) for o in outcomes_raw):
        raise _reject("invalid_task", "retryOutcomes", "retryOutcomes is a list of outcomes")

    context = raw.get("context") or {}
    if not isinstance(context, dict):
        raise _reject("invalid_context", "context", "context is an object of variables")
    variables = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in context.items()}
    if len(json.dumps(variables)) > MAX_CONTEXT_BYTES:
        raise _reject("invalid_context", "context", f"context exceeds {MAX_CONTEXT_BYTES} bytes")
    name = next((v for k, v in variables.items() if k.lower() == "name"), "")
    sim = raw.get("sim_outcomes") or []
    if isinstance(sim, str):
        sim = [s.strip() for s in sim.split(",") if s.strip()]

    config = TaskConfig(
        hours_start=start,
        hours_end=end,
        timezone=str(tz) if tz else None,
        start_after=start_after,
        end_after=end_after,
        priorities=priorities,
        retries=retries,
        intervals_ms=intervals,
        retry_outcomes=sorted({_outcome(o) for o in outcomes_raw}),
        from_number=from_number,
    )
    return TaskRequest(
        phone=phone,
        campaign_id=campaign,
        task_ref=task_ref,
        config=config,
        agent_id=agent,
        name=name,
        variables=variables,
        sim_outcomes=[str(s) for s in sim] if isinstance(sim, list) else [],
    )


def task_id_for(*, workspace_id: str, task_ref: str | None) -> str:
    """Idempotency: the same ``task_ref`` in a workspace is always the same task id, whether it
    came over HTTP or Kafka."""
    if task_ref is None:
        return new_id("tsk")
    return stable_id("tsk", "rt", workspace_id, task_ref)


# ---------------------------------------------------------------------------------------------
# presenting

# the reference's task statuses, from the planner's finer ones
PUBLIC_STATUS = {
    "pending": "queued",
    "queued": "queued",
    "waiting_retry": "queued",
    "dialing": "in_progress",
    "completed": "completed",
    "not_reachable": "completed",
    "archived": "archived",
    "blocked": "archived",
    "paused": "paused",
}


def public_status(state: str, *, campaign_status: str | None) -> str:
    """The reference's status of a task; a task waiting in a paused campaign shows paused."""
    status = PUBLIC_STATUS.get(state, "queued")
    if status == "queued" and campaign_status == "paused":
        return "paused"
    return status


def effective_config(config: dict[str, Any]) -> dict[str, Any]:
    """The task's configuration in the body's own vocabulary (``GET /v1/tasks/{id}``)."""

    def ms(at: datetime | None) -> int | None:
        return int(at.timestamp() * 1000) if at else None

    agent = config.get("agent") or {}
    return {
        "from": config.get("from_number"),
        "agent": agent.get("agent_id"),
        "start": int(config["hours_start"].replace(":", "")),
        "end": int(config["hours_end"].replace(":", "")),
        "timezone": config.get("timezone"),
        "startAfter": ms(config.get("start_after")),
        "endAfter": ms(config.get("end_after")),
        "priorities": config.get("priorities", []),
        "retries": config.get("retries", 1),
        "intervals": config.get("intervals_ms", []),
        "retryOutcomes": config.get("retry_outcomes", []),
        "alwaysRetried": ["no_answer", "busy", "failed", "callback"],
    }
