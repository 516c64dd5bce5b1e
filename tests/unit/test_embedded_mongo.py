"""The embedded document server's retryable-write pruning (outbound_core.embedded_mongo): the
same records kept and dropped as SecantusDB's own, at a cost that does not grow per write."""

from __future__ import annotations

import pytest
from secantus import transactions
from secantus.transactions import TransactionRegistry

from outbound_core import embedded_mongo

OK = {"ok": 1.0, "n": 1}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> tuple[TransactionRegistry, FakeTime]:
    monkeypatch.setattr(
        TransactionRegistry, "_prune_retryable_locked", embedded_mongo._prune_retryable_locked
    )
    monkeypatch.setattr(transactions, "_RETRYABLE_RECORD_MAX", 3)
    clock = FakeTime()
    return TransactionRegistry(time_func=clock), clock


def test_a_recorded_write_is_replayed_and_the_oldest_go_over_the_cap(
    registry: tuple[TransactionRegistry, FakeTime],
) -> None:
    reg, clock = registry
    for n in range(5):
        clock.now += 0.01
        reg.record_retryable(b"s", n, b"cmd", {**OK, "n": n})
    assert reg.retryable_reply(b"s", 4, b"cmd") == {**OK, "n": 4}
    assert reg.retryable_reply(b"s", 2, b"cmd") == {**OK, "n": 2}
    # the two oldest were evicted to keep three
    assert reg.retryable_reply(b"s", 1, b"cmd") is None
    assert reg.retryable_reply(b"s", 0, b"cmd") is None
    assert reg.retryable_reply(b"s", 4, b"other") is None  # another command: executed again


def test_records_expire_after_their_lifetime(
    registry: tuple[TransactionRegistry, FakeTime],
) -> None:
    reg, clock = registry
    reg.record_retryable(b"s", 1, b"cmd", OK)
    clock.now += transactions._RETRYABLE_RECORD_LIFETIME_SECONDS - 1
    assert reg.retryable_reply(b"s", 1, b"cmd") == OK
    clock.now += 2
    assert reg.retryable_reply(b"s", 1, b"cmd") is None
