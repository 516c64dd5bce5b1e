"""Campaign rules: contact normalisation, schedules and status transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_api.domain import (
    TRANSITIONS,
    ScheduleError,
    TransitionError,
    apply_action,
    normalise_contacts,
    normalise_header,
    resolve_schedule,
)

PROPS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
P1, P2, P3 = "+12125550123", "+12125550124", "+442079460018"


# ---------------------------------------------------------------------------------- contacts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("case number", "CASE_NUMBER"),
        ("Case Number", "CASE_NUMBER"),
        ("  amount-due ", "AMOUNT_DUE"),
        ("first.name", "FIRST_NAME"),
        ("x", "X"),
        ("__a__b__", "A_B"),
        ("due (USD)", "DUE_USD"),
    ],
)
def test_normalise_header(raw: str, expected: str) -> None:
    assert normalise_header(raw) == expected


def test_single_phone_contact() -> None:
    out = normalise_contacts(
        [
            {
                "phone": P1,
                "name": "Ada",
                "case number": 42,
                "timezone": "America/New_York",
                "email": "a@x.io",
                "note": None,
            }
        ]
    )
    assert out.issues == [] and out.duplicates == 0
    (c,) = out.contacts
    assert c == {
        "phones": [P1],
        "name": "Ada",
        "timezone": "America/New_York",
        "variables": {"CASE_NUMBER": "42", "EMAIL": "a@x.io", "NOTE": ""},
        "sim_outcomes": [],
    }


def test_phone_columns_are_ordered_numerically() -> None:
    raw = {f"phone{i}": f"+1212555{i:04d}" for i in (10, 2, 1, 9, 3)}
    raw["phone"] = P3
    out = normalise_contacts([raw])
    assert out.issues == []
    assert out.contacts[0]["phones"] == [
        P3,
        "+12125550001",
        "+12125550002",
        "+12125550003",
        "+12125550009",
        "+12125550010",
    ]
    assert out.contacts[0]["variables"] == {}


def test_phone_columns_case_and_blank_values() -> None:
    out = normalise_contacts([{"Phone1": P1, "PHONE2": "", "phone3": None, "phone4": P2}])
    assert out.contacts[0]["phones"] == [P1, P2]


def test_repeated_phone_within_a_contact_is_kept_once() -> None:
    out = normalise_contacts([{"phone1": P1, "phone2": "+1 (212) 555-0123", "phone3": P2}])
    assert out.contacts[0]["phones"] == [P1, P2]


def test_national_numbers_need_default_region() -> None:
    out = normalise_contacts([{"phone": "(212) 555-0123"}])
    assert out.contacts == []
    assert [(i.index, i.field) for i in out.issues] == [(0, "phone")]
    out = normalise_contacts([{"phone": "(212) 555-0123"}], default_region="US")
    assert out.contacts[0]["phones"] == [P1]


def test_invalid_phones_reported_with_index_and_field() -> None:
    out = normalise_contacts(
        [
            {"phone": P1},
            {"phone1": P2, "phone2": "+1000", "phone3": "nope"},
            {"name": "no phone at all"},
            {"phone": P3},
        ]
    )
    assert [c["phones"][0] for c in out.contacts] == [P1, P3]
    assert [(i.index, i.field) for i in out.issues] == [(1, "phone2"), (1, "phone3"), (2, "phone")]
    assert all(i.message for i in out.issues)


def test_more_than_ten_phones() -> None:
    raw = {f"phone{i}": f"+1212555{i:04d}" for i in range(1, 11)}
    raw["phone"] = P3
    out = normalise_contacts([raw])
    assert out.contacts == []
    assert [(i.index, i.field) for i in out.issues] == [(0, "phone")]


def test_duplicates_by_first_phone_are_merged_and_counted() -> None:
    out = normalise_contacts(
        [
            {"phone": P1, "name": "first"},
            {"phone": "+1 212 555 0123", "name": "dup"},
            {"phone1": P1, "phone2": P2, "name": "dup2"},
            {"phone1": P2, "phone2": P1, "name": "other first phone"},
        ]
    )
    assert out.duplicates == 2
    assert [c["name"] for c in out.contacts] == ["first", "other first phone"]


def test_invalid_timezone_reported() -> None:
    out = normalise_contacts(
        [{"phone": P1, "timezone": "Mars/Base"}, {"phone": P2, "timezone": "Europe/Paris"}]
    )
    assert [(i.index, i.field) for i in out.issues] == [(0, "timezone")]
    assert "Mars/Base" in out.issues[0].message
    assert [c["timezone"] for c in out.contacts] == ["Europe/Paris"]


@pytest.mark.parametrize(
    ("sim", "expected"),
    [
        ("no_answer, busy,interested", ["no_answer", "busy", "interested"]),
        ("interested", ["interested"]),
        (" , ,", []),
        ("", []),
        (None, []),
        (["no_answer", "busy"], ["no_answer", "busy"]),
    ],
)
def test_sim_outcomes(sim: object, expected: list[str]) -> None:
    out = normalise_contacts([{"phone": P1, "sim_outcomes": sim}])
    assert out.contacts[0]["sim_outcomes"] == expected
    assert "SIM_OUTCOMES" not in out.contacts[0]["variables"]


def test_reserved_columns_any_case() -> None:
    out = normalise_contacts(
        [{"Phone": P1, "Name": "Ada", "Email": "a@x.io", "Timezone": "Europe/Paris"}]
    )
    (c,) = out.contacts
    assert c["name"] == "Ada"
    assert c["timezone"] == "Europe/Paris"
    assert c["variables"].get("EMAIL") == "a@x.io"


@given(
    st.lists(st.sampled_from([P1, P2, P3, "+33142685300", "bad", "+1000"]), min_size=1, max_size=12)
)
@PROPS
def test_every_contact_is_accounted_for(phones: list[str]) -> None:
    out = normalise_contacts([{"phone": p} for p in phones])
    bad_indexes = {i.index for i in out.issues}
    assert len(out.contacts) + out.duplicates + len(bad_indexes) == len(phones)
    firsts = [c["phones"][0] for c in out.contacts]
    assert len(firsts) == len(set(firsts))


# --------------------------------------------------------------------------------- schedules


def test_naive_times_are_read_in_the_schedule_timezone() -> None:
    s, e = resolve_schedule(
        start=datetime(2026, 3, 3, 9, 0),
        end=datetime(2026, 3, 10, 18, 0),
        timezone="America/New_York",
        now=NOW,
    )
    assert s == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert e == datetime(2026, 3, 10, 22, 0, tzinfo=UTC)  # after the DST change (EDT)
    assert s.tzinfo == UTC and e.tzinfo == UTC


def test_aware_times_keep_their_instant() -> None:
    start = datetime(2026, 3, 3, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    s, e = resolve_schedule(start=start, end=None, timezone="Asia/Tokyo", now=NOW)
    assert s == start and s.tzinfo == UTC and e is None


def test_open_schedule() -> None:
    assert resolve_schedule(start=None, end=None, timezone="UTC", now=NOW) == (None, None)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(hours=-1)])
def test_end_not_after_start(delta: timedelta) -> None:
    start = datetime(2026, 4, 1, 9, 0)
    with pytest.raises(ScheduleError, match="after"):
        resolve_schedule(start=start, end=start + delta, timezone="Europe/Paris", now=NOW)


@pytest.mark.parametrize("end", [NOW, NOW - timedelta(days=1), datetime(2026, 3, 2, 9, 0)])
def test_end_in_the_past(end: datetime) -> None:
    with pytest.raises(ScheduleError, match="past"):
        resolve_schedule(start=None, end=end, timezone="America/New_York", now=NOW)


def test_start_in_the_past_is_fine() -> None:
    s, _ = resolve_schedule(start=NOW - timedelta(days=3), end=None, timezone="UTC", now=NOW)
    assert s == NOW - timedelta(days=3)


def test_invalid_schedule_timezone() -> None:
    with pytest.raises(ScheduleError, match="IANA"):
        resolve_schedule(start=None, end=None, timezone="Nowhere/City", now=NOW)


# ------------------------------------------------------------------------------- transitions


@pytest.mark.parametrize(
    ("status", "action", "new"),
    [
        ("scheduled", "start", "running"),
        ("paused", "start", "running"),
        ("running", "pause", "paused"),
        ("scheduled", "pause", "paused"),
        ("paused", "resume", "running"),
        ("scheduled", "stop", "stopped"),
        ("running", "stop", "stopped"),
        ("paused", "stop", "stopped"),
        ("running", "archive", "stopped"),
        ("paused", "archive", "stopped"),
    ],
)
def test_allowed_transitions(status: str, action: str, new: str) -> None:
    assert apply_action(status, action) == new


@pytest.mark.parametrize("action", ["start", "pause", "resume", "stop", "archive"])
def test_stop_is_irreversible(action: str) -> None:
    with pytest.raises(TransitionError, match="irreversible"):
        apply_action("stopped", action)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("running", "start"),
        ("running", "resume"),
        ("scheduled", "resume"),
        ("paused", "pause"),
        ("completed", "start"),
        ("completed", "stop"),
    ],
)
def test_refused_transitions(status: str, action: str) -> None:
    with pytest.raises(TransitionError, match=f"cannot {action}") as exc:
        apply_action(status, action)
    assert status in str(exc.value)


def test_unknown_action() -> None:
    with pytest.raises(TransitionError, match="unknown action"):
        apply_action("running", "explode")


@given(st.lists(st.sampled_from(["start", "pause", "resume", "stop", "archive"]), max_size=20))
@PROPS
def test_once_stopped_always_stopped(actions: list[str]) -> None:
    status = "scheduled"
    stopped = False
    for action in actions:
        try:
            status = apply_action(status, action)
        except TransitionError:
            continue
        finally:
            if stopped:
                assert status == "stopped"
        stopped = stopped or status == "stopped"
        assert status in {"scheduled", "running", "paused", "stopped"}
    assert stopped == (status == "stopped")
    assert all(set(t.values()) <= {"running", "paused", "stopped"} for t in TRANSITIONS.values())
