from __future__ import annotations

from fastapi import FastAPI

from disposition import api
from disposition.handlers import DispositionHandlers
from disposition.repository import DispositionRepository
from disposition.settings import DispositionSettings, get_settings
from outbound_core.events import CallEnded, CampaignStatusChanged, LeaseExpired
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import CALLS, CAMPAIGNS, DISPATCH


def build_app(settings: DispositionSettings) -> FastAPI:
    rt = Runtime.create(settings)
    repo = DispositionRepository(rt.db)
    handlers = DispositionHandlers(repo=repo, bus=rt.bus, settings=settings)
    rt.startup.append(repo.ensure_indexes)
    rt.after_broker_loss.append(handlers.republish)
    # Per task in order, tasks concurrently: each call end waits on several round trips.
    rt.consume_by_key(
        CALLS,
        (CallEnded, handlers.on_call_ended),
        key=_task_id,
        concurrency=settings.consume_concurrency,
    )
    rt.consume(DISPATCH, (LeaseExpired, handlers.on_lease_expired))  # calls that never ended
    rt.consume(CAMPAIGNS, (CampaignStatusChanged, handlers.on_campaign_status_changed))
    rt.every("breaker-cooldowns", handlers.resume_after_cooldown, settings.breaker_check_seconds)
    app = build_http_app(rt, api.router, api.labels_router, title="Outbound disposition")
    app.state.repo = repo
    return app


def _task_id(payload: CallEnded) -> str:
    return payload.task_id


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
