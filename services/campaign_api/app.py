from __future__ import annotations

import httpx
from fastapi import FastAPI

from campaign_api import problems
from campaign_api.auth import hash_key
from campaign_api.campaigns import CampaignService
from campaign_api.ingest import TaskIngress
from campaign_api.projections import Projections
from campaign_api.realtime_repo import RealtimeRepository
from campaign_api.realtime_service import RealtimeService
from campaign_api.repository import ApiRepository
from campaign_api.routes import (
    agents,
    campaigns,
    console,
    contacts,
    labels,
    numbers,
    slots,
    suppressions,
    tasks,
    tenancy,
    webhooks,
)
from campaign_api.settings import ApiSettings, get_settings
from campaign_api.suppressed import SuppressedProjection
from outbound_core.events import (
    CallEnded,
    CallStarted,
    CampaignDrained,
    CampaignPauseRequested,
    CampaignResumeRequested,
    ContactsAdded,
    ContactsRemoved,
    DispositionRecorded,
    LeadUpdated,
    SuppressionAdded,
    SuppressionRemoved,
)
from outbound_core.ids import stable_id
from outbound_core.outbox import Outbox
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import CALLS, CAMPAIGNS, DISPOSITIONS, LEADS, SUPPRESSIONS

DESCRIPTION = """Outbound's public API: voice agents, campaigns, leads and webhooks.

Authenticate with `Authorization: Bearer <API key>`; a key sees only its own workspace.
Errors are `application/problem+json` (RFC 9457) with the field path of each problem."""


def build_app(settings: ApiSettings) -> FastAPI:
    rt = Runtime.create(settings)
    repo = ApiRepository(rt.db)
    outbox = Outbox(rt.db["outbox"], rt.bus)
    svc = CampaignService(
        repo=repo,
        bus=rt.bus,
        outbox=outbox,
        clock=rt.clock,
        max_contacts=settings.max_contacts,
        contacts_per_event=settings.contacts_per_event,
        completion_grace=settings.completion_grace_seconds,
    )
    rt_repo = RealtimeRepository(rt.db)
    realtime = RealtimeService(repo=repo, rt=rt_repo, bus=rt.bus, outbox=outbox, clock=rt.clock)
    TaskIngress(svc=realtime, rt=rt_repo, bus=rt.bus, settings=settings).register(rt.broker)
    rt.startup.append(rt_repo.ensure_indexes)
    webhook_client = httpx.AsyncClient(base_url=settings.webhook_service_url, timeout=10.0)
    disposition_client = httpx.AsyncClient(base_url=settings.disposition_service_url, timeout=30.0)

    async def startup() -> None:
        await repo.ensure_indexes()
        await outbox.ensure_indexes()
        key = settings.bootstrap_api_key
        if key:
            digest = hash_key(key)
            await repo.ensure_tenant(
                org_id=stable_id("org", "bootstrap", digest),
                workspace_id=stable_id("ws", "bootstrap", digest),
                key_id=stable_id("key", "bootstrap", digest),
                digest=digest,
                now=rt.clock.now(),
            )

    rt.startup.append(startup)
    rt.shutdown.append(webhook_client.aclose)
    rt.shutdown.append(disposition_client.aclose)
    views = Projections(repo=repo, on_counted=svc.on_counted)
    rt.consume(
        CAMPAIGNS,
        (ContactsAdded, svc.on_contacts_added),
        (ContactsRemoved, svc.on_contacts_removed),
    )
    rt.consume(LEADS, (LeadUpdated, views.on_lead_updated), (CampaignDrained, svc.on_drained))
    rt.consume(CALLS, (CallStarted, views.on_call_started), (CallEnded, views.on_call_ended))
    rt.consume(
        DISPOSITIONS,
        (DispositionRecorded, views.on_disposition),
        (CampaignPauseRequested, svc.on_pause_requested),
        (CampaignResumeRequested, svc.on_resume_requested),
    )
    suppressed = SuppressedProjection(repo=repo)
    rt.consume(
        SUPPRESSIONS,
        (SuppressionAdded, suppressed.on_added),
        (SuppressionRemoved, suppressed.on_removed),
    )
    rt.every("schedules", svc.run_schedules, settings.scheduler_seconds)
    rt.every("overdue-completions", svc.complete_overdue, 5.0)
    rt.every("counting", views.forget_settled, 0.25)
    rt.shutdown.append(views.forget_settled)  # a stop leaves no settled key behind
    rt.every("outbox-relay", outbox.relay, 2.0)
    app = build_http_app(
        rt,
        tenancy.router,
        tasks.router,
        contacts.router,
        campaigns.router,
        numbers.router,
        agents.router,
        webhooks.router,
        console.router,
        suppressions.router,
        labels.router,
        slots.router,
        title="Outbound API",
        version="0.1.0",
        description=DESCRIPTION,
    )
    app.state.repo = repo
    app.state.campaigns = svc
    app.state.realtime = realtime
    app.state.outbox = outbox
    app.state.webhook_client = webhook_client
    app.state.disposition_client = disposition_client
    problems.install(app)
    return app


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
