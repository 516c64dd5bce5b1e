"""The event contract between services.

Every event travels in one :class:`Envelope`. ``type`` names the payload model registered in
:data:`EVENT_TYPES`; ``version`` is that model's version. Payload models are frozen and ignore
unknown fields, so adding a field is not a breaking change; a breaking change gets a new
version and both stay registered until the old one is gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from outbound_core.ids import new_id, stable_id

# ---------------------------------------------------------------------------------------------
# shared value types


class Payload(BaseModel):
    """Base of every event payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


Priority = Literal["low", "normal", "high"]
PRIORITY_RANK: dict[str, int] = {"low": 0, "normal": 1, "high": 2}


class Schedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    start_time: datetime | None = Field(None, description="Aware UTC instant the campaign starts.")
    end_time: datetime | None = Field(None, description="Aware UTC instant the campaign ends.")
    timezone: str = Field("UTC", description="IANA timezone the schedule was given in.")


class CallingHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    start: str = Field("09:00", description="Local start of the daily window, HH:MM.")
    end: str = Field("20:00", description="Local end of the daily window, HH:MM (exclusive).")
    use_campaign_timezone: bool = Field(
        False, description="Apply hours in the schedule's timezone instead of the recipient's."
    )
    weekdays: list[int] | None = Field(
        None,
        description="Allowed local weekdays of the day a window opens (0 = Monday); None = all.",
        examples=[[0, 1, 2, 3, 4]],
    )
    blackout_dates: list[str] = Field(
        default_factory=list,
        description="Local dates (YYYY-MM-DD) on which no window opens (holidays).",
        examples=[["2026-12-25"]],
    )


class AgentSnapshot(BaseModel):
    """The voice agent (script) as it was when the campaign was created."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    agent_id: str
    name: str
    language: str
    greeting: str = ""
    system_prompt: str = ""
    voicemail_message: str = ""


class TaskConfig(BaseModel):
    """A realtime task's own configuration (the effective one, after defaults): the planner and
    the dialer use it instead of the campaign's settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    hours_start: str = Field("00:00", description="Local start of the daily window, HH:MM.")
    hours_end: str = Field("00:00", description="Local end (exclusive), HH:MM; equal = all day.")
    timezone: str | None = Field(
        None, description="IANA zone of the hours; None = the recipient's zone(s)."
    )
    start_after: datetime | None = Field(None, description="No attempt before this instant.")
    end_after: datetime | None = Field(None, description="No attempt from this instant on.")
    priorities: list[int] = Field(
        default_factory=list, description="Priority of each attempt; higher runs first."
    )
    retries: int = Field(1, ge=1, le=10, description="Total attempts.")
    intervals_ms: list[int] = Field(
        default_factory=list, description="Gap before attempt n+1 (ms), retries-1 entries."
    )
    retry_outcomes: list[str] = Field(
        default_factory=lambda: ["no_answer", "busy", "failed"],
        description="Outcomes that are retried (no answer, busy, failed always are).",
    )
    from_number: str | None = Field(None, description="Caller id (E.164).")
    agent: AgentSnapshot | None = Field(None, description="The task's agent, if not the default.")


class ContactSeed(BaseModel):
    """One contact of a campaign, as the planner turns it into a task."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    task_id: str = Field(description="Task (and lead) id assigned by campaign-api.")
    phones: list[str] = Field(min_length=1, max_length=10, description="E.164 numbers, in order.")
    name: str = ""
    timezone: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    sim_outcomes: list[str] = Field(
        default_factory=list, description="Simulator script: one outcome per attempt."
    )
    task_ref: str | None = Field(
        None, description="Realtime: the producer's idempotency key for this task."
    )
    config: TaskConfig | None = Field(
        None, description="Realtime: the task's own configuration (None for batch contacts)."
    )


class DialWindow(BaseModel):
    """A realtime task's own calling window, for the dialer's last-moment guard."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    hours_start: str
    hours_end: str
    timezone: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None


