"""Kafka plumbing: the broker factory, topic creation, the event bus and the consumer wrapper.

Consumption is at least once: every subscriber uses ``AckPolicy.NACK_ON_ERROR`` with a
``group_id`` per service (FastStream's Kafka default, ACK_FIRST, would be at most once). The
wrapper parses the envelope, dispatches by event type and decides what a failure means:

- a message that is not a valid envelope, or whose payload fails validation, is a *poison*
  message: it goes to ``deadletter.v1`` with the reason and is acknowledged;
- an infrastructure error (database or broker unreachable) is retried without limit, with
  backoff, by NACKing the message (Kafka redelivers it);
- any other handler error is retried ``handler_max_attempts`` times, then dead-lettered, so a
  bug never becomes a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from outbound_core.events import DeadLettered, Envelope, Payload, make_envelope
from outbound_core.metrics import DEADLETTERS, EVENTS_CONSUMED, EVENTS_PUBLISHED, HANDLER_SECONDS
from outbound_core.settings import ServiceSettings
from outbound_core.topics import ALL_TOPICS, DEADLETTER, Topic

log = structlog.get_logger(__name__)

P = TypeVar("P", bound=Payload)
Handler = Callable[[Envelope, Any], Awaitable[None]]
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    ServerSelectionTimeoutError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
)


def build_broker(settings: ServiceSettings) -> KafkaBroker:
    """A FastStream broker configured for this project's delivery guarantees."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        enable_idempotence=settings.kafka_idempotent_producer,
        acks="all",
        linger_ms=0,
        # a share of the service's grace period: loops and clients need the rest
        graceful_timeout=settings.graceful_timeout_seconds / 3,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
        log_level=logging.DEBUG,
    )


async def ensure_topics(
    settings: ServiceSettings, topics: tuple[Topic, ...] = ALL_TOPICS
) -> list[str]:
    """Create the project's topics if they do not exist (idempotent; every service calls it).
    Returns the names that were missing."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id=settings.service_name
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, settings.kafka_partitions, 1) for t in topics if t.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in missing]
    finally:
        await admin.close()


EPOCH_TOPIC = "outbound.broker-epoch"


async def broker_epoch(settings: ServiceSettings) -> str:
    """The identity of the broker's current life: the first message of a one-partition topic,
    written by whoever finds it empty. A broker that restarted empty gets a new one, and every
    service sees the change, whichever of them recreated the topics."""
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id=settings.service_name
    )
    await admin.start()
    try:
        if EPOCH_TOPIC not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(EPOCH_TOPIC, 1, 1)])
    finally:
        await admin.close()
    tp = TopicPartition(EPOCH_TOPIC, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        if (await consumer.end_offsets([tp]))[tp] == 0:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(EPOCH_TOPIC, uuid.uuid4().hex.encode())
            finally:
                await producer.stop()
        consumer.seek(tp, 0)
        msg = await asyncio.wait_for(consumer.getone(tp), timeout=10.0)
        return bytes(msg.value or b"").decode()
    finally:
        await consumer.stop()


async def repair_after_broker_loss(
    settings: ServiceSettings, broker: KafkaBroker, known_epoch: str | None
) -> str:
    """A broker that restarted empty (the embedded one keeps nothing; a real cluster that lost
    its topics) leaves consumers committing to partitions that no longer exist. If the broker's
    epoch changed since ``known_epoch``, recreate the topics and reconnect producer and
    consumers (the groups start again from the earliest offset; the caller re-publishes what
    MongoDB says was lost). Returns the current epoch."""
    epoch = await broker_epoch(settings)
    if known_epoch is None or epoch == known_epoch:
        return epoch
    log.warning("the broker restarted empty; reconnecting", epoch=epoch, was=known_epoch)
    await broker.stop()
    await broker.start()
    return epoch


@dataclass
class EventBus:
    """Publishes envelopes; keeps the producer name and the clock in one place."""

    broker: KafkaBroker
    producer: str
    now: Callable[[], Any]

    def envelope(
        self,
        payload: Payload,
        *,
        org_id: str,
        workspace_id: str,
        causation: Envelope | None = None,
        dedupe_parts: tuple[object, ...] | None = None,
        correlation_id: str | None = None,
        occurred_at: Any = None,
    ) -> Envelope:
        return make_envelope(
            payload,
            producer=self.producer,
            org_id=org_id,
            workspace_id=workspace_id,
            occurred_at=occurred_at if occurred_at is not None else self.now(),
            causation=causation,
            dedupe_parts=dedupe_parts,
            correlation_id=correlation_id,
        )

    async def publish(self, topic: Topic, envelope: Envelope, *, key: str) -> None:
        await self.broker.publish(
            envelope.model_dump_json().encode(),
            topic.name,
            key=key.encode(),
            headers={"event-type": envelope.type, "event-id": envelope.id},
        )
        EVENTS_PUBLISHED.labels(self.producer, topic.name, envelope.type).inc()

    async def emit(
        self,
        topic: Topic,
        payload: Payload,
        *,
        key: str,
        org_id: str,
        workspace_id: str,
        causation: Envelope | None = None,
        dedupe_parts: tuple[object, ...] | None = None,
        occurred_at: Any = None,
    ) -> Envelope:
        """Publish ``payload``; ``occurred_at`` (default now) for an event told again."""
        env = self.envelope(
            payload,
            org_id=org_id,
            workspace_id=workspace_id,
            causation=causation,
            dedupe_parts=dedupe_parts,
            occurred_at=occurred_at,
        )
        await self.publish(topic, env, key=key)
        return env


class PoisonMessage(Exception):
    """A message that can never be processed; the reason goes to the dead-letter topic."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


