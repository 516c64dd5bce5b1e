"""Lease renewal: while a call is being placed or is live, the dialer renews its slot lease
(``lease.renewed`` on ``allocator.v1``, keyed by org) so that a call longer than the lease, a
slow provider or a restart mid-call does not lose its slot. When to renew is the pure rule
``dialer.domain.renewal_due``; the allocator decides whether a renewal still holds."""

from __future__ import annotations

from collections.abc import Set

import structlog

from dialer.domain import renewal_due
from dialer.repository import CallRepository
from outbound_core.clock import Clock, utc
from outbound_core.events import LeaseRenewed
from outbound_core.kafka import EventBus
from outbound_core.topics import ALLOCATOR

log = structlog.get_logger(__name__)


class LeaseRenewer:
    def __init__(
        self,
        *,
        calls: CallRepository,
        bus: EventBus,
        clock: Clock,
        placing: Set[str],
        max_call_seconds: float,
        fraction: float,
        grace_seconds: float,
    ) -> None:
        self.calls = calls
        self.bus = bus
        self.clock = clock
        self.placing = placing  # call ids this process is waiting on the provider for
        self.max_call_seconds = max_call_seconds
        self.fraction = fraction
        self.grace_seconds = grace_seconds

    async def renew(self) -> int:
        """Renew the lease of every call being placed or live, each ``fraction`` of its TTL
        (virtual time). A dialer that stops, stops renewing: its leases expire as before,
        unless the next instance finds the calls live and renews them."""
        now = self.clock.now()
        renewed = 0
        for doc in await self.calls.live():
            if not renewal_due(
                status=doc["status"],
                placing=doc["_id"] in self.placing,
                since=utc(doc.get("dialed_at") or doc.get("created_at") or now),
                renewed_at=utc(doc.get("lease_renewed_at") or doc.get("created_at") or now),
                ttl_seconds=float(doc.get("lease_ttl_seconds") or 0.0),
                now=now,
                max_call_seconds=self.max_call_seconds,
                grace_seconds=self.grace_seconds,
                fraction=self.fraction,
            ):
                continue
            ev = LeaseRenewed(
                lease_id=doc["lease_id"],
                task_id=doc["task_id"],
                attempt=doc["attempt"],
                call_id=doc["_id"],
                renewed_at=now,
            )
            env = self.bus.envelope(
                ev,
                org_id=doc["org_id"],
                workspace_id=doc["workspace_id"],
                correlation_id=doc.get("correlation_id"),
                dedupe_parts=(doc["lease_id"], now.isoformat()),
            )
            await self.bus.publish(ALLOCATOR, env, key=doc["org_id"])
            await self.calls.mark_renewed(call_id=doc["_id"], lease_id=doc["lease_id"], at=now)
            renewed += 1
        if renewed:
            log.info("leases renewed", count=renewed)
        return renewed
