"""Response examples for the OpenAPI document (shown at ``/docs``). Built with the same view
functions the endpoints use, so an example can never drift from what the API answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campaign_api.views import attempt_view, campaign_view, lead_view

_CREATED_AT = datetime(2027, 1, 28, 14, 22, 10, tzinfo=UTC)
_CAMPAIGN: dict[str, Any] = {
    "_id": "cmp_4Rv8sT1wXq2LmN0p",
    "name": "February Loan Renewal Outreach",
    "status": "scheduled",
    "script_id": "agt_7xK2pL9mNq4RsT1v",
    "language": "hi-IN",
    "total_contacts": 2,
    "max_attempts": 3,
    "retry_interval_minutes": 120,
    "retry_outcomes": ["no_answer", "busy", "failed"],
    "priority": "normal",
    "voicemail_action": "hangup",
    "calling_hours": {
        "start": "09:00",
        "end": "20:00",
        "use_campaign_timezone": False,
        "weekdays": None,
        "blackout_dates": [],
    },
    "schedule": {
        "start_time": "2027-02-01T09:00:00",
        "end_time": "2027-02-01T18:00:00",
        "timezone": "Asia/Kolkata",
    },
    "created_at": _CREATED_AT,
}
_RUNNING: dict[str, Any] = {
    **_CAMPAIGN,
    "status": "running",
    "started_at": datetime(2027, 2, 1, 3, 30, tzinfo=UTC),
    "calls_made": 3,
    "calls_connected": 2,
    "retry_calls": 1,
    "call_seconds": 214.0,
    "connected_seconds": 208.0,
    "disposition_summary": {"interested": 1, "callback_requested": 1, "no_answer": 1},
}

CAMPAIGN_CREATED = campaign_view(_CAMPAIGN)
CAMPAIGN_DETAIL = campaign_view(_RUNNING, rate=0.05)
CAMPAIGN_LIST = {"data": [CAMPAIGN_CREATED], "total": 1, "limit": 20, "offset": 0}

_LEAD: dict[str, Any] = {
    "_id": "tsk_9hT2kLm4NpQ7rS1w",
    "campaign_id": _CAMPAIGN["_id"],
    "status": "completed",
    "name": "Priya Sharma",
    "phones": ["+919876543210"],
    "current_phone": "+919876543210",
    "attempt": 2,
    "pass_number": 2,
    "last_disposition": "interested",
    "variables": {"LOAN_AMOUNT": "75000"},
}
_CALL: dict[str, Any] = {
    "_id": "cal_3Jk8LmN2pQ5rT7vW",
    "attempt": 2,
    "started_at": datetime(2027, 2, 1, 5, 30, tzinfo=UTC),
    "ended_at": datetime(2027, 2, 1, 5, 33, 28, tzinfo=UTC),
    "status": "completed",
    "disposition": "interested",
    "duration_seconds": 208.0,
    "provider": "simulator",
    "transcript": [
        {"role": "agent", "text": "Namaste Priya ji, I am calling about your loan renewal."},
        {"role": "user", "text": "Yes, please tell me more."},
    ],
    "recording_url": "https://recordings.example.com/cal_3Jk8LmN2pQ5rT7vW.wav",
    "analysis": {"disposition": "interested", "connected": True, "terminal": True, "turns": 6},
}
LEADS = {"data": [lead_view(_LEAD)], "total": 1, "limit": 100, "offset": 0}
LEAD_DETAIL = {**lead_view(_LEAD), "calls": [attempt_view(_CALL, rate=0.05)]}

CONTACTS_ADDED = {
    "campaign_id": _CAMPAIGN["_id"],
    "added": 2,
    "duplicates": 1,
    "opted_out": 1,
    "opted_out_phones": 0,
    "skipped": [{"field": "row 4.phone", "message": "+9112***** is not a valid phone number"}],
    "total_contacts": 4,
}
CONTACTS_REMOVED = {
    "campaign_id": _CAMPAIGN["_id"],
    "removed": 2,
    "not_found": 0,
    "already_called": 0,
    "details": {"not_found": [], "already_called": []},
    "total_contacts": 2,
}
