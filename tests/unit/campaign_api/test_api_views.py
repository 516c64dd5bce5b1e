"""Pure rules behind the API's answers: removal classification, export escaping, metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from campaign_api.contacts import classify_removal
from campaign_api.routes.campaigns import _instant, escape_cell
from campaign_api.views import metrics


def test_only_uncalled_leads_are_removed() -> None:
    owners = {"+1": "a", "+2": "b", "+3": "c", "+4": "d", "+5": "d"}
    leads = {
        "a": {"status": "pending", "attempt": 0},
        "b": {"status": "waiting_retry", "attempt": 1},
        "c": {"status": "queued", "attempt": 0},
        # "d" is not projected yet: the planner has not touched it, so it is still waiting
    }
    out = classify_removal(["+1", "+2", "+3", "+4", "+5", "+9"], owners, leads)
    assert out.removed == ["a", "c", "d"]
    assert out.already_called == ["+2"]
    assert out.not_found == ["+9"]


def test_completed_and_dialing_leads_count_as_already_called() -> None:
    owners = {"+1": "a", "+2": "b"}
    leads = {"a": {"status": "dialing", "attempt": 0}, "b": {"status": "completed", "attempt": 1}}
    out = classify_removal(["+1", "+2"], owners, leads)
    assert (out.removed, out.already_called) == ([], ["+1", "+2"])


def test_formula_cells_are_escaped() -> None:
    for bad in ("=1+1", "+12125550101", "-5", "@SUM(A1)", "\t=x"):
        assert escape_cell(bad) == "'" + bad
    assert escape_cell("Ada") == "Ada"
    assert escape_cell(None) == ""
    assert escape_cell(3) == "3"


def test_dates_in_list_filters() -> None:
    assert _instant("2027-01-31", "to", end_of_day=True) == datetime(
        2027, 1, 31, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert _instant("2027-01-31", "from", end_of_day=False) == datetime(2027, 1, 31, tzinfo=UTC)
    assert _instant("2027-01-31T10:00:00Z", "from", end_of_day=False) == datetime(
        2027, 1, 31, 10, tzinfo=UTC
    )


def test_metrics_from_counters() -> None:
    doc = {
        "calls_made": 10,
        "calls_connected": 4,
        "retry_calls": 3,
        "connected_seconds": 200.0,
        "call_seconds": 600.0,
        "cost": 1.0,
        "disposition_summary": {"interested": 2, "callback": 1, "escalated": 1, "no_answer": 6},
        "positive_dispositions": ["interested", "callback"],
        "daily": {
            "2027-02-01": {
                "calls": 10,
                "connected": 4,
                "seconds": 600.0,
                "dispositions": {"interested": 2},
            }
        },
    }
    m = metrics(doc, rate=0.25, today=datetime(2027, 2, 2, 12, tzinfo=UTC))
    assert m["connect_rate"] == 0.4
    assert m["conversions"] == 3
    assert m["conversion_rate"] == 0.75
    assert m["retry_rate"] == 0.3
    assert m["escalation_rate"] == 0.25
    assert m["avg_connected_duration_seconds"] == 50.0
    assert (m["call_minutes"], m["cost"], m["provider_cost"]) == (10.0, 2.5, 1.0)
    assert len(m["daily"]) == 30
    assert m["daily"][-1]["date"] == "2027-02-02"
    assert m["daily"][-2] == {
        "date": "2027-02-01",
        "calls": 10,
        "connected": 4,
        "minutes": 10.0,
        "conversions": 2,
    }
    empty = metrics({}, rate=0.0, today=None)
    assert empty["connect_rate"] == 0.0
    assert "daily" not in empty