class DialRequest(BaseModel):
    """What the dialer needs to place one attempt; carried from planner to dialer."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    phone: str
    phone_index: int = 0
    pass_number: int = 1
    name: str = ""
    timezone: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    sim_outcomes: list[str] = Field(default_factory=list)
    from_number: str | None = Field(
        None, description="Caller number chosen by the allocator from the campaign's pool."
    )
    agent: AgentSnapshot | None = Field(
        None, description="Realtime: the task's own agent (else the campaign's)."
    )
    window: DialWindow | None = Field(
        None, description="Realtime: the task's own calling window (else the campaign's)."
    )


# ---------------------------------------------------------------------------------------------
# campaigns.v1


class CampaignCreated(Payload):
    TYPE: ClassVar[str] = "campaign.created"
    campaign_id: str
    name: str
    kind: Literal["batch", "realtime"] = "batch"
    status: str
    agent: AgentSnapshot
    language: str
    schedule: Schedule | None = None
    calling_hours: CallingHours = CallingHours()
    max_attempts: int = 1
    retry_interval_minutes: int = 240
    retry_outcomes: list[str] = Field(default_factory=lambda: ["no_answer", "busy", "failed"])
    priority: Priority = "normal"
    max_slots: int | None = Field(None, description="Campaign slot cap; None = workspace limit.")
    from_number: str | None = None
    caller_numbers: list[str] = Field(
        default_factory=list,
        description="Caller ids to call from: the `from` number, or every number of the "
        "campaign's pool (`from_pool`) when it was created; empty = the provider's default.",
    )
    caller_cps: dict[str, float] = Field(
        default_factory=dict,
        description="Calls-per-second limit of each caller id that has one (from /v1/numbers).",
    )
    voicemail_action: Literal["hangup", "leave_message"] = "hangup"
    total_contacts: int = 0


class ContactsAdded(Payload):
    TYPE: ClassVar[str] = "campaign.contacts_added"
    campaign_id: str
    contacts: list[ContactSeed]
    total_contacts: int = Field(description="Campaign total after this batch.")


class ContactsRemoved(Payload):
    """Contacts taken out of a campaign before they were called; the planner archives each
    task that is still waiting and has never been called (a called one keeps its data)."""

    TYPE: ClassVar[str] = "campaign.contacts_removed"
    campaign_id: str
    task_ids: list[str] = Field(description="Tasks (leads) to archive if still uncalled.")
    total_contacts: int = Field(description="Campaign total after the removal.")


class TasksControlled(Payload):
    """Pause, resume or archive single tasks of a campaign (``PATCH /v1/tasks/{id}``)."""

    TYPE: ClassVar[str] = "campaign.tasks_controlled"
    campaign_id: str
    task_ids: list[str]
    action: Literal["pause", "resume", "archive"]


class CampaignStatusChanged(Payload):
    TYPE: ClassVar[str] = "campaign.status_changed"
    campaign_id: str
    status: Literal["scheduled", "running", "paused", "completed", "stopped"]
    previous: str | None = None
    action: str | None = Field(None, description="The API action that caused it, if any.")
    reason: str | None = None


class CampaignUpdated(Payload):
    """New settings of a campaign that is not finished: the full set, not a diff, so that a
    consumer applies it idempotently. The planner applies them to tasks not yet dialled."""

    TYPE: ClassVar[str] = "campaign.updated"
    campaign_id: str
    changed: list[str] = Field(default_factory=list, description="Settings that changed.")
    schedule: Schedule | None = None
    calling_hours: CallingHours = CallingHours()
    max_attempts: int = 1
    retry_interval_minutes: int = 240
    retry_outcomes: list[str] = Field(default_factory=lambda: ["no_answer", "busy", "failed"])
    priority: Priority = "normal"
    max_slots: int | None = None


# ---------------------------------------------------------------------------------------------
# allocator.v1 (keyed by org_id)


class TaskQueued(Payload):
    TYPE: ClassVar[str] = "task.queued"
    task_id: str
    campaign_id: str
    attempt: int
    campaign_priority: Priority = "normal"
    attempt_priority: int = Field(0, description="Lower runs first (pass number for batch).")
    callback: bool = False
    eligible_at: datetime
    max_slots: int | None = None
    caller_numbers: list[str] = Field(
        default_factory=list,
        description="The campaign's caller-number pool; the allocator picks one per call (round "
        "robin, within each number's calls-per-second limit) and sets dial.from_number.",
    )
    caller_cps: dict[str, float] = Field(
        default_factory=dict,
        description="Calls-per-second limit of pool numbers (from /v1/numbers); the org's slot "
        "settings (`number_cps`) take precedence.",
    )
    dial: DialRequest


class TaskWithdrawn(Payload):
    TYPE: ClassVar[str] = "task.withdrawn"
    task_id: str
    campaign_id: str
    attempt: int | None = Field(None, description="None withdraws whatever attempt is queued.")
    reason: str


class CampaignWithdrawn(Payload):
    TYPE: ClassVar[str] = "campaign.withdrawn"
    campaign_id: str
    reason: str


class WorkspaceSlotsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    workspace_id: str
    allocation: int = Field(ge=0, description="Slots reserved for the workspace.")
    mode: Literal["hard", "soft"] = Field(
        "soft", description="hard: never more calls than the allocation; soft: may borrow idle."
    )


class SlotsConfigured(Payload):
    """An org's complete slot settings (not a delta), from campaign-api."""

    TYPE: ClassVar[str] = "slots.configured"
    revision: int = Field(description="Grows with every change; an older revision is ignored.")
    total_slots: int | None = Field(None, description="Org total; None = allocator default.")
    workspaces: list[WorkspaceSlotsConfig] = Field(default_factory=list)
    number_cps: dict[str, float] = Field(
        default_factory=dict, description="Calls-per-second limit per caller number (E.164)."
    )
    default_cps: float | None = Field(
        None, description="Calls-per-second limit of caller numbers not listed; None = none."
    )


