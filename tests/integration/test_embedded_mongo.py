"""The embedded document server's planner fix (outbound_core.embedded_mongo): a filter with an
``_id`` beside other clauses is looked up by ``_id`` first. The results must be exactly those of
the whole filter: these are the conditional writes the services rely on (a transition that
applies only from the expected state, an upsert, an ``$in`` of ids)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection

from tests.conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
def tasks(infra: Infra) -> Any:
    with MongoClient(infra.mongo_url) as client:
        coll: Collection[dict[str, Any]] = client[f"embedded_{uuid.uuid4().hex[:8]}"]["tasks"]
        coll.create_index([("status", 1)])
        coll.create_index([("status", 1), ("announced_at", 1)])
        coll.insert_many(
            [{"_id": f"t{i}", "status": "queued", "attempt": 1, "seq": 0} for i in range(200)]
        )
        yield coll
        client.drop_database(coll.database.name)


def test_a_conditional_find_and_modify_applies_only_when_the_whole_filter_matches(
    tasks: Collection[dict[str, Any]],
) -> None:
    moved = tasks.find_one_and_update(
        {"_id": "t7", "status": {"$in": ["queued", "dialing"]}, "attempt": 1},
        {"$set": {"status": "dialing"}, "$inc": {"seq": 1}},
        return_document=ReturnDocument.AFTER,
    )
    assert moved is not None and (moved["status"], moved["seq"]) == ("dialing", 1)
    # the same transition again, from a state it no longer is in: no match, nothing written
    assert (
        tasks.find_one_and_update({"_id": "t7", "status": "queued"}, {"$inc": {"seq": 1}}) is None
    )
    assert tasks.find_one_and_update({"_id": "t7", "attempt": 2}, {"$inc": {"seq": 1}}) is None
    assert tasks.find_one({"_id": "t7"}) == {
        "_id": "t7",
        "status": "dialing",
        "attempt": 1,
        "seq": 1,
    }
    # no other document was touched
    assert tasks.count_documents({"seq": {"$ne": 0}}) == 1


def test_updates_with_an_id_and_other_clauses_keep_their_meaning(
    tasks: Collection[dict[str, Any]],
) -> None:
    assert (
        tasks.update_one(
            {"_id": "t1", "status": {"$ne": "ended"}}, {"$set": {"x": 1}}
        ).modified_count
        == 1
    )
    assert (
        tasks.update_one({"_id": "t1", "status": "ended"}, {"$set": {"x": 2}}).modified_count == 0
    )
    changed = tasks.update_many(
        {"_id": {"$in": ["t2", "t3", "nope"]}, "seq": 0}, {"$set": {"x": 3}}
    )
    assert changed.modified_count == 2
    upserted = tasks.find_one_and_update(
        {"_id": "new", "status": "queued"},
        {"$set": {"attempt": 0}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert upserted == {"_id": "new", "status": "queued", "attempt": 0}
    assert tasks.delete_one({"_id": "t4", "status": "dialing"}).deleted_count == 0
    assert tasks.delete_one({"_id": "t4", "status": "queued"}).deleted_count == 1
    assert tasks.count_documents({}) == 200
