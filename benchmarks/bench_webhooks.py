"""Webhook delivery: deliveries per second and latency from a lead change published on
``leads.v1`` to its receipt by a local subscriber, through the real webhook service (its own
process, on the run's broker and database), with 1 endpoint and with 100 endpoints of which one
is dead (answers 503 to everything)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from benchmarks import Context, Result, percentile
from outbound_core.embedded import free_port
from outbound_core.events import Envelope, LeadUpdated
from outbound_core.topics import LEADS

DEAD_PATH = "/dead"


@dataclass
class Receiver:
    """A minimal HTTP/1.1 keep-alive server; records (path, lead, seq, latency) per request."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    dead_hits: int = 0
    last_at: float = 0.0
    server: asyncio.Server | None = None
    port: int = 0
    expected: int = 1 << 30
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                now = time.time()
                if path == DEAD_PATH:
                    self.dead_hits += 1
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                else:
                    data = json.loads(body)["data"]
                    key = (path, data["lead_id"], int(data["seq"]))
                    if key not in self.seen:
                        self.seen.add(key)
                        sent = float(data["variables"]["t"])
                        self.latencies.setdefault(path, []).append((now - sent) * 1000)
                        self.last_at = now
                        if self.ok_count() >= self.expected:
                            self.done.set()
                    writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    def ok_count(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def _service(ctx: Context, tag: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    log = open(Path(ctx.data_dir) / f"bench-webhook-{tag}.log", "ab")  # noqa: ASYNC230 - once
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": ctx.kafka_url,
        "MONGODB_URL": ctx.mongo_url,
        "WEBHOOK_HTTP_PORT": str(port),
        "WEBHOOK_SERVICE_NAME": f"bench-webhook-{tag}",
        "WEBHOOK_DATABASE": f"bench_webhook_{tag}",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "OUTBOUND_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    for k in ("OUTBOUND_CLOCK_SPEED", "OUTBOUND_CLOCK_START", "OUTBOUND_CLOCK_ANCHOR"):
        env.pop(k, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webhook", stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    return proc, url
            await asyncio.sleep(0.2)
    proc.kill()
    await proc.wait()
    raise RuntimeError("webhook service did not become ready")


async def _scenario(
    ctx: Context, *, tag: str, endpoints: int, leads: int, changes: int
) -> list[Result]:
    receiver = Receiver()
    await receiver.start()
    proc, url = await _service(ctx, tag)
    ws = f"ws_bench_{tag}"
    headers = {"X-Outbound-Org-Id": "org_bench", "X-Outbound-Workspace-Id": ws}
    producer = AIOKafkaProducer(bootstrap_servers=ctx.kafka_url, linger_ms=5)
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
            for i in range(endpoints):
                path = DEAD_PATH if (endpoints > 1 and i == 0) else f"/ok{i}"
                r = await api.post(
                    "/internal/v1/webhooks",
                    json={
                        "url": f"http://127.0.0.1:{receiver.port}{path}",
                        "events": ["campaign.lead.updated"],
                    },
                )
                r.raise_for_status()
        live = endpoints - (1 if endpoints > 1 else 0)
        await producer.start()
        cpu0 = _cpu_seconds(proc.pid)
        expected = live * leads * changes
        started = time.time()
        for seq in range(1, changes + 1):
            for n in range(leads):
                task = f"tsk_{tag}_{n}"
                p = LeadUpdated(
                    task_id=task,
                    campaign_id=f"cmp_{tag}",
                    seq=seq,
                    status="dialing",
                    variables={"t": repr(time.time())},
                )
                env = Envelope(
                    id=f"evt_{uuid.uuid4().hex}",
                    type=p.TYPE,
                    occurred_at=datetime.now(UTC),
                    producer="bench",
                    org_id="org_bench",
                    workspace_id=ws,
                    correlation_id="bench",
                    data=p.model_dump(mode="json"),
                )
                await producer.send(LEADS.name, env.model_dump_json().encode(), key=task.encode())
        await producer.flush()
        receiver.expected = expected
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.done.wait(), timeout=60)
        got = receiver.ok_count()
        cpu = _cpu_seconds(proc.pid) - cpu0
        elapsed = max(receiver.last_at - started, 1e-9)
        lat = [x for v in receiver.latencies.values() for x in v]
        label = f"{endpoints} endpoint" + ("s, 1 dead" if endpoints > 1 else "")
        note = f"{leads} leads × {changes} changes published at once; {got}/{expected} delivered"
        out = [
            Result("webhooks", f"deliveries/s ({label})", got / elapsed, "/s", note=note),
            Result("webhooks", f"lead change → receipt p50 ({label})", percentile(lat, 50), "ms"),
            Result(
                "webhooks",
                f"webhook service CPU per delivery ({label})",
                cpu * 1000 / max(got, 1),
                "ms",
                note="CPU time, not wall time: less sensitive to the machine's load",
            ),
            Result("webhooks", f"lead change → receipt p99 ({label})", percentile(lat, 99), "ms"),
        ]
        if endpoints > 1:
            ok_p99 = [percentile(v, 99) for v in receiver.latencies.values()]
            out.append(
                Result(
                    "webhooks",
                    "slowest live endpoint's p99 (dead endpoint present)",
                    max(ok_p99) if ok_p99 else float("nan"),
                    "ms",
                    note=f"the dead endpoint answered 503 to {receiver.dead_hits} attempts",
                )
            )
        if got < expected:
            ctx.notes.append(f"bench_webhooks {label}: only {got} of {expected} delivered in time")
        return out
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if receiver.server is not None:
            receiver.server.close()


async def run(ctx: Context) -> list[Result]:
    tag = uuid.uuid4().hex[:6]
    one = await _scenario(ctx, tag=f"{tag}a", endpoints=1, leads=20 if ctx.quick else 60, changes=2)
    many = await _scenario(
        ctx, tag=f"{tag}b", endpoints=100, leads=2 if ctx.quick else 5, changes=1
    )
    ctx.notes.append(
        "bench_webhooks: the webhook service runs as its own process with default settings "
        "(64 deliveries in flight, 8 per endpoint); latency includes the broker hop, intake "
        "into MongoDB, the sender's poll and the HTTP POST, and queueing behind the burst."
    )
    return one + many
