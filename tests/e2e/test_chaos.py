"""The short chaos suite: two seeded runs of a 60-contact campaign on a stack of their own
(they kill its processes, so never the shared session stack), judged by the invariant checker.
``make chaos`` runs the long version (docs/reliability.md)."""

from __future__ import annotations

import pytest

from chaos.runner import RunConfig, run
from outbound_core.invariants import summarize


@pytest.mark.timeout(1500)
@pytest.mark.xfail(
    reason="open breaches after a broker restart (tasks left queued; an attempt counted twice): "
    "see docs/reliability.md, Results",
    strict=False,
)
@pytest.mark.parametrize("seed", [101, 102])
def test_promises_hold_under_faults(seed: int) -> None:
    result = run(RunConfig(seed=seed, contacts=60, fault_seconds=15, deadline_seconds=600))
    report = "\n".join(f"{b} {dict(b.evidence)}" for b in result.breaches[:40])
    assert not result.breaches, (
        f"seed {seed}: {summarize(result.breaches)} (logs: {result.data_dir}/logs)\n{report}"
    )
    assert result.completed
    # every kind of fault was injected at least once, a graceful SIGTERM among them
    assert set(result.faults) >= {
        "kill_one",
        "kill_several",
        "broker_restart",
        "db_restart",
        "replay",
        "poison",
    }
    assert result.calls >= 60
