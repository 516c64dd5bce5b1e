"""The operator CLI against the running stack: create a campaign from a CSV and a YAML config,
start it, and watch it to the end, in non-interactive mode and on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from outbound_cli.main import app
from outbound_core.devstack import DevStack

pytestmark = pytest.mark.e2e


def test_create_from_csv_start_and_watch(
    stack: DevStack, api: httpx.Client, tmp_path: Path
) -> None:
    agent = api.post("/v1/agents", json={"name": "CLI", "language": "en-US"}).json()["id"]
    (tmp_path / "contacts.csv").write_text(
        "phone,name,case number,sim_outcomes\n"
        "+12127364001,Ann,C-1,interested\n"
        '+12127364002,Bob,C-2,"no_answer,not_interested"\n'
    )
    (tmp_path / "campaign.yaml").write_text(
        f"name: From the CLI\nscript_id: {agent}\nlanguage: en-US\nmax_attempts: 2\n"
        "retry_interval_minutes: 30\ncalling_hours: {start: '00:00', end: '00:00'}\n"
    )
    env = {"OUTBOUND_API_URL": stack.api_url, "OUTBOUND_API_KEY": stack.api_key}
    runner = CliRunner()

    created = runner.invoke(
        app,
        [
            "campaigns",
            "create",
            "--config",
            str(tmp_path / "campaign.yaml"),
            "--contacts",
            str(tmp_path / "contacts.csv"),
            "--start",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    campaign_id, status, *_ = created.output.split()
    assert status == "running"

    watched = runner.invoke(
        app, ["watch", campaign_id, "--plain", "--interval", "0.2", "--timeout", "90"], env=env
    )
    assert watched.exit_code == 0, watched.output
    lines = watched.output.strip().splitlines()
    assert "completed 2/2 leads done, 3 calls" in lines[-1]
    assert "interested=1" in lines[-1] and "not_interested=1" in lines[-1]

    shown = runner.invoke(app, ["campaigns", "show", campaign_id], env=env)
    assert json.loads(shown.output)["calls_made"] == 3

    bad = runner.invoke(app, ["campaigns", "pause", campaign_id], env=env)
    assert bad.exit_code == 1
    assert "HTTP 409" in bad.output


def _run_in_pty(argv: list[str], env: dict[str, str], *, timeout: float) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdout (as an operator's shell would) and
    return its exit status and everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    os.close(leader)
    return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")


def test_watch_draws_a_live_progress_bar_on_a_terminal(stack: DevStack, api: httpx.Client) -> None:
    agent = api.post("/v1/agents", json={"name": "Watch", "language": "en-US"}).json()["id"]
    created = api.post(
        "/v1/campaigns",
        json={
            "name": "Watched on a terminal",
            "script_id": agent,
            "language": "en-US",
            "calling_hours": {"start": "00:00", "end": "00:00"},
            "contacts": [
                {"phone": "+12127364011", "sim_outcomes": ["interested"]},
                {"phone": "+12127364012", "sim_outcomes": ["not_interested"]},
                {"phone": "+12127364013", "sim_outcomes": ["interested"]},
            ],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    started = api.patch(f"/v1/campaigns/{campaign_id}", json={"action": "start"})
    assert started.status_code == 200, started.text

    env = {
        **os.environ,
        "OUTBOUND_API_URL": stack.api_url,
        "OUTBOUND_API_KEY": stack.api_key,
        "TERM": "xterm-256color",
        "COLUMNS": "160",
    }
    argv = [sys.executable, "-m", "outbound_cli.main", "watch", campaign_id, "--interval", "0.2"]
    status, screen = _run_in_pty(argv, env, timeout=120)

    assert status == 0, screen
    assert "\x1b[" in screen, "no terminal control sequences: the live display was not used"
    assert "━" in screen, "no progress bar drawn"
    assert "3/3" in screen and "completed 3/3 leads done" in screen
    assert "interested=2" in screen and "not_interested=1" in screen
