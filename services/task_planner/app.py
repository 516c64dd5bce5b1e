from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from outbound_core.events import (
    CallAborted,
    CampaignCreated,
    CampaignStatusChanged,
    CampaignUpdated,
    ContactsAdded,
    ContactsRemoved,
    DispositionRecorded,
    LeaseExpired,
    SuppressionAdded,
    TaskDispatched,
    TasksControlled,
)
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import CALLS, CAMPAIGNS, DISPATCH, DISPOSITIONS, SUPPRESSIONS
from task_planner.planner import Planner
from task_planner.repository import PlannerRepository
from task_planner.settings import PlannerSettings, get_settings
from task_planner.suppressions import SuppressionHandlers
from task_planner.task_control import TaskControl


def build_app(settings: PlannerSettings) -> FastAPI:
    rt = Runtime.create(settings)
    planner = Planner(
        repo=PlannerRepository(rt.db),
        bus=rt.bus,
        clock=rt.clock,
        tick_batch=settings.tick_batch,
        tick_concurrency=settings.tick_concurrency,
        recheck=timedelta(hours=settings.recheck_hours),
        stale_after=settings.reconcile_stale_seconds,
        reconcile_batch=settings.reconcile_batch,
    )
    rt.startup.append(planner.rebuild)
    rt.after_broker_loss.append(planner.republish)
    control = TaskControl(planner)
    rt.consume(
        CAMPAIGNS,
        (CampaignCreated, planner.on_campaign_created),
        (ContactsAdded, planner.on_contacts_added),
        (ContactsRemoved, planner.on_contacts_removed),
        (CampaignStatusChanged, planner.on_status_changed),
        (CampaignUpdated, planner.on_campaign_updated),
        (TasksControlled, control.on_tasks_controlled),
    )
    # Per task in order, tasks concurrently: each event waits on a read, a write and a publish.
    rt.consume_by_key(
        DISPATCH,
        (TaskDispatched, planner.on_dispatched),
        (LeaseExpired, planner.on_lease_expired),
        key=_task_id,
        concurrency=settings.consume_concurrency,
    )
    suppressions = SuppressionHandlers(planner)
    rt.startup.append(suppressions.ensure_indexes)
    rt.consume(SUPPRESSIONS, (SuppressionAdded, suppressions.on_suppression_added))
    rt.consume(CALLS, (CallAborted, suppressions.on_call_aborted))
    rt.consume_by_key(
        DISPOSITIONS,
        (DispositionRecorded, planner.on_disposition),
        key=_task_id,
        concurrency=settings.consume_concurrency,
    )
    ticker = rt.every("due-tasks", planner.tick, settings.tick_seconds)
    planner.kick = ticker.kick
    rt.every("reconcile-queued", planner.reconcile, settings.reconcile_seconds)
    drains = rt.every("drain-check", planner.check_drains, settings.drain_check_seconds)
    planner.kick_drains = drains.kick
    return build_http_app(rt, title="Outbound task-planner")


def _task_id(payload: TaskDispatched | LeaseExpired | DispositionRecorded) -> str:
    return payload.task_id


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
