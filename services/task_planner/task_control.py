"""Pause, resume and archive single tasks (``PATCH /v1/tasks/{id}``), the task-level twin of
the campaign actions: a paused task keeps its due time and is not considered until resumed; a
queued one is withdrawn from the allocator first; a call in progress finishes, and an archive
then stops whatever would have followed it."""

from __future__ import annotations

import structlog

from outbound_core.clock import to_ms, utc
from outbound_core.events import Envelope, TasksControlled, TaskWithdrawn
from outbound_core.topics import ALLOCATOR
from task_planner.domain import SCHEDULABLE_STATUSES
from task_planner.planner import Planner
from task_planner.repository import Doc

log = structlog.get_logger(__name__)
WAITING = (*SCHEDULABLE_STATUSES, "queued")


class TaskControl:
    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.repo = planner.repo

    async def on_tasks_controlled(self, env: Envelope, ev: TasksControlled) -> None:
        for task in await self.repo.get_many(ev.task_ids):
            if task["campaign_id"] != ev.campaign_id:
                continue
            if ev.action == "pause":
                await self._change(env, task, WAITING, {"status": "paused", "reason": "paused"})
            elif ev.action == "archive":
                if task["status"] == "dialing":
                    await self.repo.tasks.update_one(
                        {"_id": task["_id"]}, {"$set": {"archive_after_call": True}}
                    )
                    continue
                await self._change(
                    env,
                    task,
                    (*WAITING, "paused"),
                    {"status": "archived", "reason": "archived", "due_at": None},
                )
            else:
                await self._resume(env, task)

    async def _change(
        self, env: Envelope, task: Doc, statuses: tuple[str, ...], fields: Doc
    ) -> None:
        if task["status"] not in statuses:
            return
        new = await self.repo.transition(
            task_id=task["_id"],
            expect_status=[task["status"]],
            expect_attempt=task["attempt"],
            set_fields=fields,
        )
        if new is None:
            return
        if task["status"] == "queued":
            await self.planner.bus.emit(
                ALLOCATOR,
                TaskWithdrawn(
                    task_id=task["_id"],
                    campaign_id=task["campaign_id"],
                    attempt=task["attempt"],
                    reason=str(fields["reason"]),
                ),
                key=task["org_id"],
                org_id=task["org_id"],
                workspace_id=task["workspace_id"],
                causation=env,
                dedupe_parts=(env.id, task["_id"]),
            )
        await self.planner._publish_lead(new, causation=env)

    async def _resume(self, env: Envelope, task: Doc) -> None:
        if task["status"] != "paused":
            return
        now = to_ms(self.planner.clock.now())
        due = to_ms(utc(task["due_at"])) if task.get("due_at") else now
        due = max(due, now)
        new = await self.repo.transition(
            task_id=task["_id"],
            expect_status=["paused"],
            expect_attempt=task["attempt"],
            set_fields={"status": "pending", "reason": None, "due_at": due},
        )
        if new is None:
            return
        await self.planner._publish_lead(new, causation=env)
        if self.planner._running(new["campaign_id"]):
            self.planner.timer.push(due, new["_id"])
            self.planner.kick()
