"""Public representations of campaigns, leads and call attempts. Pure: every figure comes from
counters kept by :mod:`campaign_api.projections`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from campaign_api.projections import day_key
from campaign_api.repository import Doc

ESCALATED = ("escalated",)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def metrics(doc: Doc, *, rate: float, today: datetime | None) -> dict[str, Any]:
    made = doc.get("calls_made", 0)
    connected = doc.get("calls_connected", 0)
    summary: dict[str, int] = doc.get("disposition_summary", {})
    positive = doc.get("positive_dispositions") or ["interested"]
    conversions = sum(summary.get(p, 0) for p in positive)
    escalations = sum(summary.get(p, 0) for p in ESCALATED)
    minutes = doc.get("call_seconds", 0.0) / 60
    out: dict[str, Any] = {
        "connect_rate": _ratio(connected, made),
        "conversion_rate": _ratio(conversions, connected),
        "conversions": conversions,
        "positive_dispositions": positive,
        "retry_rate": _ratio(doc.get("retry_calls", 0), made),
        "escalation_rate": _ratio(escalations, connected),
        "avg_connected_duration_seconds": round(doc.get("connected_seconds", 0.0) / connected, 1)
        if connected
        else 0.0,
        "call_minutes": round(minutes, 2),
        "per_minute_rate": rate,
        "cost": round(minutes * rate, 4),
        "provider_cost": round(doc.get("cost", 0.0), 4),
    }
    if today is not None:
        daily: dict[str, Any] = doc.get("daily", {})
        series = []
        for back in range(29, -1, -1):
            key = day_key(today - timedelta(days=back))
            d = daily.get(key, {})
            series.append(
                {
                    "date": key,
                    "calls": d.get("calls", 0),
                    "connected": d.get("connected", 0),
                    "minutes": round(d.get("seconds", 0.0) / 60, 2),
                    "conversions": sum(d.get("dispositions", {}).get(p, 0) for p in positive),
                }
            )
        out["daily"] = series
    return out


def campaign_view(doc: Doc, *, rate: float = 0.0, today: datetime | None = None) -> dict[str, Any]:
    """The public representation of a campaign (the reference API's fields and ours);
    ``today`` adds the 30-day series."""
    return {
        "id": doc["_id"],
        "type": doc.get("kind", "batch"),
        "name": doc["name"],
        "status": doc["status"],
        "status_reason": doc.get("status_reason"),
        "script_id": doc["script_id"],
        "language": doc["language"],
        "total_contacts": doc["total_contacts"],
        "duplicates_merged": doc.get("duplicates_merged", 0),
        "opted_out_excluded": doc.get("opted_out_excluded", 0),
        "opted_out_phones_dropped": doc.get("opted_out_phones_dropped", 0),
        "max_attempts": doc["max_attempts"],
        "retry_interval_minutes": doc["retry_interval_minutes"],
        "retry_outcomes": doc["retry_outcomes"],
        "priority": doc["priority"],
        "max_slots": doc.get("max_slots"),
        "from": doc.get("from_number"),
        "from_pool": doc.get("from_pool"),
        "voicemail_action": doc["voicemail_action"],
        "calling_hours": doc["calling_hours"],
        "schedule": doc.get("schedule"),
        "created_at": iso(doc["created_at"]),
        "started_at": iso(doc.get("started_at")),
        "ended_at": iso(doc.get("ended_at")),
        "calls_made": doc.get("calls_made", 0),
        "calls_connected": doc.get("calls_connected", 0),
        "disposition_summary": doc.get("disposition_summary", {}),
        "metrics": metrics(doc, rate=rate, today=today),
    }


def lead_view(d: Doc) -> dict[str, Any]:
    return {
        "id": d["_id"],
        "campaign_id": d["campaign_id"],
        "status": d.get("status"),
        "name": d.get("name", ""),
        "phones": d.get("phones", []),
        "last_disposition": d.get("last_disposition"),
        "current_phone": d.get("current_phone"),
        "phone_index": d.get("phone_index", 0),
        "pass": d.get("pass_number", 1),
        "attempts": d.get("attempt", 0),
        "next_attempt_at": iso(d.get("next_attempt_at")),
        "reason": d.get("reason"),
        "variables": d.get("variables", {}),
    }


def attempt_view(c: Doc, *, rate: float) -> dict[str, Any]:
    duration = c.get("duration_seconds", 0.0)
    analysis = dict(c.get("analysis") or {})
    if analysis.get("callback_at"):
        analysis["callback_at"] = iso(analysis["callback_at"])
    return {
        "call_id": c["_id"],
        "attempt": c.get("attempt"),
        "phone_index": c.get("phone_index", 0),
        "started_at": iso(c.get("started_at")),
        "ended_at": iso(c.get("ended_at")),
        "status": c.get("status", "in_progress"),
        "disposition": c.get("disposition"),
        "duration_seconds": duration,
        "cost": round(duration / 60 * rate, 4),
        "provider_cost": c.get("provider_cost", 0.0),
        "provider": c.get("provider"),
        "transcript": c.get("transcript", []),
        "recording_url": c.get("recording_url"),
        "analysis": analysis or None,
    }
