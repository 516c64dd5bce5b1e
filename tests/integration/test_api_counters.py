"""campaign-api's counters against the real database: every call event adds to them exactly
once, also when the service dies between the counter's write and the call's marker and the
event comes again (at least once delivery), and also when the whole topic is replayed later."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from campaign_api.projections import Projections
from campaign_api.repository import ApiRepository, Doc
from outbound_core.events import (
    CallEnded,
    CallStarted,
    DispositionRecorded,
    Envelope,
    Payload,
    make_envelope,
)
from tests.conftest import Infra

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Killed(Exception):
    """Stands for the process dying between two writes."""


@pytest.fixture
async def repo(infra: Infra) -> AsyncIterator[ApiRepository]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    repo = ApiRepository(client[f"it_counters_{uuid.uuid4().hex[:8]}"])
    await repo.ensure_indexes()
    yield repo
    await client.drop_database(repo.db.name)
    await client.close()


def _env(payload: Payload) -> Envelope:
    return make_envelope(payload, producer="it", org_id="o", workspace_id="w", occurred_at=AT)


def _events(cid: str, n: int) -> list[tuple[Envelope, Any]]:
    out: list[tuple[Envelope, Any]] = []
    for i in range(n):
        ids = {"call_id": f"call_{i}", "task_id": f"task_{i}", "campaign_id": cid, "attempt": 1}
        started = CallStarted(**ids, provider="sim", started_at=AT)
        ended = CallEnded(
            **ids,
            provider="sim",
            status="completed",
            duration_seconds=30.0,
            cost=0.1,
            started_at=AT,
            ended_at=AT,
        )
        disposition = DispositionRecorded(
            **ids, disposition="interested", connected=True, duration_seconds=30.0
        )
        out += [(_env(started), started), (_env(ended), ended), (_env(disposition), disposition)]
    return out


async def _apply(views: Projections, env: Envelope, ev: Any) -> None:
    handler = {
        CallStarted: views.on_call_started,
        CallEnded: views.on_call_ended,
        DispositionRecorded: views.on_disposition,
    }[type(ev)]
    await handler(env, ev)


async def _counters(repo: ApiRepository, cid: str) -> Doc:
    doc = await repo.campaigns.find_one({"_id": cid})
    assert doc is not None
    return doc


async def test_a_kill_between_the_counter_and_the_marker_never_loses_nor_doubles_a_count(
    repo: ApiRepository,
) -> None:
    cid = f"cmp_{uuid.uuid4().hex[:8]}"
    await repo.campaigns.insert_one({"_id": cid, "status": "running"})
    views = Projections(repo=repo)
    events = _events(cid, 4)
    real_mark = repo.mark_counted

    async def dies(**_: Any) -> None:
        raise Killed

    # every event's first delivery dies right after its counter was written
    repo.mark_counted = dies  # type: ignore[method-assign]
    for env, ev in events:
        with pytest.raises(Killed):
            await _apply(views, env, ev)
    repo.mark_counted = real_mark  # type: ignore[method-assign]
    for env, ev in events:  # redelivered: uncommitted, the events come again
        await _apply(views, env, ev)
    await views.forget_settled()
    for env, ev in events:  # and once more, long after (a replay from the beginning)
        await _apply(views, env, ev)

    doc = await _counters(repo, cid)
    assert doc["calls_made"] == 4
    assert doc["calls_connected"] == 4
    assert doc["call_seconds"] == pytest.approx(120.0)
    assert doc["disposition_summary"] == {"interested": 4}
    assert doc["daily"]["2026-03-02"]["calls"] == 4
    # the short list of keys being counted is emptied once the calls carry their markers
    await views.forget_settled()
    assert (await _counters(repo, cid))["counting"] == []
    calls = [c async for c in repo.calls.find({"campaign_id": cid})]
    assert sorted(sorted(c["counted"]) for c in calls) == [["disposition", "ended", "started"]] * 4


async def test_the_counters_of_a_disposition_are_handed_on_while_completion_waits(
    repo: ApiRepository,
) -> None:
    cid = f"cmp_{uuid.uuid4().hex[:8]}"
    await repo.campaigns.insert_one(
        {"_id": cid, "status": "running", "completion_pending": {"dispositions": 2, "since": 0}}
    )
    told: list[int] = []

    async def on_counted(campaign_id: str, counters: Doc) -> None:
        assert campaign_id == cid
        told.append(sum(counters["disposition_summary"].values()))

    views = Projections(repo=repo, on_counted=on_counted)
    for env, ev in _events(cid, 2):
        await _apply(views, env, ev)
    for env, ev in _events(cid, 2):  # told again: counted before, nothing handed on
        await _apply(views, env, ev)
    assert told == [1, 2]