def parse_envelope(body: bytes) -> Envelope:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage("not_json", str(exc)) from exc
    if not isinstance(raw, dict):
        raise PoisonMessage("not_an_envelope", "message is not a JSON object")
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise PoisonMessage("invalid_envelope", _errors(exc)) from exc


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
    )


def subscriber_options(settings: ServiceSettings) -> dict[str, Any]:
    """What every consumer of ours asks of the broker: commit only what was handled, start at
    the beginning of a new group, and the configured session and fetch timings."""
    return {
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.kafka_session_timeout_ms // 5),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


@dataclass
class Consumer:
    """Registers one subscriber for ``topic`` dispatching by event type to ``handlers``.

    Handlers receive ``(envelope, payload)``; types not in ``handlers`` are skipped (topics
    carry several types and each consumer wants only some)."""

    broker: KafkaBroker
    bus: EventBus
    settings: ServiceSettings
    topic: Topic
    handlers: Mapping[str, tuple[type[Payload], Handler]]
    group_id: str
    fallback: Callable[[bytes, KafkaMessage], Awaitable[None]] | None = None
    listener: Any = None  # an aiokafka ConsumerRebalanceListener, for services that own state
    subscriber: Any = None
    _failures: dict[tuple[int, int], int] = field(default_factory=dict)

    def register(self) -> None:
        sub = self.broker.subscriber(
            self.topic.name,
            group_id=self.group_id,
            **subscriber_options(self.settings),
            **({"listener": self.listener} if self.listener is not None else {}),
        )
        sub(self._on_message)
        self.subscriber = sub

    async def _on_message(self, msg: KafkaMessage) -> None:
        record = msg.raw_message
        partition = getattr(record, "partition", -1)
        offset = getattr(record, "offset", -1)
        body: bytes = msg.body
        started = time.perf_counter()
        etype = "?"
        try:
            try:
                env = parse_envelope(body)
            except PoisonMessage:
                if self.fallback is not None:
                    await self.fallback(body, msg)
                    return
                raise
            etype = env.type
            entry = self.handlers.get(env.type)
            if entry is None:
                EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, etype, "ignored").inc()
                return
            model, handler = entry
            try:
                payload = model.model_validate(env.data)
            except ValidationError as exc:
                raise PoisonMessage("invalid_payload", _errors(exc)) from exc
            with structlog.contextvars.bound_contextvars(
                correlation_id=env.correlation_id, event_id=env.id, event_type=env.type
            ):
                await handler(env, payload)
            self._failures.pop((partition, offset), None)
            EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, etype, "ok").inc()
        except PoisonMessage as exc:
            await self._deadletter(msg, body, exc.reason, exc.error, partition, offset)
        except TRANSIENT_ERRORS as exc:
            # Not the message's fault: back off and let Kafka redeliver it, without limit.
            EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, etype, "retried").inc()
            log.warning("transient error; message will be redelivered", error=repr(exc))
            await asyncio.sleep(1.0)
            raise
        except Exception as exc:
            count = self._failures.get((partition, offset), 0) + 1
            self._failures[(partition, offset)] = count
            if count >= self.settings.handler_max_attempts:
                self._failures.pop((partition, offset), None)
                log.exception("handler keeps failing; dead-lettering", attempts=count)
                await self._deadletter(msg, body, "handler_error", repr(exc), partition, offset)
                return
            EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, etype, "retried").inc()
            log.warning("handler failed; will retry", attempts=count, error=repr(exc))
            await asyncio.sleep(min(2.0, 0.1 * 2**count))
            raise
        finally:
            HANDLER_SECONDS.labels(self.bus.producer, etype).observe(time.perf_counter() - started)

    async def _deadletter(
        self, msg: KafkaMessage, body: bytes, reason: str, error: str, partition: int, offset: int
    ) -> None:
        key = getattr(msg.raw_message, "key", None)
        org_id, ws_id = _tenancy_hint(body)
        payload = DeadLettered(
            source_topic=self.topic.name,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
            consumer=self.group_id,
            reason=reason,
            error=error[:2000],
            raw=body.decode("utf-8", "replace")[:100_000],
        )
        env = self.bus.envelope(payload, org_id=org_id, workspace_id=ws_id)
        await self.bus.publish(DEADLETTER, env, key=self.topic.name)
        DEADLETTERS.labels(self.bus.producer, self.topic.name, reason).inc()
        EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, "?", "deadlettered").inc()
        log.warning(
            "message dead-lettered",
            topic=self.topic.name,
            partition=partition,
            offset=offset,
            reason=reason,
            error=error[:500],
        )


