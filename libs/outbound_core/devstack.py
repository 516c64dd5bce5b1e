"""Run the whole system locally: the embedded broker and database (unless
``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL`` point elsewhere) and the six services, each as
its own process. ``make run`` and the end-to-end tests both use :class:`DevStack`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from outbound_core.embedded import (
    ManagedProcess,
    embedded_kafka,
    embedded_mongo,
    free_port,
    start_and_wait,
)

SERVICES: tuple[tuple[str, str, str, int], ...] = (
    # (name, module, env prefix, default port)
    ("campaign-api", "campaign_api", "CAMPAIGN_API", 8080),
    ("task-planner", "task_planner", "TASK_PLANNER", 8081),
    ("slot-allocator", "slot_allocator", "SLOT_ALLOCATOR", 8082),
    ("dialer", "dialer", "DIALER", 8083),
    ("disposition", "disposition", "DISPOSITION", 8084),
    ("webhook", "webhook", "WEBHOOK", 8085),
)


@dataclass
class ServiceProcess:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    echo: bool
    proc: subprocess.Popen[bytes] | None = None
    _pump: threading.Thread | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(  # noqa: S603 - argv is ours
            [sys.executable, "-m", self.module],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        prefix = f"[{self.name}] ".encode()
        for line in self.proc.stdout:
            if self._log is not None:
                with contextlib.suppress(ValueError):
                    self._log.write(line)
                    self._log.flush()
            if self.echo:
                sys.stdout.buffer.write(prefix + line)
                sys.stdout.flush()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 20.0) -> None:
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.signal(signal.SIGKILL)
            self.wait(5)
        if self._pump is not None:
            self._pump.join(2)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(5)


@dataclass
class DevStack:
    """The embedded infrastructure plus the six services, on fixed or free ports."""

    data_dir: Path
    api_key: str
    clock_speed: float = 1.0
    clock_start: str | None = None
    free_ports: bool = False
    echo: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    kafka_url: str | None = None
    mongo_url: str | None = None
    infra: list[ManagedProcess] = field(default_factory=list)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['campaign-api']}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start_infrastructure(self) -> None:
        self.kafka_url = self.kafka_url or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.mongo_url = self.mongo_url or os.environ.get("MONGODB_URL")
        if not self.kafka_url:
            port = free_port() if self.free_ports else 19092
            kafka = embedded_kafka(port, self.data_dir)
            start_and_wait(kafka, port)
            self.infra.append(kafka)
            self.kafka_url = f"127.0.0.1:{port}"
        if not self.mongo_url:
            port = free_port() if self.free_ports else 37017
            mongo = embedded_mongo(port, self.data_dir)
            start_and_wait(mongo, port)
            self.infra.append(mongo)
            self.mongo_url = f"mongodb://127.0.0.1:{port}"

    def common_env(self) -> dict[str, str]:
        assert self.kafka_url
        assert self.mongo_url
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_url,
            "MONGODB_URL": self.mongo_url,
            "OUTBOUND_CLOCK_SPEED": str(self.clock_speed),
            "OUTBOUND_BOOTSTRAP_API_KEY": self.api_key,
            "PYTHONUNBUFFERED": "1",
        }
        if self.clock_speed != 1.0 or self.clock_start:
            env["OUTBOUND_CLOCK_ANCHOR"] = repr(time.time())
            if self.clock_start:
                env["OUTBOUND_CLOCK_START"] = self.clock_start
        if self.echo and sys.stdout.isatty():
            env.setdefault("OUTBOUND_LOG_JSON", "false")
        for name, _module, _prefix, default_port in SERVICES:
            self.ports.setdefault(name, free_port() if self.free_ports else default_port)
        env["CAMPAIGN_API_WEBHOOK_SERVICE_URL"] = f"http://127.0.0.1:{self.ports['webhook']}"
        env["CAMPAIGN_API_DISPOSITION_SERVICE_URL"] = (
            f"http://127.0.0.1:{self.ports['disposition']}"
        )
        env.update(self.extra_env)
        return env

    def start_services(self) -> None:
        env = self.common_env()
        for name, module, prefix, _default in SERVICES:
            self.start_service(name, module, prefix, env)
        self.wait_ready()

    def start_service(
        self,
        name: str,
        module: str | None = None,
        prefix: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        spec = next(s for s in SERVICES if s[0] == name)
        module, prefix = module or spec[1], prefix or spec[2]
        env = dict(env or self.common_env())
        env[f"{prefix}_HTTP_PORT"] = str(self.ports[name])
        proc = ServiceProcess(
            name=name,
            module=module,
            port=self.ports[name],
            env=env,
            log_path=self.data_dir / "logs" / f"{name}.log",
            echo=self.echo,
        )
        proc.start()
        self.services[name] = proc

    def restart_service(self, name: str) -> None:
        """Start ``name`` again with the environment it had (same clock anchor, same port):
        for the reliability tests, after :meth:`ServiceProcess.kill` or a SIGTERM."""
        old = self.services[name]
        old.stop(timeout=0.1)
        proc = ServiceProcess(
            name=name,
            module=old.module,
            port=old.port,
            env=old.env,
            log_path=old.log_path,
            echo=self.echo,
        )
        proc.start()
        self.services[name] = proc

    def restart_infrastructure(self, name: str, *, delay: float = 0.0) -> None:
        """``kill -9`` the embedded ``kafka`` or ``mongodb`` and start it again on its port.
        The broker comes back empty (memory storage); the database keeps its files."""
        proc = next(p for p in self.infra if p.name == name)
        url = self.kafka_url if name == "kafka" else self.mongo_url
        assert url is not None
        port = int(url.rsplit(":", 1)[1])
        proc.kill()
        proc.stop()
        time.sleep(delay)
        start_and_wait(proc, port, timeout=300.0)  # recovery is slow on a loaded machine

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.services)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                svc = self.services[name]
                if svc.proc is not None and svc.proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {svc.proc.returncode}; see {svc.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url(name)}/readyz", timeout=1.0).status_code == 200:
                        pending.discard(name)
            time.sleep(0.1)
        if pending:
            raise TimeoutError(f"services not ready after {timeout}s: {sorted(pending)}")

    def start(self) -> DevStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.start_infrastructure()
        self.start_services()
        return self

    def stop(self) -> None:
        for svc in self.services.values():
            svc.signal(signal.SIGTERM)
        for svc in self.services.values():
            svc.stop()
        for proc in reversed(self.infra):
            proc.stop()


@contextlib.contextmanager
def running_stack(**kwargs: object) -> Iterator[DevStack]:
    stack = DevStack(**kwargs)  # type: ignore[arg-type]
    try:
        yield stack.start()
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Outbound locally on the embedded stack.")
    parser.add_argument("--data-dir", default=".outbound", type=Path)
    parser.add_argument(
        "--clock-speed", default=float(os.environ.get("OUTBOUND_CLOCK_SPEED", 1)), type=float
    )
    args = parser.parse_args()
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.environ.get("OUTBOUND_BOOTSTRAP_API_KEY") or f"ob_dev_{secrets.token_urlsafe(24)}"
    (data_dir / "api-key").write_text(key + "\n")
    stack = DevStack(data_dir=data_dir, api_key=key, clock_speed=args.clock_speed, echo=True)
    stopping = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start()
        banner = (
            "\nOutbound is running.\n"
            f"  API:      {stack.api_url}   (OpenAPI: {stack.api_url}/docs)\n"
            f"  API key:  {key}   (also in {data_dir / 'api-key'})\n"
            "  Stop:     Ctrl-C\n"
        )
        sys.stdout.write(banner)
        sys.stdout.flush()
        while not stopping.is_set():
            for name, svc in stack.services.items():
                if svc.proc is not None and svc.proc.poll() is not None:
                    sys.stdout.write(f"{name} exited ({svc.proc.returncode}); stopping\n")
                    stopping.set()
            stopping.wait(1.0)
    finally:
        sys.stdout.write("stopping Outbound…\n")
        stack.stop()
        sys.stdout.write("stopped\n")


if __name__ == "__main__":
    main()
