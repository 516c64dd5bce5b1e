"""Opt-outs reach the planner. A suppressed number is never dialled again, but it is only one of
a contact's phones (up to ten): every waiting or queued task of the org that has the number
marks that phone as skipped; a task whose *current* phone it is moves on to its next phone
(withdrawn from the allocator if it was queued), and only a task with no phone left is archived
with the reason ``opted_out``. A dispatch the dialer refused because the number is suppressed is
handled the same way."""

from __future__ import annotations

from dataclasses import asdict

import structlog

from outbound_core.clock import to_ms
from outbound_core.events import CallAborted, Envelope, SuppressionAdded, TaskWithdrawn
from outbound_core.phones import mask_phone
from outbound_core.topics import ALLOCATOR
from task_planner.domain import (
    SCHEDULABLE_STATUSES,
    RetryPolicy,
    exclude_phones,
    skip_suppressed,
)
from task_planner.planner import Planner, _position
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
        moved = 0
        for t in found:
            hits = [i for i, p in enumerate(t["phones"]) if p == ev.phone]
            if t["phone_index"] in hits:
                if await self._skip(env, t, hits=hits):
                    moved += 1
            else:  # another number of the contact is next: skip this one when its turn comes
                await self.planner.repo.transition(
                    task_id=t["_id"],
                    expect_status=WAITING,
                    expect_attempt=t["attempt"],
                    set_fields={
                        "phone_states": [
                            asdict(p) for p in exclude_phones(_position(t), hits).phones
                        ]
                    },
                )
        log.info("suppression applied", phone=mask_phone(ev.phone), moved_on=moved)

    async def on_call_aborted(self, env: Envelope, ev: CallAborted) -> None:
        if ev.reason != OPTED_OUT:
            await self.planner.on_call_aborted(env, ev)
            return
        task = await self.planner.repo.get(ev.task_id)
        if task is not None and task["attempt"] == ev.attempt:
            await self._skip(env, task, hits=[], statuses=("queued", "dialing"))

    async def _skip(
        self, env: Envelope, task: Doc, *, hits: list[int], statuses: tuple[str, ...] = WAITING
    ) -> bool:
        """The task's current phone is suppressed: on to its next phone, or archived."""
        campaign = self.planner.campaigns.get(task["campaign_id"], {})
        policy = RetryPolicy.batch(
            max_attempts=campaign.get("max_attempts", 1),
            retry_interval_minutes=campaign.get("retry_interval_minutes", 240),
            retry_outcomes=campaign.get("retry_outcomes", ["no_answer", "busy", "failed"]),
        )
        nxt = skip_suppressed(
            policy=policy, pos=exclude_phones(_position(task), hits), now=self.planner.clock.now()
        )
        fields: Doc = {
            "status": nxt.status,
            "phone_index": nxt.position.phone_index,
            "pass_number": nxt.position.pass_number,
            "phone_states": [asdict(p) for p in nxt.position.phones],
            "due_at": to_ms(nxt.due_at) if nxt.due_at else None,
            "reason": OPTED_OUT,
        }
        if nxt.status == "archived" or campaign.get("status") in ("stopped", "completed"):
            fields.update(status="archived", due_at=None)
        elif nxt.due_at is None:  # nothing left to try: the contact's result stands
            fields["last_disposition"] = nxt.final_disposition
        was = task["status"]
        new = await self.planner.repo.transition(
            task_id=task["_id"],
            expect_status=statuses,
            expect_attempt=task["attempt"],
            set_fields=fields,
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
        if fields["due_at"] is not None:
            if self.planner._running(new["campaign_id"]):
                self.planner.timer.push(fields["due_at"], new["_id"])
                self.planner.kick()
        else:
            await self.planner._check_drained(env, new)
        return True
