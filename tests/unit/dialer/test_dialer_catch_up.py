"""A dispatch can overtake the dialer's view of its campaign (the start comes on campaigns.v1,
the dispatch on dispatch.v1): the dialer waits a moment for its view to show the start instead
of refusing the call, and refuses only if the view never catches up."""

from __future__ import annotations

import asyncio
from typing import Any

from dialer.handlers import DialerHandlers


class Campaigns:
    def __init__(self, views: list[dict[str, Any] | None]) -> None:
        self.views = views
        self.reads = 0

    async def current(self, campaign_id: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.views[min(self.reads, len(self.views)) - 1]


def _handlers(campaigns: Campaigns, wait: float) -> DialerHandlers:
    return DialerHandlers(
        calls=None,  # type: ignore[arg-type]
        campaigns=campaigns,  # type: ignore[arg-type]
        provider=None,  # type: ignore[arg-type]
        bus=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        suppressions=None,  # type: ignore[arg-type]
        campaign_catch_up_seconds=wait,
    )


def test_a_view_that_catches_up_with_the_start_is_used() -> None:
    campaigns = Campaigns([None, {"status": "scheduled"}, {"status": "running"}])
    got = asyncio.run(_handlers(campaigns, wait=30.0)._caught_up("c"))
    assert got == {"status": "running"}
    assert campaigns.reads == 3


def test_a_pause_is_not_waited_for() -> None:
    campaigns = Campaigns([{"status": "paused"}, {"status": "running"}])
    got = asyncio.run(_handlers(campaigns, wait=30.0)._caught_up("c"))
    assert got == {"status": "paused"}  # a real refusal: the pause is honoured at once


def test_a_view_that_never_catches_up_is_given_up_on() -> None:
    campaigns = Campaigns([{"status": "scheduled"}])
    got = asyncio.run(_handlers(campaigns, wait=0.2)._caught_up("c"))
    assert got == {"status": "scheduled"}
    assert campaigns.reads >= 2