class LeaseReleased(Payload):
    TYPE: ClassVar[str] = "lease.released"
    lease_id: str
    task_id: str
    attempt: int
    call_id: str | None = None


class LeaseRenewed(Payload):
    """The dialer is still placing, or still has live, the call of this lease: the allocator
    extends it by its TTL, only while the lease is active and held for this (task, attempt)."""

    TYPE: ClassVar[str] = "lease.renewed"
    lease_id: str
    task_id: str
    attempt: int
    call_id: str
    renewed_at: datetime = Field(description="The dialer's (virtual) time of the renewal.")


# ---------------------------------------------------------------------------------------------
# dispatch.v1 (keyed by task_id)


class TaskDispatched(Payload):
    TYPE: ClassVar[str] = "task.dispatched"
    lease_id: str
    task_id: str
    campaign_id: str
    attempt: int
    lease_expires_at: datetime
    dial: DialRequest


class LeaseExpired(Payload):
    TYPE: ClassVar[str] = "lease.expired"
    lease_id: str
    task_id: str
    campaign_id: str
    attempt: int
    granted_at: datetime | None = Field(
        None, description="When the lease was granted: when its attempt began."
    )


# ---------------------------------------------------------------------------------------------
# calls.v1 (keyed by task_id)

CallStatus = Literal["completed", "no_answer", "busy", "failed", "voicemail"]


class CallStarted(Payload):
    TYPE: ClassVar[str] = "call.started"
    call_id: str
    task_id: str
    campaign_id: str
    attempt: int
    phone_index: int = 0
    provider: str
    started_at: datetime


class CallEnded(Payload):
    TYPE: ClassVar[str] = "call.ended"
    call_id: str
    task_id: str
    campaign_id: str
    attempt: int
    phone_index: int = 0
    phone: str | None = Field(None, description="E.164 number dialled (internal topic).")
    provider: str
    status: CallStatus
    outcome: str | None = Field(None, description="Provider's outcome label, if any.")
    callback_at: datetime | None = None
    duration_seconds: float = 0.0
    turns: int = 0
    transcript: list[dict[str, str]] = Field(default_factory=list)
    recording_url: str | None = None
    cost: float = 0.0
    started_at: datetime
    ended_at: datetime


class CallAborted(Payload):
    """The dialer refused to dial at the last moment (a guard failed); nothing was dialled."""

    TYPE: ClassVar[str] = "call.aborted"
    task_id: str
    campaign_id: str
    attempt: int
    reason: str


# ---------------------------------------------------------------------------------------------
# dispositions.v1 (keyed by task_id)


class DispositionRecorded(Payload):
    TYPE: ClassVar[str] = "disposition.recorded"
    call_id: str
    task_id: str
    campaign_id: str
    attempt: int
    disposition: str
    phone_index: int | None = Field(None, description="Which of the contact's phones was called.")
    raw_outcome: str | None = None
    connected: bool = False
    terminal: bool = False
    custom: bool = Field(
        False,
        description="A custom label (defined per workspace); retried when not terminal.",
    )
    callback_at: datetime | None = None
    duration_seconds: float = 0.0
    turns: int = 0


class CampaignPauseRequested(Payload):
    """A service asks campaign-api to pause a running campaign (e.g. the circuit breaker)."""

    TYPE: ClassVar[str] = "campaign.pause_requested"
    campaign_id: str
    reason: str = Field(description="Machine-readable reason, e.g. circuit_breaker.")
    detail: str | None = Field(None, description="Human-readable explanation.")


