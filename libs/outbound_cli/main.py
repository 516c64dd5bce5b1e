"""The ``outbound`` command."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from outbound_cli.client import ApiError, Client, default_key
from outbound_cli.contacts import CsvError, read_contacts
from outbound_cli.forecast import ForecastInput, forecast

app = typer.Typer(help="Operate Outbound campaigns from the command line.", no_args_is_help=True)
campaigns = typer.Typer(help="Create, list, show and control campaigns.", no_args_is_help=True)
app.add_typer(campaigns, name="campaigns")

ApiUrl = Annotated[str, typer.Option("--api", envvar="OUTBOUND_API_URL", help="API base URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option("--key", envvar="OUTBOUND_API_KEY", help="API key (default: .outbound/api-key)."),
]
TERMINAL = {"completed", "not_reachable", "archived", "blocked"}


def _client(api: str, key: str | None) -> Client:
    key = key or default_key()
    if not key:
        raise typer.BadParameter("no API key: pass --key or set OUTBOUND_API_KEY")
    return Client(api, key)


def _fail(exc: Exception) -> None:
    typer.echo(str(exc), err=True)
    raise typer.Exit(1)


def _load_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of campaign fields")
    return data


@campaigns.command("create")
def create(
    config: Annotated[Path, typer.Option(help="Campaign fields (YAML or JSON).")],
    contacts: Annotated[Path, typer.Option(help="Contact CSV (phone or phone1…phone10).")],
    start: Annotated[bool, typer.Option(help="Start the campaign at once.")] = False,
    api: ApiUrl = "http://127.0.0.1:8080",
    key: ApiKey = None,
) -> None:
    """Create a campaign from a CSV and a YAML/JSON config."""
    try:
        body = {**_load_config(config), "contacts": read_contacts(contacts)}
        client = _client(api, key)
        created = client.create_campaign(body)
        if start:
            created = client.act(created["id"], "start")
    except (ApiError, CsvError) as exc:
        _fail(exc)
    typer.echo(f"{created['id']}  {created['status']}  {created['total_contacts']} contacts")


@campaigns.command("list")
def list_(
    status: str | None = None,
    limit: int = 20,
    api: ApiUrl = "http://127.0.0.1:8080",
    key: ApiKey = None,
) -> None:
    """List campaigns, newest first."""
    try:
        page = _client(api, key).campaigns(status=status, limit=limit)
    except ApiError as exc:
        _fail(exc)
    for c in page["data"]:
        typer.echo(
            f"{c['id']}  {c['status']:<10} {c['calls_made']:>6} calls  "
            f"{c['total_contacts']:>6} contacts  {c['name']}"
        )


@campaigns.command("show")
def show(campaign_id: str, api: ApiUrl = "http://127.0.0.1:8080", key: ApiKey = None) -> None:
    """Show a campaign with its counters (JSON)."""
    try:
        typer.echo(json.dumps(_client(api, key).campaign(campaign_id), indent=2))
    except ApiError as exc:
        _fail(exc)


def _action(name: str) -> None:
    def command(
        campaign_id: str, api: ApiUrl = "http://127.0.0.1:8080", key: ApiKey = None
    ) -> None:
        try:
            c = _client(api, key).act(campaign_id, name)
        except ApiError as exc:
            _fail(exc)
        typer.echo(f"{c['id']}  {c['status']}")

    command.__doc__ = f"{name.capitalize()} a campaign."
    campaigns.command(name)(command)


for _name in ("start", "pause", "resume", "stop"):
    _action(_name)


def _progress(client: Client, campaign_id: str) -> tuple[dict[str, Any], int, int]:
    c = client.campaign(campaign_id)
    leads = client.all_leads(campaign_id)
    done = sum(1 for lead in leads if lead["status"] in TERMINAL)
    return c, done, len(leads)


def _summary(c: dict[str, Any], done: int, total: int) -> str:
    disp = " ".join(f"{k}={v}" for k, v in sorted(c["disposition_summary"].items()))
    return (
        f"{c['status']} {done}/{total} leads done, {c['calls_made']} calls, "
        f"{c['calls_connected']} connected {disp}"
    ).rstrip()


@app.command()
def watch(
    campaign_id: str,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 0,
    plain: Annotated[bool, typer.Option(help="Line output (default when not a TTY).")] = False,
    api: ApiUrl = "http://127.0.0.1:8080",
    key: ApiKey = None,
) -> None:
    """Watch a campaign: live progress bar and per-disposition counts until it ends."""
    client = _client(api, key)
    deadline = time.monotonic() + timeout if timeout else None
    interactive = sys.stdout.isatty() and not plain
    last = ""
    try:
        if interactive:
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            task = bar.add_task(campaign_id, total=1)
            with Live(bar, refresh_per_second=4):
                while True:
                    c, done, total = _progress(client, campaign_id)
                    bar.update(
                        task,
                        completed=done,
                        total=max(total, 1),
                        description=_summary(c, done, total),
                    )
                    if c["status"] in ("completed", "stopped"):
                        break
                    if deadline and time.monotonic() > deadline:
                        raise typer.Exit(2)
                    time.sleep(interval)
        else:
            while True:
                c, done, total = _progress(client, campaign_id)
                line = _summary(c, done, total)
                if line != last:
                    typer.echo(f"{datetime.now(UTC):%H:%M:%S} {line}")
                    last = line
                if c["status"] in ("completed", "stopped"):
                    break
                if deadline and time.monotonic() > deadline:
                    raise typer.Exit(2)
                time.sleep(interval)
    except ApiError as exc:
        _fail(exc)


@app.command()
def tail(
    campaign_id: str,
    interval: float = 1.0,
    follow: Annotated[bool, typer.Option(help="Keep following until the campaign ends.")] = True,
    api: ApiUrl = "http://127.0.0.1:8080",
    key: ApiKey = None,
) -> None:
    """Print lead updates as they happen."""
    client = _client(api, key)
    seen: dict[str, tuple[Any, ...]] = {}
    try:
        while True:
            for lead in client.all_leads(campaign_id):
                state = (
                    lead["status"],
                    lead["last_disposition"],
                    lead["attempts"],
                    lead["current_phone"],
                )
                if seen.get(lead["id"]) != state:
                    seen[lead["id"]] = state
                    typer.echo(
                        f"{lead['id']} {lead['name'] or '-'}: {lead['status']} "
                        f"disposition={lead['last_disposition']} "
                        f"attempts={lead['attempts']} pass={lead['pass']}"
                    )
            status = client.campaign(campaign_id)["status"]
            if not follow or status in ("completed", "stopped"):
                return
            time.sleep(interval)
    except ApiError as exc:
        _fail(exc)


@app.command("dry-run")
def dry_run(
    config: Annotated[Path, typer.Option(help="Campaign fields (YAML or JSON).")],
    contacts: Annotated[Path, typer.Option(help="Contact CSV.")],
    connect_rate: Annotated[float, typer.Option(min=0, max=1)] = 0.3,
    slots: Annotated[int, typer.Option(min=1)] = 20,
    start: Annotated[datetime | None, typer.Option(help="Start instant (UTC).")] = None,
    seed: int = 1,
) -> None:
    """Forecast a campaign in simulated time: duration, attempts, end, reach."""
    cfg = _load_config(config)
    try:
        rows = read_contacts(contacts)
    except CsvError as exc:
        _fail(exc)
    phones = [[v for k, v in sorted(r.items()) if k.lower().startswith("phone")] for r in rows]
    hours = cfg.get("calling_hours") or {}
    sched = cfg.get("schedule") or {}
    begin = start.replace(tzinfo=start.tzinfo or UTC) if start else datetime.now(UTC)
    result = forecast(
        ForecastInput(
            phones=phones,
            timezones=[r.get("timezone") for r in rows],
            start=begin,
            slots=slots,
            connect_rate=connect_rate,
            hours_start=hours.get("start", "09:00"),
            hours_end=hours.get("end", "20:00"),
            max_attempts=int(cfg.get("max_attempts", 1)),
            retry_interval_minutes=int(cfg.get("retry_interval_minutes", 240)),
            retry_outcomes=tuple(cfg.get("retry_outcomes", ("no_answer", "busy", "failed"))),
            end=datetime.fromisoformat(sched["end_time"]).replace(tzinfo=UTC)
            if sched.get("end_time")
            else None,
            seed=seed,
        )
    )
    typer.echo(
        json.dumps(
            {
                "contacts": result.contacts,
                "attempts": result.attempts,
                "reached": result.reached,
                "not_reachable": result.not_reachable,
                "blocked": result.blocked,
                "unfinished": result.unfinished,
                "first_call": result.first_call.isoformat() if result.first_call else None,
                "ends_at": result.last_call_end.isoformat() if result.last_call_end else None,
                "duration_hours": round(result.duration.total_seconds() / 3600, 2),
                "slot_utilisation": round(
                    result.busy_seconds / max(1.0, result.duration.total_seconds() * slots), 3
                ),
                "outcomes": result.outcomes,
            },
            indent=2,
        )
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
