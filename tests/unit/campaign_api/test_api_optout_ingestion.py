"""Opted-out numbers at ingestion: a contact left without a callable phone is not added and
is counted; an opted-out phone of a contact that has another one is dropped and counted."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from campaign_api.contacts import prepare
from campaign_api.repository import ApiRepository


class _Repo:
    def __init__(self, suppressed: set[str], existing: set[str] | None = None) -> None:
        self.suppressed = suppressed
        self.existing = existing or set()
        self.asked: list[str] = []

    async def phone_map(self, *, campaign_id: str | None) -> dict[str, tuple[str, str]]:
        return dict.fromkeys(self.existing, ("tsk_x", "map"))

    async def suppressed_among(self, *, org_id: str, phones: list[str]) -> set[str]:
        self.asked = phones
        return self.suppressed & set(phones)


def _prepare(repo: _Repo, raw: list[dict[str, Any]]) -> Any:
    return asyncio.run(
        prepare(
            cast(ApiRepository, repo),
            org_id="org_1",
            campaign_id="cmp_1",
            raw=raw,
            default_region=None,
            where=lambda i: f"contacts[{i}]",
        )
    )


def test_opted_out_contacts_and_phones_are_left_out_and_counted() -> None:
    repo = _Repo({"+12125550001", "+12125550003"}, existing={"+12125550009"})
    out = _prepare(
        repo,
        [
            {"phone": "+12125550001"},  # only number opted out
            {"phone1": "+12125550003", "phone2": "+12125550004"},  # keeps the second one
            {"phone": "+12125550005"},
            {"phone": "+12125550009"},  # already in the campaign
        ],
    )
    assert (out.opted_out, out.opted_out_phones, out.duplicates) == (1, 1, 1)
    assert [s.phones for s in out.seeds] == [["+12125550004"], ["+12125550005"]]
    # every phone of every contact is checked, not only the first
    assert "+12125550004" in repo.asked


def test_nothing_is_left_out_when_nothing_is_opted_out() -> None:
    out = _prepare(_Repo(set()), [{"phone": "+12125550001"}, {"phone": "+12125550002"}])
    assert (out.opted_out, out.opted_out_phones, len(out.seeds)) == (0, 0, 2)
