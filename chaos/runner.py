"""One chaos run: its own stack, a campaign across several time zones, faults from a seeded
RNG while it runs, then the invariant checker once it has settled."""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from pymongo import MongoClient

from chaos.faults import KINDS, SERVICE_NAMES, Injector, terminate
from outbound_core.devstack import DevStack
from outbound_core.invariants import Breach, Options, check
from outbound_core.invariants_cli import load_snapshot

log = structlog.get_logger(__name__)

CLOCK_START = "2026-03-02T14:00:00+00:00"  # Monday: 09:00 in New York, 19:30 in Kolkata
# (prefix, digits after it): numbers whose zone comes from the number itself
ZONES = (
    ("+1212736", 4),  # New York
    ("+1312736", 4),  # Chicago
    ("+1303736", 4),  # Denver
    ("+1213736", 4),  # Los Angeles
    ("+44207946", 4),  # London
    ("+9198765", 5),  # India
    ("+6129123", 4),  # Sydney
)
SCRIPTS = (
    "interested",
    "no_answer,interested",
    "busy,no_answer,not_interested",
    "no_answer",
    "voicemail,callback,completed",
    "opt_out",
    "wrong_number",
    "timeout,interested",
    "hang,no_answer,interested",
)
# Unscripted contacts draw from these, provider faults included.
WEIGHTS = {
    "interested": 0.14,
    "not_interested": 0.16,
    "callback": 0.05,
    "voicemail": 0.1,
    "wrong_number": 0.03,
    "no_answer": 0.22,
    "busy": 0.07,
    "failed": 0.03,
    "opt_out": 0.03,
    "completed": 0.08,
    "short": 0.03,
    "timeout": 0.02,
    "error_5xx": 0.02,
    "hang": 0.02,
}


@dataclass(frozen=True)
class RunConfig:
    seed: int
    contacts: int = 1000
    clock_speed: float = 1800.0
    fault_seconds: float = 60.0
    fault_gap: tuple[float, float] = (2.0, 5.0)
    deadline_seconds: float = 900.0
    settle_seconds: float = 60.0
    max_slots: int = 10
    graceful_timeout: float = 10.0
    keep_dir: Path | None = None
    kinds: tuple[str, ...] = KINDS  # the faults injected (a graceful SIGTERM always is)


@dataclass
class RunResult:
    seed: int
    contacts: int
    faults: Counter[str] = field(default_factory=Counter)
    breaches: list[Breach] = field(default_factory=list)
    completed: bool = False
    seconds: float = 0.0
    calls: int = 0
    data_dir: str = ""


