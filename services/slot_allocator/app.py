from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from fastapi import FastAPI

from outbound_core.events import (
    CampaignStatusChanged,
    CampaignWithdrawn,
    LeaseReleased,
    LeaseRenewed,
    SlotsConfigured,
    TaskQueued,
    TaskWithdrawn,
)
from outbound_core.service import Runtime, build_http_app, serve
from outbound_core.topics import ALLOCATOR
from slot_allocator.domain import Allocator
from slot_allocator.metrics import install_slot_gauges
from slot_allocator.partitions import OrgRebalance
from slot_allocator.repository import AllocatorRepository
from slot_allocator.service import SlotService
from slot_allocator.settings import AllocatorSettings, get_settings


def build_app(settings: AllocatorSettings) -> FastAPI:
    rt = Runtime.create(settings)
    svc = SlotService(
        repo=AllocatorRepository(rt.db),
        bus=rt.bus,
        clock=rt.clock,
        allocator=Allocator(default_org_slots=settings.default_org_slots),
        lease_ttl=timedelta(seconds=settings.max_call_seconds + settings.lease_grace_seconds),
        lease_min_real=settings.lease_min_real_seconds,
        start_grace=max(
            settings.lease_min_real_seconds, 2 * settings.kafka_session_timeout_ms / 1000
        ),
        instance_id=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
    )
    install_slot_gauges(lambda: svc.owned, svc.alloc)
    rebalance = OrgRebalance(svc, ALLOCATOR.name, settings.kafka_partitions)
    svc.partition_of = rebalance.partition_of
    rt.startup.append(svc.rebuild)
    rt.after_broker_loss.append(svc.republish)
    rebalance.consumer = rt.consume(
        ALLOCATOR,
        (TaskQueued, svc.on_task_queued),
        (TaskWithdrawn, svc.on_task_withdrawn),
        (CampaignWithdrawn, svc.on_campaign_withdrawn),
        (CampaignStatusChanged, svc.on_campaign_status),
        (LeaseReleased, svc.on_lease_released),
        (LeaseRenewed, svc.on_lease_renewed),
        (SlotsConfigured, svc.on_slots_configured),
        listener=rebalance,
    )
    dispatcher = rt.every("dispatch", svc.dispatch, 0.05)
    svc.kick = dispatcher.kick
    rt.every("lease-expiry", svc.expire, settings.expiry_check_seconds)
    return build_http_app(rt, title="Outbound slot-allocator")


def main() -> None:
    settings = get_settings()
    serve(build_app(settings), settings)
