from __future__ import annotations

from fastapi import FastAPI

from dialer.campaigns import CampaignProjection
from dialer.handlers import DialerHandlers
from dialer.pool import DispatchPool
from dialer.providers.base import VoiceProvider
from dialer.providers.http import HttpProvider
from dialer.providers.sim import SimProvider
from dialer.renewal import LeaseRenewer
from dialer.repository import CallRepository, CampaignRepository, SuppressionRepository
from dialer.settings import DialerSettings, get_settings
from outbound_core.events import (
    CampaignCreated,
    CampaignStatusChanged,
    CampaignUpdated,
    LeaseExpired,
    SuppressionAdded,
    SuppressionRemoved,
    TaskDispatched,
)
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import CAMPAIGNS, DISPATCH, SUPPRESSIONS


def build_provider(rt: Runtime, settings: DialerSettings) -> VoiceProvider:
    if settings.provider == "sim":
        return SimProvider(db=rt.client[settings.sim_database], clock=rt.clock, settings=settings)
    if settings.provider == "http":
        return HttpProvider(settings=settings)
    raise ValueError(f"unknown provider {settings.provider!r}")


def build_app(settings: DialerSettings) -> FastAPI:
    rt = Runtime.create(settings)
    calls = CallRepository(rt.db)
    campaigns = CampaignProjection(CampaignRepository(rt.db))
    provider = build_provider(rt, settings)
    pool = (
        DispatchPool(
            limit=settings.dispatch_concurrency,
            resume=lambda busy, age: handlers.resume_stuck(busy, age),
            sweep_seconds=settings.dialing_sweep_seconds,
            drain_seconds=settings.graceful_timeout_seconds / 2,
        )
        if settings.dispatch_concurrency > 1
        else None
    )
    handlers = DialerHandlers(
        calls=calls,
        campaigns=campaigns,
        provider=provider,
        bus=rt.bus,
        clock=rt.clock,
        suppressions=SuppressionRepository(rt.db),
        check_window=settings.guard_calling_window,
        lease_min_real_seconds=settings.lease_min_real_seconds,
        pool=pool,
        campaign_catch_up_seconds=settings.campaign_catch_up_seconds,
    )
    renewer = LeaseRenewer(
        calls=calls,
        bus=rt.bus,
        clock=rt.clock,
        placing=handlers.placing,
        max_call_seconds=settings.max_call_seconds,
        fraction=settings.lease_renew_fraction,
        grace_seconds=settings.lease_renew_grace_seconds,
    )
    if pool is not None:
        rt.tickers.append(pool)  # stopped before the broker: dispatches in progress finish
    provider.on_end(handlers.on_call_result)
    if isinstance(provider, HttpProvider):
        provider.on_callback(handlers.on_gateway_callback)
    rt.startup.append(calls.ensure_indexes)
    rt.after_broker_loss.append(handlers.republish)
    rt.every("lease-renewal", renewer.renew, settings.lease_renew_check_seconds)
    provider.install(rt)
    rt.consume(
        CAMPAIGNS,
        (CampaignCreated, handlers.on_campaign_created),
        (CampaignStatusChanged, handlers.on_campaign_status_changed),
        (CampaignUpdated, handlers.on_campaign_updated),
    )
    rt.consume(
        DISPATCH,
        (TaskDispatched, handlers.on_task_dispatched),
        (LeaseExpired, handlers.on_lease_expired),
    )
    rt.consume(
        SUPPRESSIONS,
        (SuppressionAdded, handlers.on_suppression_added),
        (SuppressionRemoved, handlers.on_suppression_removed),
    )
    return build_http_app(rt, *provider.routers(), title="Outbound dialer")


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
