from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from outbound_core.events import CallEnded, CampaignStatusChanged, DispositionRecorded, LeadUpdated
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import CALLS, CAMPAIGNS, DISPOSITIONS, LEADS
from webhook.api import build_router, validation_error
from webhook.handlers import WebhookHandlers
from webhook.repository import WebhookRepository
from webhook.sender import Sender
from webhook.settings import WebhookSettings, get_settings


def build_app(settings: WebhookSettings) -> FastAPI:
    rt = Runtime.create(settings)
    repo = WebhookRepository(rt.db, subscription_cache_seconds=settings.subscription_cache_seconds)
    sender = Sender(repo=repo, settings=settings, clock=rt.clock)
    ticker = rt.every("webhook-sender", sender.tick, settings.sender_interval_seconds)
    sender.kick = ticker.kick
    handlers = WebhookHandlers(repo=repo, now=rt.clock.now, kick=ticker.kick)
    rt.startup.append(repo.ensure_indexes)
    rt.shutdown.append(sender.close)
    # Lead updates come in bursts (a campaign's every call): consumed a fetch at a time, so
    # one write stores the deliveries of many events.
    rt.consume_batch(LEADS, handlers.on_batch, LeadUpdated)
    rt.consume(CAMPAIGNS, (CampaignStatusChanged, handlers.on_campaign_status_changed))
    rt.consume(CALLS, (CallEnded, handlers.on_call_ended))
    rt.consume(DISPOSITIONS, (DispositionRecorded, handlers.on_disposition_recorded))
    router = build_router(
        repo=repo, handlers=handlers, sender=sender, settings=settings, clock=rt.clock
    )
    return build_http_app(
        rt,
        router,
        title="Outbound webhook",
        exception_handlers={RequestValidationError: validation_error},
    )


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
