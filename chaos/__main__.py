"""``make chaos SEEDS=n`` (``python -m chaos --seeds N``): N seeded chaos runs, then a result
table. Exit status 1 if any run breached a promise."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from collections import Counter

from chaos.runner import RunConfig, RunResult, run
from outbound_core.invariants import summarize
from outbound_core.logging import configure_logging


def table(results: list[RunResult]) -> str:
    lines = [
        "| seed | contacts | calls | faults survived | completed | breaches | seconds |",
        "|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in results:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items()))
        lines.append(
            f"| {r.seed} | {r.contacts} | {r.calls} | {faults} | "
            f"{'yes' if r.completed else 'NO'} | {len(r.breaches)} | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many runs")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--fault-seconds", type=float, default=60.0)
    parser.add_argument("--clock-speed", type=float, default=1800.0)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is a slow run?
    configure_logging(service="chaos", level="INFO", json=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run(
            RunConfig(
                seed=seed,
                contacts=args.contacts,
                fault_seconds=args.fault_seconds,
                clock_speed=args.clock_speed,
            )
        )
        results.append(r)
        sys.stdout.write(
            f"seed {seed}: {len(r.breaches)} breaches {summarize(r.breaches)}; "
            f"faults {dict(r.faults)}; logs in {r.data_dir}/logs\n"
        )
        for b in r.breaches[:30]:
            sys.stdout.write(f"  {b}  {dict(b.evidence)}\n")
        sys.stdout.flush()
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.faults)
    sys.stdout.write("\n" + table(results) + "\n")
    return 1 if any(r.breaches for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
