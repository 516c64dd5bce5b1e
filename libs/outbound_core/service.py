"""The runtime every service is built on: broker, database, consumers, background loops and the
HTTP probes (``/healthz`` cheap, ``/readyz`` broker + database, ``/metrics``).

A service's ``app.py`` builds a :class:`Runtime`, registers its consumers and loops, and calls
:func:`build_http_app`; :func:`serve` runs it under uvicorn, which turns SIGTERM/SIGINT into an
orderly shutdown (stop consuming, stop loops, close clients) within the graceful timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from outbound_core.clock import Clock
from outbound_core.events import Payload
from outbound_core.kafka import (
    BatchConsumer,
    BatchHandler,
    Consumer,
    EventBus,
    Handler,
    broker_epoch,
    build_broker,
    by_key_concurrently,
    ensure_topics,
    handler_table,
    repair_after_broker_loss,
)
from outbound_core.logging import configure_logging
from outbound_core.metrics import render_latest
from outbound_core.mongo import Document, mongo_client, service_database
from outbound_core.settings import ServiceSettings
from outbound_core.topics import Topic

log = structlog.get_logger(__name__)

# In each service's own database: the broker epoch whose state the service has re-published.
RUNTIME_COLLECTION = "outbound_runtime"


class Ticker:
    """A background loop that runs ``fn`` every ``interval`` real seconds, or at once when
    kicked. A failing run is logged and the loop goes on: a bug never silently stops it."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[Any]], interval: float) -> None:
        self.name = name
        self.fn = fn
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace: float = 0.0) -> None:
        """Let the run in progress finish (up to ``grace`` seconds), then stop: a half-done
        run is repaired by the next start, but a finished one needs no repair."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        if not self._task.done():
            log.warning("background loop did not finish in time; cancelled", loop=self.name)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop failed; continuing", loop=self.name)
                if self._stopping:
                    return
                await asyncio.sleep(min(self.interval * 5, 2.0))
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)


@dataclass
class Runtime:
    settings: ServiceSettings
    clock: Clock
    broker: KafkaBroker
    bus: EventBus
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    tickers: list[Ticker] = field(default_factory=list)
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    # Run after the broker was found empty and repaired: re-publish what this service owns
    # (stable event ids, so consumers that had it already ignore it).
    after_broker_loss: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _epoch: str | None = None
    _republish_pending: bool = False

    @classmethod
    def create(cls, settings: ServiceSettings) -> Runtime:
        configure_logging(
            service=settings.service_name, level=settings.log_level, json=settings.log_json
        )
        clock = settings.clock()
        broker = build_broker(settings)
        client = mongo_client(settings)
        return cls(
            settings=settings,
            clock=clock,
            broker=broker,
            bus=EventBus(broker=broker, producer=settings.service_name, now=clock.now),
            client=client,
            db=service_database(client, settings),
        )

    def consume(
        self,
        topic: Topic,
        *handlers: tuple[type[Payload], Handler],
        fallback: Callable[..., Awaitable[None]] | None = None,
        listener: Any = None,
    ) -> Consumer:
        """Subscribe this service (its own consumer group) to ``topic``; ``listener`` (an
        aiokafka ``ConsumerRebalanceListener``) hears of partitions assigned and revoked."""
        consumer = Consumer(
            broker=self.broker,
            bus=self.bus,
            settings=self.settings,
            topic=topic,
            handlers={model.TYPE: (model, fn) for model, fn in handlers},
            group_id=f"{self.settings.service_name}.{topic.name}",
            fallback=fallback,
            listener=listener,
        )
        consumer.register()
        self.consumers.append(consumer)
        return consumer

    def consume_batch(
        self,
        topic: Topic,
        handler: BatchHandler,
        *models: type[Payload],
        max_records: int = 200,
        listener: Any = None,
    ) -> BatchConsumer:
        """Subscribe this service to ``topic``, handling each fetch's events of ``models`` in
        one call (see :class:`BatchConsumer`); ``listener`` as for :meth:`consume`."""
        consumer = BatchConsumer(
            broker=self.broker,
            bus=self.bus,
            settings=self.settings,
            topic=topic,
            models={m.TYPE: m for m in models},
            handler=handler,
            group_id=f"{self.settings.service_name}.{topic.name}",
            max_records=max_records,
            listener=listener,
        )
        consumer.register()
        return consumer

    def consume_by_key(
        self,
        topic: Topic,
        *handlers: tuple[type[Payload], Handler],
        key: Callable[[Any], str],
        concurrency: int,
        max_records: int = 200,
    ) -> BatchConsumer:
        """Like :meth:`consume`, but the events of each fetch are applied concurrently across
        keys and in order within one (``key`` of the payload, e.g. its task id): for a handler
        that waits on round trips and whose events of different keys are independent."""
        table = handler_table(*handlers)
        return self.consume_batch(
            topic,
            by_key_concurrently(table, key=key, concurrency=concurrency),
            *(model for model, _ in handlers),
            max_records=max_records,
        )

    def every(self, name: str, fn: Callable[[], Awaitable[Any]], interval: float) -> Ticker:
        ticker = Ticker(name, fn, interval)
        self.tickers.append(ticker)
        return ticker

    async def ready(self) -> dict[str, bool]:
        broker_ok = False
        with contextlib.suppress(Exception):
            broker_ok = bool(await self.broker.ping(timeout=2.0))
        db_ok = False
        with contextlib.suppress(Exception):
            await self.db.command("ping")
            db_ok = True
        return {"broker": broker_ok, "database": db_ok}

    async def _wait_for_infrastructure(self) -> None:
        delay = 0.2
        for attempt in range(60):
            try:
                await ensure_topics(self.settings)
                self._epoch = await broker_epoch(self.settings)
                await self.db.command("ping")
                # The broker this service last re-published its state to (or started on): if
                # it is not this one, the broker lost everything while the service was down,
                # or the service died in the middle of its re-publish. Either way: again.
                if self.after_broker_loss and await self._published_epoch() != self._epoch:
                    self._republish_pending = True
                return
            except Exception as exc:
                log.warning("infrastructure not ready", attempt=attempt, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise RuntimeError("broker or database did not become reachable")

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self._wait_for_infrastructure()
        # Connected (producer up) but not yet consuming: start-up hooks rebuild from MongoDB
        # and may publish (the planner re-announces its queued tasks).
        await self.broker.connect()
        for hook in self.startup:
            await hook()
        await self.broker.start()
        for ticker in self.tickers:
            ticker.start()
        watch = Ticker("broker-watch", self._watch_broker, self.settings.broker_check_seconds)
        watch.start()
        self.tickers.append(watch)
        log.info("service started", port=self.settings.http_port)
        try:
            yield
        finally:
            await self._stop_gracefully()

    async def _watch_broker(self) -> None:
        was = self._epoch
        self._epoch = await repair_after_broker_loss(self.settings, self.broker, was)
        if was is not None and self._epoch != was:
            self._republish_pending = True
        if self._republish_pending:
            # Until every hook ran to the end: a re-publish cut short (the new broker still
            # refusing produce requests, the database restarting) is run again on the next
            # check, or what it had not re-sent would be lost for good.
            for hook in self.after_broker_loss:
                await hook()
            await self._record_published_epoch()
            self._republish_pending = False
            log.info("state re-published after the broker loss", hooks=len(self.after_broker_loss))

    async def _published_epoch(self) -> str | None:
        doc = await self.db[RUNTIME_COLLECTION].find_one({"_id": "broker"})
        return None if doc is None else str(doc.get("epoch"))

    async def _record_published_epoch(self) -> None:
        await self.db[RUNTIME_COLLECTION].update_one(
            {"_id": "broker"}, {"$set": {"epoch": self._epoch}}, upsert=True
        )

    async def _stop_gracefully(self) -> None:
        """SIGTERM: background loops finish their run in progress, consumers stop taking
        messages and finish (and commit) the ones in hand, then the clients close. All of it
        within ``graceful_timeout_seconds``; past that the process exits with status 1 (what
        was not committed is redelivered to the next instance: at least once)."""
        grace = self.settings.graceful_timeout_seconds
        started = time.monotonic()
        log.info("service stopping", grace_seconds=grace)
        watchdog = threading.Timer(grace, _overran, args=(self.settings.service_name, grace))
        watchdog.daemon = True
        watchdog.start()
        try:
            # Stop consuming first; a handler in progress may still publish.
            await asyncio.gather(*(sub.stop() for sub in self.broker.subscribers))
            await asyncio.gather(*(t.stop(grace / 3) for t in self.tickers))
            await self.broker.stop()
            for hook in self.shutdown:
                await hook()
            await self.client.close()
        finally:
            watchdog.cancel()
        log.info("service stopped", seconds=round(time.monotonic() - started, 3))


def _overran(service: str, grace: float) -> None:
    log.error("shutdown overran the grace period; exiting", service=service, grace_seconds=grace)
    os._exit(1)


def probes_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.settings.service_name}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        checks = await runtime.ready()
        ok = all(checks.values())
        response.status_code = 200 if ok else 503
        return {"status": "ready" if ok else "not_ready", **checks}

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    return router


def build_http_app(
    runtime: Runtime, *routers: APIRouter, title: str | None = None, **fastapi_kwargs: Any
) -> FastAPI:
    app = FastAPI(
        title=title or runtime.settings.service_name,
        lifespan=runtime.lifespan,
        **fastapi_kwargs,
    )
    app.include_router(probes_router(runtime))
    for router in routers:
        app.include_router(router)
    app.state.runtime = runtime
    return app


async def _serve_until_stopped(server: uvicorn.Server) -> bool:
    """Run the server; a SIGTERM that arrives while it is still starting ends it at once.
    Start-up can wait a long time (a consumer group join waits out the session of a member
    that was killed), and uvicorn only looks at the signal once start-up is complete. Nothing
    was committed yet, so whatever was consumed is redelivered to the next instance."""
    serving = asyncio.ensure_future(server.serve())
    while not serving.done():
        await asyncio.wait({serving}, timeout=0.2)
        if server.should_exit and not server.started and not serving.done():
            log.info("stopped while starting")
            return True
    serving.result()
    return False


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run under uvicorn until SIGTERM/SIGINT."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        # HTTP requests are short; most of the grace period is for consumers and loops.
        timeout_graceful_shutdown=max(1, int(settings.graceful_timeout_seconds // 5)),
        lifespan="on",
    )
    # uvicorn re-raises the signal it caught to the previous handler once it has shut down;
    # with the default handler a clean SIGTERM stop would still end as "killed by SIGTERM"
    # (exit 143 in Kubernetes). A no-op handler makes an orderly stop exit with status 0.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    server = uvicorn.Server(config)
    factory = config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stopped_while_starting = loop.run_until_complete(_serve_until_stopped(server))
    # Stopped in order (consumers stopped, offsets committed, clients closed), or before
    # anything was committed: exit now, without waiting for tasks a start-up left behind.
    # A start-up that failed exits non-zero.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if server.started or stopped_while_starting else 3)