def _tenancy_hint(body: bytes) -> tuple[str, str]:
    try:
        raw = json.loads(body)
        if isinstance(raw, dict):
            return str(raw.get("org_id") or "unknown"), str(raw.get("workspace_id") or "unknown")
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    return "unknown", "unknown"


def handler_table(
    *entries: tuple[type[Payload], Handler],
) -> dict[str, tuple[type[Payload], Handler]]:
    """``handler_table((CampaignCreated, on_created), …)`` keyed by event type."""
    return {model.TYPE: (model, fn) for model, fn in entries}


BatchHandler = Callable[[list[tuple[Envelope, Any]]], Awaitable[None]]


def by_key_concurrently(
    handlers: Mapping[str, tuple[type[Payload], Handler]],
    *,
    key: Callable[[Any], str],
    concurrency: int,
) -> BatchHandler:
    """A batch handler that applies a fetch's events with ``handlers`` (by event type), the
    events of one key (e.g. one task) in the order they came, different keys concurrently, up
    to ``concurrency`` at once.

    A consumer that handles one event at a time waits on each event's round trips in turn; this
    overlaps them across keys while keeping each key's order. The batch is committed only when
    every event of it was applied; when one fails, the whole batch comes again (handlers are
    idempotent under redelivery), and one that keeps failing is dead-lettered alone (see
    :class:`BatchConsumer`)."""
    limit = asyncio.Semaphore(concurrency)

    async def one_key(events: list[tuple[Envelope, Any]]) -> None:
        async with limit:
            for env, payload in events:
                _model, handler = handlers[env.type]
                with structlog.contextvars.bound_contextvars(
                    correlation_id=env.correlation_id, event_id=env.id, event_type=env.type
                ):
                    await handler(env, payload)

    async def handle(items: list[tuple[Envelope, Any]]) -> None:
        groups: dict[str, list[tuple[Envelope, Any]]] = {}
        for env, payload in items:
            groups.setdefault(key(payload), []).append((env, payload))
        results = await asyncio.gather(
            *(one_key(events) for events in groups.values()), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    return handle


@dataclass
class BatchConsumer:
    """Like :class:`Consumer`, but hands the handler every valid event of one fetch at once
    (up to ``max_records``), so a service can write what many events cause in one round trip.

    Poison messages are dead-lettered one by one and the rest of the batch goes on; an
    infrastructure error NACKs the batch (redelivered without limit); a handler that keeps
    failing on a batch gets its events one at a time, and only the failing ones are
    dead-lettered."""

    broker: KafkaBroker
    bus: EventBus
    settings: ServiceSettings
    topic: Topic
    models: Mapping[str, type[Payload]]
    handler: BatchHandler
    group_id: str
    max_records: int = 200
    listener: Any = None  # an aiokafka ConsumerRebalanceListener, for services that own state
    subscriber: Any = None
    _failures: dict[tuple[int, int], int] = field(default_factory=dict)

    def register(self) -> None:
        sub = self.broker.subscriber(
            self.topic.name,
            group_id=self.group_id,
            **subscriber_options(self.settings),
            batch=True,
            max_records=self.max_records,
            batch_timeout_ms=self.settings.kafka_fetch_max_wait_ms,
            **({"listener": self.listener} if self.listener is not None else {}),
        )
        sub(self._on_batch)
        self.subscriber = sub

    async def _on_batch(self, msg: KafkaMessage) -> None:
        records: tuple[Any, ...] = tuple(msg.raw_message)
        if not records:
            return
        started = time.perf_counter()
        items: list[tuple[Envelope, Any]] = []
        sources: list[Any] = []
        for rec in records:
            body: bytes = rec.value or b""
            try:
                env = parse_envelope(body)
                model = self.models.get(env.type)
                if model is None:
                    EVENTS_CONSUMED.labels(
                        self.bus.producer, self.topic.name, env.type, "ignored"
                    ).inc()
                    continue
                try:
                    payload = model.model_validate(env.data)
                except ValidationError as exc:
                    raise PoisonMessage("invalid_payload", _errors(exc)) from exc
            except PoisonMessage as exc:
                await self._deadletter(rec, exc.reason, exc.error)
                continue
            items.append((env, payload))
            sources.append(rec)
        if not items:
            return
        first = (records[0].partition, records[0].offset)
        try:
            await self.handler(items)
        except TRANSIENT_ERRORS as exc:
            log.warning("transient error; batch will be redelivered", error=repr(exc))
            await asyncio.sleep(1.0)
            raise
        except Exception as exc:
            count = self._failures.get(first, 0) + 1
            self._failures[first] = count
            if count < self.settings.handler_max_attempts:
                log.warning("batch handler failed; will retry", attempts=count, error=repr(exc))
                await asyncio.sleep(min(2.0, 0.1 * 2**count))
                raise
            self._failures.pop(first, None)
            await self._one_by_one(items, sources)
        else:
            self._failures.pop(first, None)
        for env, _ in items:
            EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, env.type, "ok").inc()
        HANDLER_SECONDS.labels(self.bus.producer, f"batch:{self.topic.name}").observe(
            time.perf_counter() - started
        )

    async def _one_by_one(self, items: list[tuple[Envelope, Any]], sources: list[Any]) -> None:
        for item, rec in zip(items, sources, strict=True):
            try:
                await self.handler([item])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                log.exception("handler keeps failing; dead-lettering", event_id=item[0].id)
                await self._deadletter(rec, "handler_error", repr(exc))

    async def _deadletter(self, rec: Any, reason: str, error: str) -> None:
        body: bytes = rec.value or b""
        key = rec.key
        org_id, ws_id = _tenancy_hint(body)
        payload = DeadLettered(
            source_topic=self.topic.name,
            partition=rec.partition,
            offset=rec.offset,
            key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
            consumer=self.group_id,
            reason=reason,
            error=error[:2000],
            raw=body.decode("utf-8", "replace")[:100_000],
        )
        env = self.bus.envelope(payload, org_id=org_id, workspace_id=ws_id)
        await self.bus.publish(DEADLETTER, env, key=self.topic.name)
        DEADLETTERS.labels(self.bus.producer, self.topic.name, reason).inc()
        EVENTS_CONSUMED.labels(self.bus.producer, self.topic.name, "?", "deadlettered").inc()
        log.warning("message dead-lettered", topic=self.topic.name, reason=reason, error=error)
