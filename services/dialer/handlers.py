"""Dialer subscribers and the provider's end callback. Thin: idempotency, domain, publish."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dialer.campaigns import CampaignProjection
from dialer.domain import abort_reason, contact_variables, lease_ttl_seconds, render_template
from dialer.metrics import CALLS_ABORTED, CALLS_ENDED, CALLS_PLACED, DISPATCH_SECONDS
from dialer.pool import DispatchPool
from dialer.providers.base import CallResult, DialOrder, ProviderError, VoiceProvider
from dialer.providers.http import GatewayCallback
from dialer.repository import CallRepository, SuppressionRepository
from outbound_core.clock import Clock, utc
from outbound_core.events import (
    CallAborted,
    CallEnded,
    CallStarted,
    CampaignCreated,
    CampaignStatusChanged,
    CampaignUpdated,
    DialWindow,
    Envelope,
    LeaseExpired,
    LeaseReleased,
    Payload,
    SuppressionAdded,
    SuppressionRemoved,
    TaskDispatched,
)
from outbound_core.ids import stable_id
from outbound_core.kafka import EventBus
from outbound_core.phones import mask_phone
from outbound_core.topics import ALLOCATOR, CALLS, Topic

# refusals that may only mean the dialer's view of the campaign trails the dispatch
BEHIND = frozenset({"campaign_unknown", "campaign_scheduled"})

log = structlog.get_logger(__name__)


class DialerHandlers:
    def __init__(
        self,
        *,
        calls: CallRepository,
        campaigns: CampaignProjection,
        provider: VoiceProvider,
        bus: EventBus,
        clock: Clock,
        suppressions: SuppressionRepository,
        check_window: bool = True,
        lease_min_real_seconds: float = 0.0,
        pool: DispatchPool | None = None,
        campaign_catch_up_seconds: float = 5.0,
    ) -> None:
        self.pool = pool
        self.campaign_catch_up_seconds = campaign_catch_up_seconds
        self.placing: set[str] = set()  # calls this process is waiting on the provider for
        self.suppressions = suppressions
        self.lease_min_real_seconds = lease_min_real_seconds
        self.calls = calls
        self.campaigns = campaigns
        self.provider = provider
        self.bus = bus
        self.clock = clock
        self.check_window = check_window

    # -- campaigns.v1 ---------------------------------------------------------------------

    async def on_campaign_created(self, env: Envelope, c: CampaignCreated) -> None:
        await self.campaigns.created(env, c)

    async def on_campaign_status_changed(self, env: Envelope, c: CampaignStatusChanged) -> None:
        await self.campaigns.status_changed(
            campaign_id=c.campaign_id, status=c.status, at=env.occurred_at
        )

    async def on_campaign_updated(self, env: Envelope, c: CampaignUpdated) -> None:
        # The last-moment guard must judge dispatches by the hours the planner now uses.
        await self.campaigns.updated(c)

    # -- dispatch.v1 ----------------------------------------------------------------------

    async def on_task_dispatched(self, env: Envelope, d: TaskDispatched) -> None:
        call_id = stable_id("call", d.task_id, d.attempt)
        if self.pool is None:
            await self._dispatch(env, d, call_id)
        else:
            await self.pool.submit((d.task_id, d.attempt), call_id, self._dispatch(env, d, call_id))

    async def _dispatch(self, env: Envelope, d: TaskDispatched, call_id: str) -> None:
        log_ = log.bind(
            call_id=call_id, task_id=d.task_id, attempt=d.attempt, phone=mask_phone(d.dial.phone)
        )
        # Four independent reads, in one round trip's time instead of four.
        existing, aborted, campaign, suppressed = await asyncio.gather(
            self.calls.get(call_id=call_id),
            self.calls.get_abort(lease_id=d.lease_id),
            self.campaigns.current(d.campaign_id),
            self.suppressions.is_suppressed(org_id=env.org_id, phone=d.dial.phone),
        )
        if existing is not None:
            if existing.get("lease_id") != d.lease_id:
                # This attempt was placed under another lease: never dial it twice, and give
                # the new slot back.
                log_.warning("attempt already has a call; releasing the new lease")
                await self._release(env, d, call_id=None)
            elif existing["status"] == "dialing":
                # Recorded, then the dialer died before the network confirmed it. Judge it
                # again: meanwhile the window may have closed, the number opted out or the
                # lease expired (and its slot gone to another call).
                reason = self._refusal(env, d, campaign, suppressed=suppressed, renewed=existing)
                if reason is not None:
                    await self._abandon(existing, reason)
                    log_.info("recorded call not resumed", reason=reason)
                    await self._publish_abort(env, d, reason)
                    return
                log_.info("resuming a call recorded but not confirmed dialled")
                await self._place(existing, causation=env)
            else:
                # Dispatched again: the allocator's answer to a planner that still waits for
                # this attempt (the broker lost what followed), or a redelivery after the dialer
                # stopped between storing the end and publishing it. Tell its outcome again,
                # same event ids, so whoever had it ignores it.
                await self._repeat_outcome(env, d, existing)
            return
        if aborted is not None:
            await self._publish_abort(env, d, aborted["reason"])  # repeat: same event ids
            return
        reason = self._refusal(env, d, campaign, suppressed=suppressed)
        if reason in BEHIND or campaign is None:
            campaign = await self._caught_up(d.campaign_id)
            reason = self._refusal(env, d, campaign, suppressed=suppressed)
        if reason is not None or campaign is None:
            reason = reason or "campaign_unknown"
            if await self.calls.record_abort(
                lease_id=d.lease_id,
                doc={
                    "task_id": d.task_id,
                    "attempt": d.attempt,
                    "campaign_id": d.campaign_id,
                    "reason": reason,
                    "at": self.clock.now(),
                    "org_id": env.org_id,
                    "workspace_id": env.workspace_id,
                },
            ):
                CALLS_ABORTED.labels(reason).inc()
            log_.info("dispatch aborted", reason=reason)
            await self._publish_abort(env, d, reason)
            return
        doc = self._call_doc(env, d, call_id, campaign)
        if not await self.calls.insert(doc=doc):
            return  # a concurrent delivery recorded it first and dials it
        await self._place(doc, causation=env)

    async def _caught_up(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign once this dialer's view of it shows it started, or as it is after
        ``campaign_catch_up_seconds``. A dispatch exists only because the planner saw the
        campaign running; a view that says unknown or scheduled has not caught up with the
        campaign's start yet (it comes on campaigns.v1, the dispatch on dispatch.v1), and
        refusing on it would cost the attempt its slot and a turn of the queue."""
        deadline = time.monotonic() + self.campaign_catch_up_seconds
        delay = 0.05
        while True:
            campaign = await self.campaigns.current(campaign_id)
            behind = campaign is None or campaign.get("status") == "scheduled"
            if not behind or time.monotonic() >= deadline:
                return campaign
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)

    def _refusal(
        self,
        env: Envelope,
        d: TaskDispatched,
        campaign: dict[str, Any] | None,
        *,
        suppressed: bool,
        renewed: dict[str, Any] | None = None,
    ) -> str | None:
        """Why this dispatch must not be dialled now (the last-moment guard), or None.
        ``campaign`` and ``suppressed`` are read when the dispatch is handled; ``renewed``: the
        call recorded for it, whose lease this dialer may have renewed."""
        deadline = self._lease_deadline(env, d)
        if renewed is not None and renewed.get("lease_renewed_at") is not None:
            deadline = max(deadline, renewed_until(renewed))
        return self._guard(
            campaign,
            phone=d.dial.phone,
            contact_timezone=d.dial.timezone,
            window=d.dial.window,
            lease_deadline=deadline,
            suppressed=suppressed,
        )

    def _guard(
        self,
        campaign: dict[str, Any] | None,
        *,
        phone: str,
        contact_timezone: str | None,
        window: DialWindow | None,
        lease_deadline: datetime,
        suppressed: bool,
    ) -> str | None:
        reason = abort_reason(
            campaign=campaign,
            phone=phone,
            contact_timezone=contact_timezone,
            now=self.clock.now(),
            lease_expires_at=lease_deadline,
            check_window=self.check_window,
            window=window,
        )
        if reason is None and suppressed:
            reason = "opted_out"  # the org's suppression list: never dialled again
        return reason

    def _lease_deadline(self, env: Envelope, d: TaskDispatched) -> datetime:
        """The allocator never expires a lease sooner than its minimum in real seconds; in a
        fast simulated clock that is later than the lease's virtual expiry."""
        floor = env.occurred_at + timedelta(seconds=self.lease_min_real_seconds * self.clock.speed)
        return max(d.lease_expires_at, floor)

    def _call_doc(
        self, env: Envelope, d: TaskDispatched, call_id: str, campaign: dict[str, Any]
    ) -> dict[str, Any]:
        agent = d.dial.agent.model_dump() if d.dial.agent else (campaign.get("agent") or {})
        variables = contact_variables(name=d.dial.name, variables=d.dial.variables)
        return {
            "_id": call_id,
            "task_id": d.task_id,
            "attempt": d.attempt,
            "campaign_id": d.campaign_id,
            "lease_id": d.lease_id,
            "org_id": env.org_id,
            "workspace_id": env.workspace_id,
            "correlation_id": env.correlation_id,
            "provider": self.provider.name,
            "phone": d.dial.phone,
            "phone_index": d.dial.phone_index,
            # the task's own caller id (realtime) or the allocator's pick from the campaign's
            # pool (within its calls-per-second), else the campaign's own caller id
            "from_number": d.dial.from_number or campaign.get("from_number"),
            "language": campaign.get("language") or agent.get("language") or "en",
            "greeting": render_template(agent.get("greeting", ""), variables),
            "system_prompt": render_template(agent.get("system_prompt", ""), variables),
            "voicemail_action": campaign.get("voicemail_action", "hangup"),
            "voicemail_message": render_template(agent.get("voicemail_message", ""), variables),
            "agent_name": agent.get("name", ""),
            "context": variables,
            "lease_expires_at": d.lease_expires_at,
            "lease_ttl_seconds": lease_ttl_seconds(
                granted_at=env.occurred_at,
                lease_expires_at=d.lease_expires_at,
                min_real_seconds=self.lease_min_real_seconds,
                speed=self.clock.speed,
            ),
            "lease_renewed_at": env.occurred_at,
            "sim_outcomes": list(d.dial.sim_outcomes),
            # what the last-moment guard needs to judge a resume of this call again
            "contact_timezone": d.dial.timezone,
            "dial_window": d.dial.window.model_dump(mode="json") if d.dial.window else None,
            "status": "dialing",
            "created_at": self.clock.now(),
        }

    async def resume_stuck(self, busy: set[str], older_than_seconds: float) -> None:
        """Calls recorded but never confirmed placed (the process stopped in between, or the
        provider call failed unexpectedly): judged again by the last-moment guard, as a
        redelivered dispatch is (the window may have closed, the number opted out, the
        campaign paused or the lease run out meanwhile), then asked of the provider again
        under the same call id, or closed and handed back to the planner."""
        before = self.clock.now() - timedelta(seconds=older_than_seconds * self.clock.speed)
        for doc in await self.calls.stuck_dialing(before=before):
            if doc["_id"] in busy:
                continue
            campaign, suppressed = await asyncio.gather(
                self.campaigns.current(doc["campaign_id"]),
                self.suppressions.is_suppressed(org_id=doc["org_id"], phone=doc["phone"]),
            )
            reason = self._guard(
                campaign,
                phone=doc["phone"],
                contact_timezone=doc.get("contact_timezone"),
                window=DialWindow.model_validate(doc["dial_window"])
                if doc.get("dial_window")
                else None,
                lease_deadline=max(utc(doc["lease_expires_at"]), renewed_until(doc)),
                suppressed=suppressed,
            )
            if reason is None:
                log.warning("resuming a call recorded, not confirmed dialled", call_id=doc["_id"])
                await self._place(doc, causation=None)
                continue
            log.warning("recorded call not resumed", call_id=doc["_id"], reason=reason)
            if await self._abandon(doc, reason):
                # only the process that closed it tells the planner (a call that ended
                # meanwhile has its own end); a crash before this leaves the lease to expire
                await self._publish_abort_of(
                    org_id=doc["org_id"],
                    workspace_id=doc["workspace_id"],
                    causation=None,
                    lease_id=doc["lease_id"],
                    task_id=doc["task_id"],
                    campaign_id=doc["campaign_id"],
                    attempt=doc["attempt"],
                    reason=reason,
                )

    async def _abandon(self, doc: dict[str, Any], reason: str) -> bool:
        """Close a call recorded but never confirmed dialled without placing it."""
        if not await self.calls.abandon(call_id=doc["_id"], reason=reason, at=self.clock.now()):
            return False
        CALLS_ABORTED.labels(reason).inc()
        return True

    async def _place(self, doc: dict[str, Any], *, causation: Envelope | None) -> None:
        order = DialOrder(
            call_id=doc["_id"],
            task_id=doc["task_id"],
            attempt=doc["attempt"],
            to=doc["phone"],
            from_number=doc.get("from_number"),
            language=doc["language"],
            greeting=doc["greeting"],
            system_prompt=doc["system_prompt"],
            voicemail_action=doc["voicemail_action"],
            voicemail_message=doc["voicemail_message"],
            sim_outcomes=tuple(doc.get("sim_outcomes") or ()),
            agent_name=doc.get("agent_name", ""),
            context=doc.get("context") or {},
        )
        self.placing.add(order.call_id)
        try:
            await self.provider.dial(order)
        except ProviderError as exc:
            # Timeout, 5xx, refusal: a failed (retryable) attempt, reported like any other end.
            log.warning(
                "provider could not place the call", call_id=order.call_id, reason=exc.reason
            )
            now = self.clock.now()
            failed = CallResult(
                call_id=order.call_id,
                status="failed",
                outcome=None,
                turns=0,
                duration_seconds=0.0,
                started_at=now,
                ended_at=now,
            )
            await self._end(doc, failed, closed_by="provider_error", failure=exc.reason)
            return
        finally:
            self.placing.discard(order.call_id)
        started_at = self.clock.now()
        # The call is live: its record and CallStarted go out together (a record left at
        # "dialing" by a crash in between is resumed with the same call id, and the provider
        # places one call per id).
        marked, _ = await asyncio.gather(
            self.calls.mark_active(call_id=order.call_id, at=started_at),
            self.bus.emit(
                CALLS,
                self._started(doc, started_at),
                key=order.task_id,
                org_id=doc["org_id"],
                workspace_id=doc["workspace_id"],
                causation=causation,
                dedupe_parts=(order.call_id,),
            ),
        )
        if marked:
            CALLS_PLACED.inc()
            if causation is not None:  # None: a call resumed after a restart, not a dispatch
                DISPATCH_SECONDS.observe(
                    max(0.0, self.clock.real_seconds(started_at - causation.occurred_at))
                )
        log.info("call placed", call_id=order.call_id, phone=mask_phone(order.to))

    def _started(self, doc: dict[str, Any], started_at: datetime) -> CallStarted:
        return CallStarted(
            call_id=doc["_id"],
            task_id=doc["task_id"],
            campaign_id=doc["campaign_id"],
            attempt=doc["attempt"],
            phone_index=doc.get("phone_index", 0),
            provider=self.provider.name,
            started_at=started_at,
        )

    async def republish(self) -> None:
        """The broker lost everything: every call's start and end again, and every aborted
        dispatch's abort and release (same event ids, so whoever had them ignores them), so
        counters, dispositions, leases and tasks catch up. A task whose abort was lost would
        wait for ever: its lease was released, so no expiry resolves it."""
        count = aborts = 0
        async for doc in self.calls.iter_all():
            await self._publish_stored(doc)
            count += 1
        async for ab in self.calls.iter_aborts():
            if ab.get("org_id") is None:
                continue  # recorded before aborts kept their tenancy
            await self._publish_abort_of(
                org_id=ab["org_id"],
                workspace_id=ab["workspace_id"],
                causation=None,
                lease_id=ab["_id"],
                task_id=ab["task_id"],
                campaign_id=ab["campaign_id"],
                attempt=ab["attempt"],
                reason=ab["reason"],
            )
            aborts += 1
        log.info("dialer state re-published", calls=count, aborts=aborts)

    async def _repeat_outcome(
        self, env: Envelope, d: TaskDispatched, existing: dict[str, Any]
    ) -> None:
        """A dispatch of a call already recorded under this lease: repeat how it ended (a call
        still in progress reports its end when it comes; one closed by its lease's expiry is
        the allocator's to tell)."""
        if existing.get("status") != "ended":
            return
        if existing.get("closed_by") == "aborted":
            await self._publish_abort(env, d, existing.get("failure") or "aborted")
            return
        await self._publish_stored(existing)
        log.info("call outcome re-published for a repeated dispatch", call_id=existing["_id"])

    async def _publish_stored(self, doc: dict[str, Any]) -> None:
        """A call's start and end as stored, again (same event ids: whoever had them ignores
        them): after a broker loss, or when its dispatch is redelivered because the dialer
        stopped between storing the end and publishing it."""
        closed_by = doc.get("closed_by")
        ended = doc.get("status") == "ended" and doc.get("result_status")
        started = doc.get("dialed_at") or (
            doc.get("started_at") if ended and closed_by == "provider" else None
        )
        if started is not None:
            await self._publish_for(
                doc, CALLS, self._started(doc, utc(started)), key=doc["task_id"]
            )
        if ended and closed_by in ("provider", "provider_error"):
            now = self.clock.now()
            stored = {
                **doc,
                "started_at": doc.get("started_at") or now,
                "ended_at": doc.get("ended_at") or now,
            }
            await self._publish_end(doc, _result_from(doc["_id"], stored))
        late = doc.get("late_result")
        if late and closed_by in ("lease_expired", "aborted"):
            await self._publish_late(doc, _result_from(doc["_id"], late))

    async def _publish_abort(self, env: Envelope, d: TaskDispatched, reason: str) -> None:
        await self._publish_abort_of(
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            lease_id=d.lease_id,
            task_id=d.task_id,
            campaign_id=d.campaign_id,
            attempt=d.attempt,
            reason=reason,
        )

    async def _publish_abort_of(
        self,
        *,
        org_id: str,
        workspace_id: str,
        causation: Envelope | None,
        lease_id: str,
        task_id: str,
        campaign_id: str,
        attempt: int,
        reason: str,
    ) -> None:
        """CallAborted to the planner, then the lease back to the allocator; both keyed by
        the lease (one abort per lease, however often it is told)."""
        await self.bus.emit(
            CALLS,
            CallAborted(task_id=task_id, campaign_id=campaign_id, attempt=attempt, reason=reason),
            key=task_id,
            org_id=org_id,
            workspace_id=workspace_id,
            causation=causation,
            dedupe_parts=(lease_id,),
        )
        await self._release_lease(
            org_id=org_id,
            workspace_id=workspace_id,
            causation=causation,
            lease_id=lease_id,
            task_id=task_id,
            attempt=attempt,
            call_id=None,
        )

    async def _release(self, env: Envelope, d: TaskDispatched, *, call_id: str | None) -> None:
        await self._release_lease(
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            lease_id=d.lease_id,
            task_id=d.task_id,
            attempt=d.attempt,
            call_id=call_id,
        )

    async def _release_lease(
        self,
        *,
        org_id: str,
        workspace_id: str,
        causation: Envelope | None,
        lease_id: str,
        task_id: str,
        attempt: int,
        call_id: str | None,
    ) -> None:
        await self.bus.emit(
            ALLOCATOR,
            LeaseReleased(lease_id=lease_id, task_id=task_id, attempt=attempt, call_id=call_id),
            key=org_id,
            org_id=org_id,
            workspace_id=workspace_id,
            causation=causation,
            dedupe_parts=(lease_id,),
        )

    # -- provider -------------------------------------------------------------------------

    async def on_call_result(self, r: CallResult) -> str | None:
        """A call ended: store it, then publish CallEnded and give the slot back.

        Returns "recorded", "duplicate" (reported before: published again, same event ids),
        "late" (the call was already closed by its lease expiring or a provider error: kept on
        the record, never counted twice), or None for a call the dialer never recorded."""
        doc = await self.calls.get(call_id=r.call_id)
        if doc is None:
            log.warning("provider reported a call the dialer never recorded", call_id=r.call_id)
            return None
        if doc.get("status") == "ended" and doc.get("closed_by", "provider") != "provider":
            return await self._late(doc, r)
        return await self._end(doc, r, closed_by="provider")

    async def _late(self, doc: dict[str, Any], r: CallResult) -> str:
        """The call ended after it was closed without its result (its lease expired, or it
        was aborted after the network had taken it): the call did happen, so its end is
        published all the same (same event ids as an end in time: consumers count it once)
        and the planner folds it into the attempt. Its lease is long gone: nothing to give
        back."""
        await self.calls.record_late(call_id=r.call_id, fields=_result_fields(r))
        if doc.get("closed_by") == "provider_error":
            # its end (failed) was published already: one end per call
            log.warning("call result after a provider error recorded", call_id=r.call_id)
            return "late"
        log.warning(
            "late call result: published for the attempt it belongs to",
            call_id=r.call_id,
            closed_by=doc.get("closed_by"),
            status=r.status,
        )
        await self._publish_late(doc, r)
        return "late"

    async def _publish_late(self, doc: dict[str, Any], r: CallResult) -> None:
        if doc.get("dialed_at") is None:  # the network took it, the dialer never said so
            await self._publish_for(
                doc, CALLS, self._started(doc, r.started_at), key=doc["task_id"]
            )
        await self._publish_for(doc, CALLS, self._ended(doc, r), key=doc["task_id"])

    async def _end(
        self, doc: dict[str, Any], r: CallResult, *, closed_by: str, failure: str | None = None
    ) -> str:
        fields = {**_result_fields(r), "closed_by": closed_by, "failure": failure}
        first = await self.calls.finish(call_id=r.call_id, fields=fields)
        if first:
            CALLS_ENDED.labels(r.status).inc()
        else:
            now_doc = await self.calls.get(call_id=r.call_id) or doc
            if now_doc.get("closed_by", closed_by) != closed_by:
                # Closed meanwhile by something else (a lease expiry): a late end.
                return await self._late(now_doc, r)
        log.info("call ended", call_id=r.call_id, status=r.status, outcome=r.outcome, turns=r.turns)
        if closed_by == "provider" and doc.get("dialed_at") is None:
            # It rang, but the dialer stopped before it recorded so (and announced the start):
            # announce it now, so that counters see every call the network placed.
            await self._publish_for(
                doc, CALLS, self._started(doc, r.started_at), key=doc["task_id"]
            )
        await self._publish_end(doc, r)
        return "recorded" if first else "duplicate"

    async def _publish_end(self, doc: dict[str, Any], r: CallResult) -> None:
        await self._publish_for(doc, CALLS, self._ended(doc, r), key=doc["task_id"])
        released = LeaseReleased(
            lease_id=doc["lease_id"],
            task_id=doc["task_id"],
            attempt=doc["attempt"],
            call_id=r.call_id,
        )
        await self._publish_for(doc, ALLOCATOR, released, key=doc["org_id"])

    def _ended(self, doc: dict[str, Any], r: CallResult) -> CallEnded:
        return CallEnded(
            call_id=r.call_id,
            task_id=doc["task_id"],
            campaign_id=doc["campaign_id"],
            attempt=doc["attempt"],
            phone_index=doc.get("phone_index", 0),
            phone=doc["phone"],
            provider=self.provider.name,
            status=r.status,
            outcome=r.outcome,
            callback_at=r.callback_at,
            duration_seconds=r.duration_seconds,
            turns=r.turns,
            transcript=r.transcript,
            recording_url=r.recording_url,
            cost=r.cost,
            started_at=r.started_at,
            ended_at=r.ended_at,
        )

    # -- http provider callbacks --------------------------------------------------------------

    async def on_gateway_callback(self, cb: GatewayCallback) -> str | None:
        if cb.type == "call.started":
            found = await self.calls.mark_answered(
                call_id=cb.call_id, at=self.clock.now(), provider_call_id=cb.provider_call_id
            )
            return "recorded" if found else None
        doc = await self.calls.get(call_id=cb.call_id)
        if doc is None:
            return None
        now = self.clock.now()
        started = doc.get("answered_at") or doc.get("dialed_at") or doc.get("created_at") or now
        return await self.on_call_result(
            CallResult(
                call_id=cb.call_id,
                status=cb.status or "failed",
                outcome=cb.outcome,
                turns=cb.turns,
                duration_seconds=cb.duration_seconds,
                started_at=utc(started),
                ended_at=now,
                transcript=cb.transcript,
                cost=cb.cost,
                callback_at=cb.callback_at,
                recording_url=cb.recording_url,
            )
        )

    # -- dispatch.v1: lease expiries -----------------------------------------------------------

    async def on_lease_expired(self, env: Envelope, ev: LeaseExpired) -> None:
        """The call's end never arrived: close the record (the planner counts the attempt as
        failed). A result that arrives later is published as a late end (see ``_late``)."""
        call_id = stable_id("call", ev.task_id, ev.attempt)
        if self.pool is not None:
            await self.pool.settle((ev.task_id, ev.attempt))
        if await self.calls.close_expired(
            call_id=call_id, lease_id=ev.lease_id, at=self.clock.now()
        ):
            CALLS_ENDED.labels("lease_expired").inc()
            log.warning("call closed: lease expired without an end", call_id=call_id)

    # -- suppressions.v1 ------------------------------------------------------------------------

    async def on_suppression_added(self, env: Envelope, ev: SuppressionAdded) -> None:
        await self.suppressions.add(org_id=env.org_id, phone=ev.phone, reason=ev.reason)

    async def on_suppression_removed(self, env: Envelope, ev: SuppressionRemoved) -> None:
        await self.suppressions.remove(org_id=env.org_id, phone=ev.phone)

    async def _publish_for(
        self, doc: dict[str, Any], topic: Topic, payload: Payload, *, key: str
    ) -> None:
        env = self.bus.envelope(
            payload,
            org_id=doc["org_id"],
            workspace_id=doc["workspace_id"],
            correlation_id=doc.get("correlation_id"),
            dedupe_parts=(doc["_id"],),
        )
        await self.bus.publish(topic, env, key=key)


