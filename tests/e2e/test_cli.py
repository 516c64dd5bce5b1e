"""The operator CLI against the running stack: create a campaign from a CSV and a YAML config,
start it, and watch it to the end in non-interactive mode."""

from __future__ import annotations

import json
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
