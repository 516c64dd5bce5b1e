"""Kafka ingress of realtime tasks (``tasks.submit.v1``).

campaign-api owns it: checking a task needs the campaigns, agents, caller ids, credentials and
opt-out projection that campaign-api owns, and an HTTP task and a Kafka task must be checked
by the same code to be accepted or refused alike.

A message is the common envelope (``type: task.submit``, the task in ``data``) or the bare task
body. Either way it names its workspace (``workspace_id``) and carries a credential of that
workspace: an API key or a producer token (``api_key`` in the body, or a Kafka header
``authorization: Bearer …``). Messages are consumed in batches (one ``$in`` query per check for
the whole batch) and acknowledged after the batch is persisted; a redelivered batch is merged
by ``task_ref`` (default: the Kafka key, else topic/partition/offset). A task that cannot be
accepted goes to ``deadletter.v1`` with its reason (credentials redacted) and a ``rejected``
status goes to ``tasks.status.v1``; the consumer goes on."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from campaign_api.auth import hash_key
from campaign_api.realtime import RejectedTask, Rejection, parse_lenient
from campaign_api.realtime_repo import Doc, RealtimeRepository
from campaign_api.realtime_service import RealtimeService, Submitted
from outbound_core.events import DeadLettered, TaskStatusChanged
from outbound_core.kafka import TRANSIENT_ERRORS, EventBus
from outbound_core.metrics import DEADLETTERS
from outbound_core.settings import ServiceSettings
from outbound_core.topics import DEADLETTER, TASKS_STATUS, TASKS_SUBMIT

log = structlog.get_logger(__name__)
SECRET_FIELDS = ("api_key", "token")
CREDENTIAL_TTL = 30.0  # real seconds a verified credential is trusted (revocation delay)


@dataclass
class Incoming:
    partition: int
    offset: int
    key: str | None
    raw: bytes
    workspace_id: str | None = None
    org_id: str | None = None
    body: Any = None
    ref: str | None = None
    rejection: Rejection | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def redact(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: ("***" if k in SECRET_FIELDS else redact(v))
            for k, v in body.items()
            if k != "authorization"
        }
    return body


def unwrap(raw: Any, headers: dict[str, str]) -> tuple[str | None, str | None, Any]:
    """(workspace, credential, task body) of an envelope or a bare task. Pure."""
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    header_cred = auth.removeprefix("Bearer ").strip() or None
    if isinstance(raw, dict) and raw.get("type") == "task.submit" and "data" in raw:
        data = raw["data"]
        cred = (data.get("api_key") or data.get("token")) if isinstance(data, dict) else None
        return raw.get("workspace_id"), cred or header_cred, data
    if isinstance(raw, dict):
        ws = raw.get("workspace_id") or raw.get("workspace")
        cred = raw.get("api_key") or raw.get("token")
        return (str(ws) if ws else None), cred or header_cred, raw
    return None, header_cred, raw


class TaskIngress:
    def __init__(
        self,
        *,
        svc: RealtimeService,
        rt: RealtimeRepository,
        bus: EventBus,
        settings: ServiceSettings,
        batch: int = 500,
    ) -> None:
        self.svc = svc
        self.rt = rt
        self.bus = bus
        self.settings = settings
        self.batch = batch
        self._creds: dict[str, tuple[Doc | None, float]] = {}

    def register(self, broker: KafkaBroker) -> None:
        sub = broker.subscriber(
            TASKS_SUBMIT.name,
            batch=True,
            max_records=self.batch,
            batch_timeout_ms=50,
            group_id=f"{self.settings.service_name}.{TASKS_SUBMIT.name}",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.settings.kafka_session_timeout_ms // 5),
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )
        sub(self._on_batch)

    async def _credential(self, token: str) -> Doc | None:
        digest = hash_key(token)
        hit = self._creds.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        doc = await self.rt.credential(digest)
        if len(self._creds) > 10_000:
            self._creds.clear()
        self._creds[digest] = (doc, time.monotonic() + CREDENTIAL_TTL)
        return doc

    async def _on_batch(self, msg: KafkaMessage) -> None:
        records = msg.raw_message
        if not isinstance(records, tuple | list):
            records = (records,)
        try:
            await self.process(
                [
                    (
                        getattr(r, "partition", -1),
                        getattr(r, "offset", -1),
                        r.key.decode("utf-8", "replace") if r.key else None,
                        r.value or b"",
                        {k: v.decode("utf-8", "replace") for k, v in (r.headers or ())},
                    )
                    for r in records
                ]
            )
        except TRANSIENT_ERRORS as exc:
            log.warning("transient error; the batch will be redelivered", error=repr(exc))
            await asyncio.sleep(1.0)
            raise

    async def process(
        self, records: list[tuple[int, int, str | None, bytes, dict[str, str]]]
    ) -> list[Incoming]:
        items: list[Incoming] = []
        for partition, offset, key, value, headers in records:
            inc = Incoming(partition=partition, offset=offset, key=key, raw=value)
            items.append(inc)
            try:
                parsed = parse_lenient(value)
            except RejectedTask as exc:
                inc.rejection = exc.rejection
                continue
            ws, cred, body = unwrap(parsed, headers)
            inc.workspace_id, inc.body = ws, body
            inc.ref = (body.get("task_ref") if isinstance(body, dict) else None) or key
            inc.ref = inc.ref or f"{TASKS_SUBMIT.name}:{partition}:{offset}"
            if not ws:
                inc.rejection = Rejection("missing_workspace", "workspace_id", "name a workspace")
            elif not cred:
                inc.rejection = Rejection(
                    "missing_credential", "api_key", "send an API key or producer token"
                )
            else:
                doc = await self._credential(str(cred))
                if doc is None or doc.get("revoked"):
                    inc.rejection = Rejection(
                        "invalid_credential", "api_key", "the credential is not valid"
                    )
                elif doc["workspace_id"] != ws:
                    inc.rejection = Rejection(
                        "workspace_mismatch",
                        "workspace_id",
                        f"the credential is not entitled to workspace {ws}",
                    )
                else:
                    inc.org_id = doc["org_id"]
        by_ws: dict[tuple[str, str], list[Incoming]] = {}
        for inc in items:
            if inc.rejection is None and inc.org_id and inc.workspace_id:
                by_ws.setdefault((inc.org_id, inc.workspace_id), []).append(inc)
        for (org_id, ws_id), group in by_ws.items():
            results: list[Submitted] = await self.svc.submit(
                org_id=org_id,
                workspace_id=ws_id,
                items=[i.body for i in group],
                refs=[i.ref for i in group],
                notify_rejections=True,
            )
            for inc, res in zip(group, results, strict=True):
                inc.rejection = res.rejection
        await self._reject([i for i in items if i.rejection is not None], early=by_ws)
        return items

    async def _reject(
        self, rejected: list[Incoming], *, early: dict[tuple[str, str], list[Incoming]]
    ) -> None:
        submitted = {id(i) for group in early.values() for i in group}
        sends = []
        for inc in rejected:
            assert inc.rejection is not None
            r = inc.rejection
            org, ws = inc.org_id or "unknown", inc.workspace_id or "unknown"
            raw = inc.raw.decode("utf-8", "replace")
            if inc.body is not None:
                raw = json.dumps(redact(inc.body))
            dead = DeadLettered(
                source_topic=TASKS_SUBMIT.name,
                partition=inc.partition,
                offset=inc.offset,
                key=inc.key,
                consumer=f"{self.settings.service_name}.{TASKS_SUBMIT.name}",
                reason=r.reason,
                error=f"{r.field}: {r.message}"[:2000],
                raw=raw[:100_000],
            )
            env = self.bus.envelope(dead, org_id=org, workspace_id=ws)
            sends.append(self.bus.publish(DEADLETTER, env, key=TASKS_SUBMIT.name))
            DEADLETTERS.labels(self.bus.producer, TASKS_SUBMIT.name, r.reason).inc()
            if id(inc) not in submitted:  # the service already told the producer about these
                status = TaskStatusChanged(
                    task_ref=inc.ref, status="rejected", reason=r.reason, detail=r.message
                )
                senv = self.bus.envelope(status, org_id=org, workspace_id=ws)
                key = inc.ref or inc.key or senv.id
                sends.append(self.bus.publish(TASKS_STATUS, senv, key=key))
            log.warning("realtime task rejected", reason=r.reason, field=r.field)
        await asyncio.gather(*sends)
