"""The runtime every service is built on: broker, database, consumers, background loops and the
HTTP probes (``/healthz`` cheap, ``/readyz`` broker + database, ``/metrics``).

A service's ``app.py`` builds a :class:`Runtime`, registers its consumers and loops, and calls
:func:`build_http_app`; :func:`serve` runs it under uvicorn, which turns SIGTERM/SIGINT into an
orderly shutdown (stop consuming, stop loops, close clients) within the graceful timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    build_broker,
    ensure_topics,
)
from outbound_core.logging import configure_logging
from outbound_core.metrics import render_latest
from outbound_core.mongo import Document, mongo_client, service_database
from outbound_core.settings import ServiceSettings
from outbound_core.topics import Topic

log = structlog.get_logger(__name__)


class Ticker:
    """A background loop that runs ``fn`` every ``interval`` real seconds, or at once when
    kicked. A failing run is logged and the loop goes on: a bug never silently stops it."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[Any]], interval: float) -> None:
        self.name = name
        self.fn = fn
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop failed; continuing", loop=self.name)
                await asyncio.sleep(min(self.interval * 5, 2.0))
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
    ) -> Consumer:
        """Subscribe this service (its own consumer group) to ``topic``."""
        consumer = Consumer(
            broker=self.broker,
            bus=self.bus,
            settings=self.settings,
            topic=topic,
            handlers={model.TYPE: (model, fn) for model, fn in handlers},
            group_id=f"{self.settings.service_name}.{topic.name}",
            fallback=fallback,
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
    ) -> BatchConsumer:
        """Subscribe this service to ``topic``, handling each fetch's events of ``models`` in
        one call (see :class:`BatchConsumer`)."""
        consumer = BatchConsumer(
            broker=self.broker,
            bus=self.bus,
            settings=self.settings,
            topic=topic,
            models={m.TYPE: m for m in models},
            handler=handler,
            group_id=f"{self.settings.service_name}.{topic.name}",
            max_records=max_records,
        )
        consumer.register()
        return consumer

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
                await self.db.command("ping")
                return
            except Exception as exc:
                log.warning("infrastructure not ready", attempt=attempt, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise RuntimeError("broker or database did not become reachable")

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self._wait_for_infrastructure()
        for hook in self.startup:
            await hook()
        await self.broker.start()
        for ticker in self.tickers:
            ticker.start()
        log.info("service started", port=self.settings.http_port)
        try:
            yield
        finally:
            log.info("service stopping")
            for ticker in self.tickers:
                await ticker.stop()
            await self.broker.stop()
            for hook in self.shutdown:
                await hook()
            await self.client.close()
            log.info("service stopped")


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


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run under uvicorn until SIGTERM/SIGINT."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
        lifespan="on",
    )
    uvicorn.Server(config).run()
