"""The faults the chaos runner injects into a running :class:`DevStack`. Each only touches
processes that stack started (it knows their PIDs) and topics of its own broker."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import MongoClient

from outbound_core.devstack import SERVICES, DevStack
from outbound_core.invariants_cli import DATABASES
from outbound_core.topics import ALL_TOPICS, DEADLETTER

log = structlog.get_logger(__name__)

SERVICE_NAMES = tuple(name for name, *_ in SERVICES)
# Topics a service consumes (replayed from the beginning = every event delivered again).
INPUT_TOPICS = tuple(t.name for t in ALL_TOPICS if t is not DEADLETTER)
KINDS = (
    "kill_one",
    "kill_several",
    "broker_restart",
    "db_restart",
    "replay",
    "poison",
    "provider_outage",
)


@dataclass
class Injector:
    stack: DevStack
    rng: random.Random
    max_down: float = 4.0
    done: Counter[str] = field(default_factory=Counter)
    _restarts: list[threading.Thread] = field(default_factory=list)

    def inject(self, kind: str) -> None:
        log.info("chaos: injecting", fault=kind)
        getattr(self, kind)()
        self.done[kind] += 1

    # processes ----------------------------------------------------------------------------------
    def _kill_and_restart(self, names: list[str]) -> None:
        for name in names:
            self.stack.services[name].kill()  # SIGKILL to the process group we started
        down = self.rng.uniform(0.2, self.max_down)

        def later() -> None:
            time.sleep(down)
            for name in names:
                self.stack.restart_service(name)

        t = threading.Thread(target=later, daemon=True)
        t.start()
        self._restarts.append(t)
        log.info("chaos: killed", services=names, restart_in=round(down, 2))

    def kill_one(self) -> None:
        self._kill_and_restart([self.rng.choice(SERVICE_NAMES)])

    def kill_several(self) -> None:
        self._kill_and_restart(self.rng.sample(SERVICE_NAMES, self.rng.randint(2, 4)))

    def broker_restart(self) -> None:
        # Every topic, message and committed offset is gone: MongoDB must repair it all.
        self.stack.restart_infrastructure("kafka", delay=self.rng.uniform(0.0, 1.0))

    def db_restart(self) -> None:
        self.stack.restart_infrastructure("mongodb", delay=self.rng.uniform(0.0, 1.0))

    def wait_restarts(self) -> None:
        for t in self._restarts:
            t.join()
        self._restarts.clear()

    # the phone network --------------------------------------------------------------------------
    def provider_outage(self) -> None:
        """The provider answers every new call with a 5xx for 10-30 real seconds (five to
        fifteen virtual hours at 1800x): long enough for the circuit breaker to trip (2-8 s
        met too few calls for it), which must resume the campaign by itself once the network
        is back."""
        seconds = self.rng.uniform(10.0, 30.0)
        assert self.stack.mongo_url is not None
        with MongoClient[dict[str, object]](
            self.stack.mongo_url, serverSelectionTimeoutMS=60_000
        ) as client:
            client[DATABASES["simulator"]]["sim_controls"].replace_one(
                {"_id": "outage"},
                {"until": time.time() + seconds, "outcome": "error_5xx"},
                upsert=True,
            )
        log.info("chaos: provider down", seconds=round(seconds, 1))

    # messages -----------------------------------------------------------------------------------
    def replay(self) -> None:
        """Every input topic read from the beginning and published again: each event is
        delivered a second time, long after the first."""
        topics = self.rng.sample(INPUT_TOPICS, self.rng.randint(1, len(INPUT_TOPICS)))
        count = asyncio.run(_replay(self._kafka(), topics))
        log.info("chaos: replayed", topics=topics, messages=count)

    def poison(self) -> None:
        asyncio.run(_poison(self._kafka(), INPUT_TOPICS))

    def _kafka(self) -> str:
        assert self.stack.kafka_url is not None
        return self.stack.kafka_url


POISON: tuple[bytes, ...] = (
    b"\xff\xfe not json",
    b"[1, 2, 3]",
    b'{"id": "evt_x", "type": "task.queued"}',
    b'{"id": "evt_poison", "type": "task.dispatched", "version": 1,'
    b' "occurred_at": "2026-03-02T15:00:00Z", "producer": "chaos", "org_id": "org_x",'
    b' "workspace_id": "ws_x", "correlation_id": "cor_x", "data": {"task_id": 7}}',
)


async def _poison(servers: str, topics: tuple[str, ...], patience: float = 60.0) -> None:
    """Every kind of poison on every input topic. Right after a broker restart the topics do
    not exist until the services find the broker empty and recreate them: a send that fails
    is tried again, like any producer would, for up to ``patience`` seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    deadline = time.monotonic() + patience
    try:
        for topic in topics:
            for body in POISON:
                while True:
                    try:
                        await producer.send_and_wait(topic, body, key=b"chaos")
                        break
                    except KafkaError as exc:
                        if time.monotonic() > deadline:
                            log.warning("chaos: poison not delivered", topic=topic, error=repr(exc))
                            break
                        await asyncio.sleep(1.0)
    finally:
        await producer.stop()


async def _replay(servers: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await consumer.start()
    await producer.start()
    count = 0
    try:
        await consumer.topics()  # fetch metadata: a fresh client knows no partitions yet
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if not tps:
                continue
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            batch = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                got = await consumer.getmany(*tps, timeout_ms=1000)
                if not got:
                    break
                for records in got.values():
                    batch.extend(records)
            for r in batch:
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers or ()))
                count += 1
            await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return count


def terminate(stack: DevStack, name: str, timeout: float) -> tuple[int | None, float]:
    """SIGTERM one service; its exit status and how long it took to stop."""
    svc = stack.services[name]
    started = time.monotonic()
    svc.signal(signal.SIGTERM)
    svc.wait(timeout)
    code = svc.proc.poll() if svc.proc is not None else None
    return code, time.monotonic() - started
