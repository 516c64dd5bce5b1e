"""``make bench``: every benchmark of the project, run against one embedded (or external) stack,
written as a table to ``docs/benchmarks.md``.

A benchmark is a module listed in :data:`MODULES` with ``async def run(ctx: Context) ->
list[Result]``. Figures are ratios or percentiles measured within one run, because the machine
is shared and noisy; each result states its target and whether it was met."""

from __future__ import annotations

from dataclasses import dataclass, field

MODULES: list[str] = [
    "benchmarks.bench_floor",
    "benchmarks.bench_e2e",
    "benchmarks.bench_scale",
    "benchmarks.bench_realistic",
    "benchmarks.bench_webhooks",
    "benchmarks.bench_dialer",
    "benchmarks.bench_allocator",
    "benchmarks.bench_planner",
    "benchmarks.bench_api",
    "benchmarks.bench_realtime",
]


@dataclass
class Context:
    kafka_url: str
    mongo_url: str
    data_dir: str
    quick: bool = False
    scale: float = 1.0
    # name -> pid of the embedded broker and database this run started (none when external)
    infra_pids: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    benchmark: str
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    import os
    from pathlib import Path

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
