"""Opt-outs reach the planner: every waiting or queued task of the org whose current number was
suppressed is archived with the reason ``opted_out`` (and withdrawn from the allocator), and a
dispatch the dialer refused because the number is suppressed is archived rather than retried."""

from __future__ import annotations

import structlog

from outbound_core.events import CallAborted, Envelope, SuppressionAdded, TaskWithdrawn
from outbound_core.phones import mask_phone
from outbound_core.topics import ALLOCATOR
from task_planner.domain import SCHEDULABLE_STATUSES
from task_planner.planner import Planner
from task_planner.repository import Doc

log = structlog.get_logger(__name__)

OPTED_OUT = "opted_out"
WAITING = (*SCHEDULABLE_STATUSES, "queued")


class SuppressionHandlers:
    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.tasks = planner.repo.tasks

    async def ensure_indexes(self) -> None:
        await self.tasks.create_index([("org_id", 1), ("phones", 1)])

    async def on_suppression_added(self, env: Envelope, ev: SuppressionAdded) -> None:
        found = [
            t
            async for t in self.tasks.find(
                {"org_id": env.org_id, "phones": ev.phone, "status": {"$in": list(WAITING)}}
            )
        ]
        archived = 0
        for t in found:
            if t["phones"][t["phone_index"]] != ev.phone:
                continue  # another number of the contact is next; the dialer guard skips this one
            if await self._archive(env, t):
                archived += 1
        log.info("suppression applied", phone=mask_phone(ev.phone), archived=archived)

    async def on_call_aborted(self, env: Envelope, ev: CallAborted) -> None:
        if ev.reason != OPTED_OUT:
            await self.planner.on_call_aborted(env, ev)
            return
        task = await self.planner.repo.get(ev.task_id)
        if task is not None and task["attempt"] == ev.attempt:
            await self._archive(env, task, statuses=("queued", "dialing"))

    async def _archive(
        self, env: Envelope, task: Doc, *, statuses: tuple[str, ...] = WAITING
    ) -> bool:
        was = task["status"]
        new = await self.planner.repo.transition(
            task_id=task["_id"],
            expect_status=statuses,
            expect_attempt=task["attempt"],
            set_fields={"status": "archived", "reason": OPTED_OUT, "due_at": None},
        )
        if new is None:
            return False
        if was == "queued":
            await self.planner.bus.emit(
                ALLOCATOR,
                TaskWithdrawn(
                    task_id=task["_id"],
                    campaign_id=task["campaign_id"],
                    attempt=task["attempt"],
                    reason=OPTED_OUT,
                ),
                key=task["org_id"],
                org_id=task["org_id"],
                workspace_id=task["workspace_id"],
                causation=env,
                dedupe_parts=(task["_id"], task["attempt"], OPTED_OUT),
            )
        await self.planner._publish_lead(new, causation=env)
        await self.planner._check_drained(env, new)
        return True
