"""A stack of its own, for an e2e module whose settings the shared stack cannot have (a slower
clock, short leases, another provider), or which kills services."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx

from outbound_core.devstack import SERVICES, DevStack

CLOCK_START = "2026-03-02T15:00:00+00:00"  # a Monday, 10:00 in New York


@contextlib.contextmanager
def own_stack(
    data_dir: Path,
    *,
    clock_speed: float,
    extra_env: dict[str, str],
    clock_start: str = CLOCK_START,
) -> Iterator[DevStack]:
    """``DevStack.start()`` with more patience (the machine running the tests may be busy);
    a service restarted by the test shares the clock (the anchor is kept for later
    ``common_env()``). The logs' tails are printed when it does not start."""
    s = DevStack(
        data_dir=data_dir,
        api_key=f"ob_test_{secrets.token_urlsafe(16)}",
        clock_speed=clock_speed,
        clock_start=clock_start,
        free_ports=True,
        extra_env={"OUTBOUND_ENVIRONMENT": "test", "OUTBOUND_LOG_LEVEL": "INFO", **extra_env},
    )
    try:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        s.start_infrastructure()
        env = s.common_env()
        s.extra_env = {**s.extra_env, "OUTBOUND_CLOCK_ANCHOR": env["OUTBOUND_CLOCK_ANCHOR"]}
        for name, module, prefix, _port in SERVICES:
            s.start_service(name, module, prefix, env)
        s.wait_ready(timeout=240)
    except Exception:
        s.stop()
        for log in sorted((data_dir / "logs").glob("*.log")):
            print(f"==== {log.name}\n{log.read_text()[-3000:]}")
        raise
    try:
        yield s
    finally:
        s.stop()


@contextlib.contextmanager
def api_client(stack: DevStack) -> Iterator[httpx.Client]:
    """An HTTP client of the stack's API, with its key."""
    with httpx.Client(
        base_url=stack.api_url,
        timeout=30.0,
        headers={"Authorization": f"Bearer {stack.api_key}"},
    ) as client:
        yield client