class CampaignResumeRequested(Payload):
    """A service asks campaign-api to resume a campaign it paused itself (e.g. the circuit
    breaker after its cool-down): only a campaign still paused for ``reason`` resumes."""

    TYPE: ClassVar[str] = "campaign.resume_requested"
    campaign_id: str
    reason: str = Field(description="The pause reason this resume ends, e.g. circuit_breaker.")
    detail: str | None = Field(None, description="Human-readable explanation.")


# ---------------------------------------------------------------------------------------------
# suppressions.v1 (keyed by org_id)


class SuppressionAdded(Payload):
    """A number joined the org's suppression (opt-out / do-not-call) list."""

    TYPE: ClassVar[str] = "suppression.added"
    phone: str = Field(description="E.164 number; never dialled again by any campaign of the org.")
    reason: str = Field(description="Why: opt_out (a call's disposition), api, …")
    source_call_id: str | None = None


class SuppressionRemoved(Payload):
    TYPE: ClassVar[str] = "suppression.removed"
    phone: str


# ---------------------------------------------------------------------------------------------
# leads.v1


LeadStatus = Literal[
    "pending",
    "queued",
    "dialing",
    "waiting_retry",
    "completed",
    "not_reachable",
    "archived",
    "blocked",
    "paused",
]


class LeadUpdated(Payload):
    TYPE: ClassVar[str] = "lead.updated"
    task_id: str
    campaign_id: str
    seq: int = Field(description="Monotonic per lead; a consumer ignores a seq it has passed.")
    status: LeadStatus
    last_disposition: str | None = None
    current_phone: str | None = None
    phone_index: int = 0
    pass_number: int = 1
    attempt: int = 0
    next_attempt_at: datetime | None = None
    reason: str | None = None
    name: str = ""
    variables: dict[str, str] = Field(default_factory=dict)


class CampaignDrained(Payload):
    """Every task of the campaign reached a terminal state."""

    TYPE: ClassVar[str] = "campaign.drained"
    campaign_id: str
    total_tasks: int
    # calls whose disposition the planner applied: campaign-api completes the campaign once
    # its counters show as many (they come on another topic and may trail this event)
    dispositions: int | None = None


# ---------------------------------------------------------------------------------------------
# tasks.submit.v1 / tasks.status.v1 (realtime tasks)


# The reference document's sample realtime task (accepted as it is; the examples of the API
# and of the AsyncAPI document).
SAMPLE_TASK: dict[str, Any] = {
    "phone": "+919876543210",
    "from": "+918012345678",
    "agent": "agt_3kQ9xLm2Vb7Hd1Ra",
    "start": 1000,
    "end": 1800,
    "timezone": "Asia/Kolkata",
    "startAfter": 1748629800000,
    "endAfter": 1748716200000,
    "priorities": [100, 50],
    "retries": 2,
    "intervals": [180000],
    "retryOutcomes": ["voicemail"],
    "context": {"name": "Tarun"},
    "campaign": "cmp_7fQ2xY9aB3kL0pWe",
    "task_ref": "lead-8841",
}