def contacts(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        prefix, digits = ZONES[i % len(ZONES)]
        c: dict[str, Any] = {"phone": f"{prefix}{i:0{digits}d}", "name": f"C{i}"}
        if rng.random() < 0.4:
            c["sim_outcomes"] = rng.choice(SCRIPTS)
        out.append(c)
    return out


def _stack(cfg: RunConfig, data_dir: Path) -> DevStack:
    return DevStack(
        data_dir=data_dir,
        api_key=f"ob_chaos_{secrets.token_urlsafe(16)}",
        clock_speed=cfg.clock_speed,
        clock_start=CLOCK_START,
        free_ports=True,
        extra_env={
            "OUTBOUND_ENVIRONMENT": "test",
            "OUTBOUND_LOG_LEVEL": "INFO",
            "OUTBOUND_GRACEFUL_TIMEOUT": str(cfg.graceful_timeout),
            "DIALER_SIM_OUTCOME_WEIGHTS": json.dumps(WEIGHTS),
            # Hanging calls and lost releases come back sooner than the default half minute.
            "DIALER_LEASE_MIN_REAL_SECONDS": "20",
            "SLOT_ALLOCATOR_LEASE_MIN_REAL_SECONDS": "20",
            "TASK_PLANNER_RECONCILE_SECONDS": "2",
            "TASK_PLANNER_RECONCILE_STALE_SECONDS": "5",
        },
    )


def _create_campaign(api: httpx.Client, rng: random.Random, cfg: RunConfig) -> str:
    agent = api.post(
        "/v1/agents", json={"name": "Chaos", "language": "en-US", "greeting": "Hi {{NAME}}."}
    )
    agent.raise_for_status()
    r = api.post(
        "/v1/campaigns",
        json={
            "name": f"chaos seed {cfg.seed}",
            "script_id": agent.json()["id"],
            "language": "en-US",
            "max_attempts": 3,
            "retry_interval_minutes": 30,
            "max_slots": cfg.max_slots,
            "calling_hours": {"start": "09:00", "end": "20:00"},
            "contacts": contacts(rng, cfg.contacts),
        },
    )
    if r.status_code != 201:
        raise RuntimeError(f"campaign refused: {r.status_code} {r.text[:2000]}")
    cid = str(r.json()["id"])
    api.patch(f"/v1/campaigns/{cid}", json={"action": "start"}).raise_for_status()
    return cid


def _campaign(api: httpx.Client, cid: str) -> dict[str, Any]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = api.get(f"/v1/campaigns/{cid}", timeout=5.0)  # an API still reconnecting: ask later
        if r.status_code == 200:
            return dict(r.json())
    return {}


def _status(api: httpx.Client, cid: str) -> str | None:
    status = _campaign(api, cid).get("status")
    return None if status is None else str(status)


def _check(stack: DevStack, cfg: RunConfig) -> tuple[list[Breach], int]:
    assert stack.mongo_url is not None
    with MongoClient[dict[str, Any]](stack.mongo_url, serverSelectionTimeoutMS=20_000) as client:
        snap = load_snapshot(client)
    slack = timedelta(seconds=1.5 * cfg.clock_speed)  # guard-to-network delay, in real time
    return check(snap, Options(window_slack=slack, settled=True)), len(snap.sim_calls)


def run(cfg: RunConfig) -> RunResult:
    """One seeded run; never raises for a breach (it is in the result)."""
    rng = random.Random(cfg.seed)  # noqa: S311 - reproducible faults, not crypto
    result = RunResult(seed=cfg.seed, contacts=cfg.contacts)
    started = time.monotonic()
    data_dir = cfg.keep_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{cfg.seed}-"))
    result.data_dir = str(data_dir)
    stack = _stack(cfg, data_dir)
    try:
        stack.start()
        with httpx.Client(
            base_url=stack.api_url,
            timeout=60.0,
            headers={"Authorization": f"Bearer {stack.api_key}"},
        ) as api:
            cid = _create_campaign(api, rng, cfg)
            inject = Injector(stack=stack, rng=rng)
            _fault_phase(stack, api, cid, cfg, rng, inject, result)
            inject.wait_restarts()
            stack.wait_ready()
            deadline = started + cfg.deadline_seconds
            while time.monotonic() < deadline and _status(api, cid) != "completed":
                time.sleep(1.0)
            last = _campaign(api, cid)
            result.completed = last.get("status") == "completed"
            if not result.completed:
                result.breaches.append(
                    Breach(
                        "recovery",
                        cid,
                        "campaign did not complete by the deadline (status "
                        f"{last.get('status')}, reason {last.get('status_reason')})",
                    )
                )
        # Projections are eventually consistent: give them time to agree before judging.
        settle = time.monotonic() + cfg.settle_seconds
        breaches, result.calls = _check(stack, cfg)
        while breaches and time.monotonic() < settle:
            time.sleep(2.0)
            breaches, result.calls = _check(stack, cfg)
        result.breaches += breaches
        result.faults.update(inject.done)
    finally:
        stack.stop()
        result.seconds = time.monotonic() - started
    return result


def _fault_phase(
    stack: DevStack,
    api: httpx.Client,
    cid: str,
    cfg: RunConfig,
    rng: random.Random,
    inject: Injector,
    result: RunResult,
) -> None:
    """Every kind of fault once (in a seeded order), then random ones, until the time is up
    or the campaign is done. One graceful SIGTERM is among them: it must exit 0 in time."""
    plan = [*rng.sample(cfg.kinds, len(cfg.kinds)), "sigterm"]
    end = time.monotonic() + cfg.fault_seconds
    while plan or time.monotonic() < end:
        time.sleep(rng.uniform(*cfg.fault_gap))
        if _status(api, cid) == "completed" and not plan:
            break
        kind = plan.pop(0) if plan else rng.choice(cfg.kinds)
        if kind == "sigterm":
            _graceful(stack, rng, cfg, result)
        else:
            inject.inject(kind)


def _dump_stacks(pid: int) -> str:
    """The Python stacks of a process that did not stop (py-spy, a dev dependency)."""
    spy = Path(sys.executable).with_name("py-spy")
    try:
        done = subprocess.run(  # noqa: S603 - our own tool and pid
            [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy failed: {exc}"
    return done.stdout[-8000:] or done.stderr[-2000:]


def _graceful(stack: DevStack, rng: random.Random, cfg: RunConfig, result: RunResult) -> None:
    alive = [
        n for n in SERVICE_NAMES if (p := stack.services[n].proc) is not None and p.poll() is None
    ]
    if not alive:
        return
    name = rng.choice(alive)
    proc = stack.services[name].proc
    code, took = terminate(stack, name, cfg.graceful_timeout + 10)
    result.faults["sigterm"] += 1
    if code != 0 or took > cfg.graceful_timeout:
        evidence = {}
        if code is None and proc is not None:  # still running: where is it stuck?
            evidence["stacks"] = _dump_stacks(proc.pid)
        result.breaches.append(
            Breach(
                "shutdown",
                name,
                f"SIGTERM: exit status {code} after {took:.1f}s "
                f"(grace period {cfg.graceful_timeout}s)",
                evidence,
            )
        )
    stack.restart_service(name)
