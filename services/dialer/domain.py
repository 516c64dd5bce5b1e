"""Dialer rules: template rendering and the last-moment guard. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from outbound_core.events import DialWindow
from outbound_core.windows import Closed, build_window

DEFAULT_NAME = "there"
# {{NAME}} / {{ case_number }} and ${name} / ${orderId}
_TOKEN = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}|\$\{\s*([A-Za-z_][\w.-]*)\s*\}")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([,.;:!?])")


def contact_variables(*, name: str, variables: Mapping[str, str]) -> dict[str, str]:
    """The variables a template sees: the contact's own plus its name as ``NAME``."""
    out = dict(variables)
    if name.strip():
        out = {k: v for k, v in out.items() if k.lower() != "name"}
        out["NAME"] = name.strip()
    return out


def _lookup(key: str, variables: Mapping[str, str]) -> str | None:
    if key in variables:
        return variables[key]
    folded = key.casefold()
    for k, v in variables.items():
        if k.casefold() == folded:
            return v
    return None


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Fill ``{{TOKEN}}`` and ``${token}`` placeholders (variable names match case-insensitively).

    A missing or empty name becomes "there" ("Hi there, …", never "Hi , …"); any other
    missing variable becomes "" and the spaces it leaves behind are tidied."""
    blanked = False

    def sub(match: re.Match[str]) -> str:
        nonlocal blanked
        key = match.group(1) or match.group(2)
        value = (_lookup(key, variables) or "").strip()
        if not value and key.casefold() == "name":
            return DEFAULT_NAME
        if not value:
            blanked = True
        return value

    text = _TOKEN.sub(sub, template)
    if blanked:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()
    return text


def abort_reason(
    *,
    campaign: Mapping[str, Any] | None,
    phone: str,
    contact_timezone: str | None,
    now: datetime,
    lease_expires_at: datetime,
    check_window: bool = True,
    window: DialWindow | None = None,
) -> str | None:
    """Why a dispatched attempt must not be dialled right now, or None to dial it."""
    if campaign is None:
        return "campaign_unknown"
    status = campaign.get("status")
    if status != "running":
        return f"campaign_{status or 'unknown'}"
    if lease_expires_at <= now:
        return "lease_expired"
    if not check_window:
        return None
    if window is not None:  # a realtime task's own window
        built = build_window(
            phone=phone,
            contact_timezone=contact_timezone,
            hours_start=window.hours_start,
            hours_end=window.hours_end,
            campaign_timezone=window.timezone,
            not_before=window.not_before,
            not_after=window.not_after,
        )
    else:
        hours = campaign.get("calling_hours") or {}
        schedule = campaign.get("schedule") or {}
        built = build_window(
            phone=phone,
            contact_timezone=contact_timezone,
            hours_start=hours.get("start", "09:00"),
            hours_end=hours.get("end", "20:00"),
            campaign_timezone=schedule.get("timezone")
            if hours.get("use_campaign_timezone")
            else None,
            not_before=schedule.get("start_time"),
            not_after=schedule.get("end_time"),
        )
    if isinstance(built, Closed):
        return built.reason
    if not built.is_open(now):
        return "outside_window"
    return None


def lease_ttl_seconds(
    *, granted_at: datetime, lease_expires_at: datetime, min_real_seconds: float, speed: float
) -> float:
    """How long (virtual seconds) a lease lasts from a grant or a renewal: its virtual TTL,
    or the allocator's floor in real seconds when the simulated clock runs faster."""
    return max((lease_expires_at - granted_at).total_seconds(), min_real_seconds * speed)


def renewal_due(
    *,
    status: str,
    placing: bool,
    since: datetime,
    renewed_at: datetime,
    ttl_seconds: float,
    now: datetime,
    max_call_seconds: float,
    grace_seconds: float,
    fraction: float,
) -> bool:
    """Whether the dialer renews a call's lease now.

    Only a call being placed or live is renewed, and only every ``fraction`` of the lease's
    TTL. A live call stops being renewed once it has run longer than any call may
    (``max_call_seconds`` plus ``grace_seconds`` after ``since``, when it was dialled): a call
    whose end is never reported then still loses its lease. A call this process is still
    placing (waiting on the provider) is renewed for as long as it waits.

    A lease that has already run out is never renewed: the allocator never revives one (its
    slot may be another call's by now), and a renewal recorded here would make this dialer
    trust a lease it no longer holds when it judges a stuck call again."""
    if status not in ("dialing", "active"):
        return False
    if ttl_seconds > 0 and (now - renewed_at).total_seconds() >= ttl_seconds:
        return False
    if not placing and (now - since).total_seconds() > max_call_seconds + grace_seconds:
        return False
    return (now - renewed_at).total_seconds() >= ttl_seconds * fraction
