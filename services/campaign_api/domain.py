"""Campaign rules: contact normalisation, schedules and status transitions. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outbound_core.phones import InvalidPhone, normalize_e164

RESERVED = {"phone", "name", "timezone", "sim_outcomes", "email"}
_PHONE_COL = re.compile(r"^phone(\d{0,2})$")


@lru_cache(maxsize=4096)
def normalise_header(name: str) -> str:
    """``case number`` → ``CASE_NUMBER``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name.strip()).strip("_").upper()


@dataclass
class ContactIssue:
    index: int
    field: str
    message: str


@dataclass
class NormalisedContacts:
    contacts: list[dict[str, Any]] = field(default_factory=list)
    issues: list[ContactIssue] = field(default_factory=list)
    duplicates: int = 0


@lru_cache(maxsize=4096)
def _reserved(key: str) -> str | None:
    """The known field a key names, whatever its case (``Name``, ``TIMEZONE``)."""
    k = key.strip().lower()
    return k if k in RESERVED else None


@lru_cache(maxsize=4096)
def _phone_column(key: str) -> int | None:
    """The position of a phone column (``phone`` 0, ``phone3`` 3), None for other keys."""
    m = _PHONE_COL.match(key.lower())
    return int(m.group(1) or 0) if m else None


@lru_cache(maxsize=4096)
def _variable_name(key: str) -> str | None:
    """The variable a contact key becomes, None for the known fields and phone columns."""
    lower = key.lower()
    if lower in RESERVED or _PHONE_COL.match(lower):
        return None
    return normalise_header(key)


def _phone_fields(raw: dict[str, Any]) -> list[tuple[str, Any]]:
    found: list[tuple[int, str, Any]] = []
    for key, value in raw.items():
        pos = _phone_column(key)
        if pos is not None and value not in (None, ""):
            found.append((pos, key, value))
    return [(k, v) for _, k, v in sorted(found)]


def normalise_contacts(
    raw_contacts: list[dict[str, Any]],
    *,
    default_region: str | None = None,
) -> NormalisedContacts:
    """Phones to E.164 (phone or phone1…phone10, in order), custom fields to variables,
    duplicates (by first phone) merged, every problem reported with its contact index."""
    out = NormalisedContacts()
    seen: set[str] = set()
    for i, raw in enumerate(raw_contacts):
        # Known columns are matched whatever their case ("Name", "TIMEZONE").
        known = {r: v for k, v in raw.items() if (r := _reserved(k)) is not None}
        phone_fields = _phone_fields(raw)
        if not phone_fields:
            out.issues.append(ContactIssue(i, "phone", "a contact needs phone or phone1…phone10"))
            continue
        if len(phone_fields) > 10:
            out.issues.append(ContactIssue(i, "phone", "at most 10 phones per contact"))
            continue
        phones: list[str] = []
        bad = False
        for key, value in phone_fields:
            try:
                e164 = normalize_e164(str(value), default_region=default_region)
            except InvalidPhone as exc:
                out.issues.append(ContactIssue(i, key, str(exc)))
                bad = True
                continue
            if e164 not in phones:
                phones.append(e164)
        if bad:
            continue
        tz = known.get("timezone")
        if tz:
            try:
                ZoneInfo(str(tz))
            except (ZoneInfoNotFoundError, ValueError):
                out.issues.append(ContactIssue(i, "timezone", f"{tz!r} is not an IANA timezone"))
                continue
        if phones[0] in seen:
            out.duplicates += 1
            continue
        seen.add(phones[0])
        sim = known.get("sim_outcomes") or []
        if isinstance(sim, str):
            sim = [s.strip() for s in sim.split(",") if s.strip()]
        variables = {
            name: "" if v is None else str(v)
            for k, v in raw.items()
            if (name := _variable_name(k)) is not None
        }
        if known.get("email"):
            variables["EMAIL"] = str(known["email"])
        out.contacts.append(
            {
                "phones": phones,
                "name": str(known.get("name") or ""),
                "timezone": str(tz) if tz else None,
                "variables": variables,
                "sim_outcomes": [str(s) for s in sim],
            }
        )
    return out


class ScheduleError(ValueError):
    pass


def resolve_schedule(
    *, start: datetime | None, end: datetime | None, timezone: str, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Naive times are read in the schedule's timezone; returns aware UTC instants."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"timezone {timezone!r} is not an IANA timezone") from exc

    def aware(dt: datetime | None) -> datetime | None:
        if dt is None:
            return None
        return (dt.replace(tzinfo=zone) if dt.tzinfo is None else dt).astimezone(UTC)

    s, e = aware(start), aware(end)
    if s is not None and e is not None and e <= s:
        raise ScheduleError("schedule.end_time must be after schedule.start_time")
    if e is not None and e <= now:
        raise ScheduleError(f"schedule.end_time {e.isoformat()} is already in the past")
    return s, e


TRANSITIONS: dict[str, dict[str, str]] = {
    "start": {"scheduled": "running", "paused": "running"},
    "pause": {"running": "paused", "scheduled": "paused"},
    "resume": {"paused": "running"},
    "stop": {"scheduled": "stopped", "running": "stopped", "paused": "stopped"},
    # Every lead back to pending, counters zeroed. A stopped campaign stays stopped.
    "restart": {"running": "running", "paused": "running", "completed": "running"},
}
SETTINGS_EDITABLE = frozenset({"scheduled", "running", "paused"})
ALIASES = {"archive": "stop"}


class TransitionError(ValueError):
    pass


def apply_action(status: str, action: str) -> str:
    """The status after ``action``; raises TransitionError with a clear reason."""
    action = ALIASES.get(action, action)
    if action not in TRANSITIONS:
        raise TransitionError(f"unknown action {action!r}")
    new = TRANSITIONS[action].get(status)
    if new is None:
        if status == "stopped":
            raise TransitionError("the campaign is stopped; stopping is irreversible")
        raise TransitionError(f"cannot {action} a campaign that is {status}")
    return new