def renewed_until(doc: dict[str, Any]) -> datetime:
    """When the lease of a recorded call runs out as far as this dialer knows: its last
    renewal (or its grant) plus its TTL, in virtual time (the TTL includes the allocator's
    floor in real seconds)."""
    since = doc.get("lease_renewed_at") or doc.get("created_at")
    if since is None:
        return datetime.min.replace(tzinfo=UTC)
    return utc(since) + timedelta(seconds=float(doc.get("lease_ttl_seconds") or 0.0))


def _result_fields(r: CallResult) -> dict[str, Any]:
    return {
        "result_status": r.status,
        "outcome": r.outcome,
        "turns": r.turns,
        "duration_seconds": r.duration_seconds,
        "transcript": r.transcript,
        "cost": r.cost,
        "callback_at": r.callback_at,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "recording_url": r.recording_url,
    }


def _result_from(call_id: str, fields: dict[str, Any]) -> CallResult:
    """A stored ``late_result`` (see ``_result_fields``) back as the provider's result."""
    return CallResult(
        call_id=call_id,
        status=fields["result_status"],
        outcome=fields.get("outcome"),
        turns=fields.get("turns") or 0,
        duration_seconds=fields.get("duration_seconds") or 0.0,
        started_at=utc(fields["started_at"]),
        ended_at=utc(fields["ended_at"]),
        transcript=fields.get("transcript") or [],
        cost=fields.get("cost") or 0.0,
        callback_at=utc(fields["callback_at"]) if fields.get("callback_at") else None,
        recording_url=fields.get("recording_url"),
    )
