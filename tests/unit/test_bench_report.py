"""A partial benchmark run (``python -m benchmarks api``) keeps the other benchmarks' rows."""

from __future__ import annotations

from benchmarks import Result
from benchmarks.__main__ import earlier, render

BEFORE = render(
    [
        Result("floor", "broker round trip p50", 2.5, "ms"),
        Result("api", "create 10,000 contacts (JSON) p50", 23515, "ms", "< 1000", False),
        Result("planner", "rebuild", 24.5, "s", "< 30 s", True),
    ],
    infra="embedded",
    notes=["bench_api: old note", "planner (by hand):\n  second line of the note"],
    command="make bench",
)


def test_a_partial_run_replaces_only_its_own_rows_and_notes() -> None:
    rows, notes = earlier(BEFORE, {"api", "bench_api"})
    assert [r.split("|")[1].strip() for r in rows] == ["floor", "planner"]
    assert notes == ["planner (by hand):\n  second line of the note"]
    after = render(
        [Result("api", "create 10,000 contacts (JSON) p50", 800, "ms", "< 1000", True)],
        infra="embedded",
        notes=notes,
        command="make bench (api)",
        kept_rows=rows,
    )
    assert "23,515" not in after
    assert "| api | create 10,000 contacts (JSON) p50 | 800 | ms | < 1000 | yes |" in after
    assert "| floor | broker round trip p50 | 2.5 | ms |  | — |" in after
    assert "second line of the note" in after
    assert earlier(after, {"api"}) == (rows, notes)
