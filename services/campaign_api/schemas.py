"""HTTP request and response models (the public API contract)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outbound_core.windows import parse_hhmm

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BCP47 = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class ScheduleIn(BaseModel):
    start_time: datetime | None = Field(None, examples=["2027-02-01T09:00:00"])
    end_time: datetime | None = Field(None, examples=["2027-02-01T18:00:00"])
    timezone: str = Field("UTC", examples=["Asia/Kolkata"])


class CallingHoursIn(BaseModel):
    start: str = Field("09:00", examples=["09:00"])
    end: str = Field("20:00", examples=["20:00"])
    use_campaign_timezone: bool = False
    weekdays: list[int | str] | None = Field(
        None,
        description="Allowed local weekdays (0 = Monday … 6 = Sunday, or mon…sun); "
        "judged on the day the daily window opens. Omit for every day.",
        examples=[["mon", "tue", "wed", "thu", "fri"]],
    )
    blackout_dates: list[str] = Field(
        default_factory=list,
        description="Local dates (YYYY-MM-DD) with no calling window (holidays).",
        examples=[["2026-12-25"]],
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        t = parse_hhmm(v)
        return f"{t.hour:02d}:{t.minute:02d}"

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: list[int | str] | None) -> list[int] | None:
        if v is None:
            return None
        out: set[int] = set()
        for item in v:
            if isinstance(item, str) and item.strip().isdigit():
                item = int(item)
            if isinstance(item, int) and 0 <= item <= 6:
                out.add(item)
            elif isinstance(item, str) and item.strip().lower()[:3] in _WEEKDAYS:
                out.add(_WEEKDAYS.index(item.strip().lower()[:3]))
            else:
                raise ValueError(f"{item!r} is not a weekday (0–6 or mon…sun)")
        if not out:
            raise ValueError("weekdays must name at least one day (omit it for every day)")
        return sorted(out)

    @field_validator("blackout_dates")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        try:
            return sorted({date.fromisoformat(d).isoformat() for d in v})
        except ValueError as exc:
            raise ValueError(f"blackout_dates must be YYYY-MM-DD dates: {exc}") from exc


class CampaignIn(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "February Loan Renewal Outreach",
                    "script_id": "agt_…",
                    "language": "hi-IN",
                    "contacts": [
                        {"phone": "+919876543210", "name": "Priya Sharma", "loan_amount": "75000"}
                    ],
                    "schedule": {
                        "start_time": "2027-02-01T09:00:00",
                        "end_time": "2027-02-01T18:00:00",
                        "timezone": "Asia/Kolkata",
                    },
                    "max_attempts": 3,
                    "retry_interval_minutes": 120,
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=255)
    script_id: str = Field(description="Voice agent (script) id, from /v1/agents.")
    language: str = Field(pattern=_BCP47, examples=["hi-IN", "en-US"])
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    schedule: ScheduleIn | None = None
    calling_hours: CallingHoursIn = CallingHoursIn()
    max_attempts: int = Field(1, ge=1, le=5)
    retry_interval_minutes: int = Field(240, ge=1, le=60 * 24 * 30)
    retry_outcomes: list[str] = Field(default_factory=lambda: ["no_answer", "busy", "failed"])
    priority: Literal["low", "normal", "high"] = "normal"
    max_slots: int | None = Field(None, ge=1, description="Campaign concurrency cap.")
    from_number: str | None = Field(
        None, alias="from", description="Caller id: one of /v1/numbers (E.164)."
    )
    from_pool: str | None = Field(
        None, max_length=64, description="Or a pool of /v1/numbers to call from."
    )
    voicemail_action: Literal["hangup", "leave_message"] = "hangup"
    default_region: str | None = Field(
        None, min_length=2, max_length=2, description="Region for national-format numbers."
    )
    positive_dispositions: list[str] = Field(
        default_factory=lambda: ["interested"],
        description="Dispositions that count as a conversion in the campaign's metrics.",
    )


class CampaignAction(BaseModel):
    action: Literal["start", "pause", "resume", "stop", "archive", "restart"]
    reason: str | None = None


SETTINGS_FIELDS = (
    "schedule",
    "calling_hours",
    "max_attempts",
    "retry_interval_minutes",
    "retry_outcomes",
    "priority",
    "max_slots",
)


class CampaignPatch(BaseModel):
    """Either an ``action`` (start, pause, resume, stop/archive, restart) or new settings for
    a campaign that is not completed or stopped; settings apply to tasks not yet dialled."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"action": "pause"},
                {"calling_hours": {"start": "10:00", "end": "18:00"}, "max_attempts": 2},
            ]
        }
    )
    action: Literal["start", "pause", "resume", "stop", "archive", "restart"] | None = None
    reason: str | None = None
    schedule: ScheduleIn | None = None
    calling_hours: CallingHoursIn | None = None
    max_attempts: int | None = Field(None, ge=1, le=5)
    retry_interval_minutes: int | None = Field(None, ge=1, le=60 * 24 * 30)
    retry_outcomes: list[str] | None = None
    priority: Literal["low", "normal", "high"] | None = None
    max_slots: int | None = Field(None, ge=1)

    def settings(self) -> dict[str, Any]:
        """The settings fields the client sent (explicit nulls included)."""
        return {k: getattr(self, k) for k in SETTINGS_FIELDS if k in self.model_fields_set}


class AgentIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    language: str = Field(pattern=_BCP47)
    greeting: str = Field("", examples=["Hi {{NAME}}, this is Maya from Acme."])
    system_prompt: str = ""
    voicemail_message: str = ""


class ContactsRemove(BaseModel):
    phones: list[str] = Field(min_length=1, max_length=10_000, examples=[["+919876543210"]])
    default_region: str | None = Field(None, min_length=2, max_length=2)
