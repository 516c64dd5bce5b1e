"""Clocks, ids and the log masking processor."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outbound_core import clock as clock_mod
from outbound_core.clock import VirtualClock, WallClock, build_clock, to_ms, utc
from outbound_core.ids import PREFIXES, has_prefix, new_id, stable_id
from outbound_core.logging import mask_phone_numbers

PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    state = types.SimpleNamespace(now=1_700_000_000.0)
    monkeypatch.setattr(clock_mod, "time", types.SimpleNamespace(time=lambda: state.now))
    return state


# ------------------------------------------------------------------------------------ clock


def test_virtual_clock_runs_at_speed(frozen_time: types.SimpleNamespace) -> None:
    c = VirtualClock(start=START, anchor=frozen_time.now, speed=3600.0)
    assert c.now() == START
    frozen_time.now += 2.0
    assert c.now() == START + timedelta(hours=2)
    assert c.now().tzinfo == UTC
    assert c.real_seconds(timedelta(hours=1)) == pytest.approx(1.0)
    assert c.real_seconds(7200) == pytest.approx(2.0)
    assert c.real_seconds(-5) == 0.0


def test_virtual_clock_before_anchor(frozen_time: types.SimpleNamespace) -> None:
    c = VirtualClock(start=START, anchor=frozen_time.now + 10, speed=60.0)
    assert c.now() == START - timedelta(minutes=10)


@given(speed=st.floats(0.01, 100_000), elapsed=st.floats(0, 1e6), offset=st.floats(-1e5, 1e5))
@PROPS
def test_two_clocks_from_the_same_numbers_agree(
    speed: float, elapsed: float, offset: float
) -> None:
    anchor = 1_700_000_000.0 + offset
    now = anchor + elapsed
    saved = clock_mod.time
    clock_mod.time = types.SimpleNamespace(time=lambda: now)  # type: ignore[assignment]
    try:
        a = VirtualClock(start=START, anchor=anchor, speed=speed)
        b = VirtualClock(
            start=START.astimezone(timezone(timedelta(hours=5))), anchor=anchor, speed=speed
        )
        assert a.now() == b.now()
        assert abs((a.now() - START).total_seconds() - elapsed * speed) <= 1e-3 * max(
            1.0, elapsed * speed
        )
    finally:
        clock_mod.time = saved  # type: ignore[assignment]


def test_virtual_clock_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(start=datetime(2026, 1, 1), anchor=0.0)
    with pytest.raises(ValueError, match="positive"):
        VirtualClock(start=START, anchor=0.0, speed=0)
    with pytest.raises(ValueError, match="positive"):
        VirtualClock(start=START, anchor=0.0, speed=-1)


def test_build_clock(frozen_time: types.SimpleNamespace) -> None:
    assert isinstance(build_clock(start=None, anchor=None, speed=1.0), WallClock)
    c = build_clock(start=START, anchor=123.0, speed=1.0)
    assert isinstance(c, VirtualClock) and c.anchor == 123.0 and c.start == START
    c = build_clock(start=datetime(2026, 3, 2, 15, 0), anchor=None, speed=10.0)
    assert isinstance(c, VirtualClock)
    assert c.start == START  # naive taken as UTC
    assert c.anchor == frozen_time.now
    assert c.now() == START
    c = build_clock(start=None, anchor=None, speed=2.0)
    assert isinstance(c, VirtualClock) and c.speed == 2.0


def test_wall_clock() -> None:
    w = WallClock()
    before = datetime.now(UTC)
    assert before - timedelta(seconds=5) <= w.now() <= datetime.now(UTC)
    assert w.now().tzinfo is not None
    assert w.real_seconds(timedelta(seconds=3)) == 3.0
    assert w.real_seconds(-1) == 0.0


async def test_clock_sleep_is_scaled(frozen_time: types.SimpleNamespace) -> None:
    c = VirtualClock(start=START, anchor=frozen_time.now, speed=1e9)
    await c.sleep(timedelta(hours=1))  # 3.6 µs of real time


@given(st.datetimes(timezones=st.just(UTC)))
@PROPS
def test_to_ms_truncates(dt: datetime) -> None:
    t = to_ms(dt)
    assert t <= dt
    assert dt - t < timedelta(milliseconds=1)
    assert t.microsecond % 1000 == 0
    assert to_ms(t) == t
    assert t.tzinfo == dt.tzinfo


def test_utc_helper() -> None:
    assert utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    paris = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert utc(paris) == datetime(2026, 1, 1, tzinfo=UTC)
    assert utc(paris).utcoffset() == timedelta(0)


# -------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_ids_have_their_prefix(prefix: str) -> None:
    i = new_id(prefix)
    assert i.startswith(prefix + "_")
    assert has_prefix(i, prefix)
    assert len(i) == len(prefix) + 1 + 16
    assert i[len(prefix) + 1 :].isalnum()
    s = stable_id(prefix, "a", 1)
    assert has_prefix(s, prefix) and len(s) == len(prefix) + 17


def test_new_id_is_unique() -> None:
    ids = {new_id("evt") for _ in range(5000)}
    assert len(ids) == 5000


@given(st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=5), st.integers(4, 32))
@PROPS
def test_stable_id_is_deterministic(parts: list[object], length: int) -> None:
    a = stable_id("call", *parts, length=length)
    assert a == stable_id("call", *parts, length=length)
    assert len(a) == len("call_") + length
    assert stable_id("evt", *parts, length=length)[4:] == a[5:]


def test_stable_id_distinguishes_parts() -> None:
    assert stable_id("call", "tsk_1", 1) != stable_id("call", "tsk_1", 2)
    assert stable_id("call", "ab", "c") != stable_id("call", "a", "bc")
    assert new_id("evt", length=8).__len__() == 12


@pytest.mark.parametrize("prefix", ["", "foo", "EVT", "evt_", "task"])
def test_unknown_prefix_raises(prefix: str) -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id(prefix)
    with pytest.raises(ValueError, match="unknown id prefix"):
        stable_id(prefix, "x")


def test_has_prefix() -> None:
    assert has_prefix("cmp_x", "cmp")
    assert not has_prefix("cmp_", "cmp")
    assert not has_prefix("cmpx_1", "cmp")
    assert not has_prefix("tsk_1", "cmp")


# ---------------------------------------------------------------------------------- logging


def test_mask_phone_numbers_processor() -> None:
    event = {
        "event": "dialling +12125550123",
        "phone": "+12125550123",
        "nested": {"phones": ["+442079460018", "ok"], "n": 3},
        "pair": ("+33142685300", None),
        "at": "2026-11-22T21:18:52.123Z",
        "event_id": "evt_12345678901",
        "count": 12125550123,
    }
    out = mask_phone_numbers(None, "info", event)
    flat = repr(out)
    for full in ("12125550123'", "442079460018", "33142685300"):
        assert full not in flat.replace("'count': 12125550123", "")
    assert out["phone"] == "+1212*****23"
    assert out["event"] == "dialling +1212*****23"
    assert out["nested"] == {"phones": ["+4420******18", "ok"], "n": 3}
    assert out["pair"] == ["+3314*****00", None]
    assert out["at"] == "2026-11-22T21:18:52.123Z"
    assert out["event_id"] == "evt_12345678901"
    assert event["phone"] == "+12125550123"  # the input is not mutated
