"""The bench runner keeps other benchmarks' rows, notes and the hand-written analysis."""

from __future__ import annotations

from pathlib import Path

from benchmarks import Result
from benchmarks.__main__ import ANALYSIS, merge, render


def test_a_partial_run_replaces_only_its_own_rows(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    first = [Result("floor", "rt p50", 2.0, "ms"), Result("planner", "decisions", 5e4, "/s")]
    out.write_text(
        render(first, infra="x", notes=["planner: by hand", "floor: a note"], command="c")
        + f"\n{ANALYSIS}\n\nwhy the planner misses\n"
    )
    new = [Result("floor", "rt p50", 3.0, "ms")]
    rows, notes = merge(out, new, [], ["benchmarks.bench_floor"])
    assert [r.split("|")[1].strip() for r in rows] == ["planner"]
    assert notes == ["planner: by hand"]
    text = render(new, infra="x", notes=[], command="c", kept_rows=rows, kept_notes=notes)
    assert "| floor | rt p50 | 3 |" in text
    assert "| planner | decisions | 50,000 |" in text
    assert "2 |" not in text.split("| floor |")[1].split("\n")[0]
