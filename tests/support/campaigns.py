"""Waiting for a campaign to settle, as a client of the API sees it.

The API's campaign status, its lead list and its counters are projections of events that travel
on different topics (campaign status, lead updates, calls): right after a campaign shows
``completed`` the lead list may still trail by a moment. A test that reads leads after the
completion waits for both."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import wait_until

TERMINAL_LEAD_STATES = frozenset({"completed", "not_reachable", "archived", "blocked"})


def wait_completed(api: httpx.Client, cid: str, timeout: float = 120) -> dict[str, Any]:
    """The campaign once it is ``completed`` and every one of its leads shows a final state."""

    def settled() -> dict[str, Any] | None:
        campaign: dict[str, Any] = api.get(f"/v1/campaigns/{cid}").json()
        if campaign["status"] != "completed":
            return None
        leads = api.get(f"/v1/campaigns/{cid}/leads", params={"limit": 1000}).json()
        final = all(lead["status"] in TERMINAL_LEAD_STATES for lead in leads["data"])
        return campaign if final and len(leads["data"]) >= campaign["total_contacts"] else None

    done: dict[str, Any] = wait_until(
        settled, timeout=timeout, message=f"campaign {cid} completed with every lead final"
    )
    return done
