"""Adding contacts to a campaign and taking uncalled ones out: shared by campaign creation and
``/v1/campaigns/{id}/contacts``. Every addition is checked against the campaign's phones (so a
contact is never added twice), the org's opt-out list (every opted-out phone is dropped; a
contact left without one is not added) and the per-campaign limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaign_api.domain import ContactIssue, normalise_contacts
from campaign_api.problems import Problem
from campaign_api.repository import ApiRepository, Doc
from outbound_core.events import ContactSeed
from outbound_core.ids import new_id
from outbound_core.phones import InvalidPhone, normalize_e164

UNCALLED = ("pending", "queued")


@dataclass
class Prepared:
    seeds: list[ContactSeed] = field(default_factory=list)
    duplicates: int = 0
    opted_out: int = 0  # contacts left out: every phone of theirs is opted out in the org
    opted_out_phones: int = 0  # opted-out phones dropped from contacts that keep another one
    skipped: list[dict[str, Any]] = field(default_factory=list)


def issue_errors(
    issues: Sequence[ContactIssue], where: Callable[[int], str]
) -> list[dict[str, Any]]:
    return [{"field": f"{where(i.index)}.{i.field}", "message": i.message} for i in issues]


async def prepare(
    repo: ApiRepository,
    *,
    org_id: str,
    campaign_id: str | None,
    raw: list[dict[str, Any]],
    default_region: str | None,
    where: Callable[[int], str],
    prior_errors: list[dict[str, Any]] | None = None,
    skip_errors: bool = False,
) -> Prepared:
    """Normalise ``raw`` contacts; a problem rejects the whole batch (422 listing every
    problem) unless ``skip_errors``, which drops the bad rows and reports them."""
    # phonenumbers costs ~0.1-0.5 ms a number: keep the event loop free meanwhile
    norm = await asyncio.to_thread(normalise_contacts, raw, default_region=default_region)
    errors = [*(prior_errors or []), *issue_errors(norm.issues, where)]
    if errors and not skip_errors:
        raise Problem(
            422,
            "Invalid contacts",
            f"{len(errors)} contact problem(s); nothing was added "
            "(send ?on_error=skip to add the good ones)",
            errors,
        )
    out = Prepared(duplicates=norm.duplicates, skipped=errors)
    existing = await repo.phone_map(campaign_id=campaign_id)
    opted_out = await repo.suppressed_among(
        org_id=org_id, phones=sorted({p for c in norm.contacts for p in c["phones"]})
    )
    for c in norm.contacts:
        if c["phones"][0] in existing:
            out.duplicates += 1
            continue
        if opted_out:
            callable_ = [p for p in c["phones"] if p not in opted_out]
            if not callable_:
                out.opted_out += 1
                continue
            out.opted_out_phones += len(c["phones"]) - len(callable_)
            c = {**c, "phones": callable_}
        out.seeds.append(ContactSeed(task_id=new_id("tsk"), **c))
    return out


def phone_entries(seeds: Sequence[ContactSeed]) -> dict[str, str]:
    return {p: s.task_id for s in seeds for p in s.phones}


def lead_docs(seeds: Sequence[ContactSeed], *, campaign_id: str, workspace_id: str) -> list[Doc]:
    """The API's lead projection starts with every contact pending."""
    return [
        {
            "_id": s.task_id,
            "campaign_id": campaign_id,
            "workspace_id": workspace_id,
            "seq": -1,
            "status": "pending",
            "name": s.name,
            "phones": s.phones,
            "current_phone": s.phones[0],
            "phone_index": 0,
            "pass_number": 1,
            "attempt": 0,
            "last_disposition": None,
            "variables": s.variables,
        }
        for s in seeds
    ]


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)  # lead ids
    not_found: list[str] = field(default_factory=list)  # phones
    already_called: list[str] = field(default_factory=list)  # phones


def normalise_phones(phones: Sequence[str], *, default_region: str | None) -> list[str]:
    out: list[str] = []
    errors: list[dict[str, Any]] = []
    for i, p in enumerate(phones):
        try:
            e164 = normalize_e164(str(p), default_region=default_region)
        except InvalidPhone as exc:
            errors.append({"field": f"phones[{i}]", "message": str(exc)})
            continue
        if e164 not in out:
            out.append(e164)
    if errors:
        raise Problem(422, "Invalid request", f"{len(errors)} invalid phone(s)", errors)
    return out


def classify_removal(
    phones: Sequence[str], owners: dict[str, str], leads: dict[str, Doc]
) -> Removal:
    """Which of ``phones`` can be removed. ``owners`` maps each phone of the campaign to its
    lead; ``leads`` holds the projected state of those leads (a lead not projected yet has not
    been touched by the planner, so it is still waiting). A lead that has never been called
    goes; one that has been called keeps its data. Pure."""
    out = Removal()
    for p in phones:
        lead_id = owners.get(p)
        if lead_id is None:
            out.not_found.append(p)
            continue
        lead = leads.get(lead_id, {})
        if lead.get("status", "pending") in UNCALLED and not lead.get("attempt", 0):
            if lead_id not in out.removed:
                out.removed.append(lead_id)
        else:
            out.already_called.append(p)
    return out