class TaskSubmit(Payload):
    """A realtime task as a producer submits it (the same body as ``POST /v1/tasks``), inside
    the common envelope. Producers that cannot wrap send the bare body instead, with
    ``workspace_id`` and the credential as fields of it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    TYPE: ClassVar[str] = "task.submit"
    phone: str = Field(examples=["+919876543210"])
    campaign: str = Field(examples=["cmp_7fQ2xY9aB3kL0pWe"])
    task_ref: str | None = Field(
        None, description="Idempotency key; defaults to the Kafka message key."
    )
    workspace_id: str | None = Field(None, description="Bare form only: the target workspace.")
    api_key: str | None = Field(None, description="An API key or producer token of the workspace.")
    from_: str | None = Field(None, alias="from", examples=["+918012345678"])
    agent: str | None = Field(None, examples=["agt_…"])
    start: int | str | None = Field(None, description="Daily start, HHMM.", examples=[1000])
    end: int | str | None = Field(None, description="Daily end, HHMM.", examples=[1800])
    timezone: str | None = Field(None, examples=["Asia/Kolkata"])
    startAfter: int | None = Field(None, description="Epoch ms.", examples=[1748629800000])
    endAfter: int | None = Field(None, description="Epoch ms.", examples=[1748716200000])
    priorities: list[int] | None = Field(None, examples=[[100, 50]])
    retries: int | None = Field(None, description="Total attempts.", examples=[2])
    intervals: list[int] | None = Field(None, description="ms, retries-1.", examples=[[180000]])
    retryOutcomes: list[str] | None = Field(None, examples=[["voicemail"]])
    context: dict[str, Any] | None = Field(None, examples=[{"name": "Tarun"}])


# a task's lead states, plus what campaign-api decided on submission
TaskState = Literal["accepted", "rejected", LeadStatus]


class TaskStatusChanged(Payload):
    """What became of a submitted realtime task: accepted or rejected (from campaign-api),
    then every state change (from task-planner). Keyed by the producer's ``task_ref``."""

    TYPE: ClassVar[str] = "task.status"
    task_ref: str | None = Field(None, description="The producer's idempotency key.")
    task_id: str | None = Field(None, description="None when rejected before it was a task.")
    campaign_id: str | None = None
    status: TaskState
    reason: str | None = Field(
        None, description="Machine-readable: e.g. invalid_phone, opted_out, duplicate."
    )
    detail: str | None = None
    attempt: int = 0
    last_disposition: str | None = None
    next_attempt_at: datetime | None = None
    duplicate: bool = Field(False, description="Accepted earlier; this submission was merged.")


# ---------------------------------------------------------------------------------------------
# deadletter.v1


class DeadLettered(Payload):
    TYPE: ClassVar[str] = "deadletter"
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    consumer: str
    reason: str
    error: str
    raw: str = Field(description="The original message body (UTF-8, replaced if not).")


EVENT_TYPES: dict[str, type[Payload]] = {
    m.TYPE: m
    for m in (
        CampaignCreated,
        ContactsAdded,
        ContactsRemoved,
        CampaignStatusChanged,
        CampaignUpdated,
        TasksControlled,
        TaskQueued,
        TaskWithdrawn,
        CampaignWithdrawn,
        SlotsConfigured,
        LeaseReleased,
        LeaseRenewed,
        TaskDispatched,
        LeaseExpired,
        CallStarted,
        CallEnded,
        CallAborted,
        DispositionRecorded,
        CampaignPauseRequested,
        CampaignResumeRequested,
        SuppressionAdded,
        SuppressionRemoved,
        LeadUpdated,
        CampaignDrained,
        TaskSubmit,
        TaskStatusChanged,
        DeadLettered,
    )
}


# ---------------------------------------------------------------------------------------------
# envelope


class Envelope(BaseModel):
    """The common wrapper of every event on every topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str = Field(description="Unique event id (evt_…); consumers dedupe on it.")
    type: str = Field(description="Payload type, e.g. campaign.created.")
    version: int = 1
    occurred_at: datetime
    producer: str
    org_id: str
    workspace_id: str
    correlation_id: str
    causation_id: str | None = None
    data: dict[str, Any]

    def payload(self) -> Payload:
        """Parse ``data`` into its registered model (raises on unknown type or bad data)."""
        model = EVENT_TYPES.get(self.type)
        if model is None:
            raise UnknownEventType(self.type)
        return model.model_validate(self.data)


class UnknownEventType(ValueError):
    pass


Tenancy = Annotated[tuple[str, str], "org_id, workspace_id"]


def make_envelope(
    payload: Payload,
    *,
    producer: str,
    org_id: str,
    workspace_id: str,
    occurred_at: datetime,
    correlation_id: str | None = None,
    causation: Envelope | None = None,
    event_id: str | None = None,
    dedupe_parts: tuple[object, ...] | None = None,
) -> Envelope:
    """Wrap a payload. ``dedupe_parts`` gives a stable event id, so that a handler replayed after
    a crash emits the same event id again and downstream dedupe sees one event."""
    if event_id is None:
        event_id = stable_id("evt", payload.TYPE, *dedupe_parts) if dedupe_parts else new_id("evt")
    corr = correlation_id or (causation.correlation_id if causation else event_id)
    return Envelope(
        id=event_id,
        type=payload.TYPE,
        version=payload.VERSION,
        occurred_at=occurred_at,
        producer=producer,
        org_id=org_id,
        workspace_id=workspace_id,
        correlation_id=corr,
        causation_id=causation.id if causation else None,
        data=payload.model_dump(mode="json"),
    )
