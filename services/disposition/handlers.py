from __future__ import annotations

from disposition.domain import decide
from disposition.repository import DispositionRepository
from outbound_core.events import CallEnded, DispositionRecorded, Envelope
from outbound_core.kafka import EventBus
from outbound_core.topics import DISPOSITIONS


class DispositionHandlers:
    def __init__(self, *, repo: DispositionRepository, bus: EventBus) -> None:
        self.repo = repo
        self.bus = bus

    async def on_call_ended(self, env: Envelope, call: CallEnded) -> None:
        existing = await self.repo.get(call.call_id)
        if existing is None:
            d = decide(
                status=call.status,
                outcome=call.outcome,
                turns=call.turns,
                callback_at=call.callback_at,
            )
            existing = {
                "task_id": call.task_id,
                "campaign_id": call.campaign_id,
                "org_id": env.org_id,
                "workspace_id": env.workspace_id,
                "attempt": call.attempt,
                "disposition": d.label,
                "raw_outcome": call.outcome,
                "raw_status": call.status,
                "connected": d.connected,
                "terminal": d.terminal,
                "custom": d.custom,
                "callback_at": d.callback_at,
                "duration_seconds": call.duration_seconds,
                "turns": call.turns,
                "recorded_at": self.bus.now(),
            }
            await self.repo.record(call_id=call.call_id, doc=existing)
            if d.label == "opt_out" and call.phone:
                await self.repo.suppress(
                    org_id=env.org_id,
                    phone=call.phone,
                    reason="opt_out disposition",
                    at=self.bus.now(),
                )
        # Published on every delivery (stable event id): a crash after the insert but before
        # the publish is repaired by the redelivery.
        await self.bus.emit(
            DISPOSITIONS,
            DispositionRecorded(
                call_id=call.call_id,
                task_id=call.task_id,
                campaign_id=call.campaign_id,
                attempt=call.attempt,
                disposition=existing["disposition"],
                raw_outcome=existing["raw_outcome"],
                connected=existing["connected"],
                terminal=existing["terminal"],
                callback_at=existing["callback_at"],
                duration_seconds=existing["duration_seconds"],
                turns=existing["turns"],
            ),
            key=call.task_id,
            org_id=env.org_id,
            workspace_id=env.workspace_id,
            causation=env,
            dedupe_parts=(call.call_id,),
        )
