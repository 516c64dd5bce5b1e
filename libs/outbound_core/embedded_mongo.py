"""The embedded document server (SecantusDB), started with one planner fix: ``python -m
outbound_core.embedded_mongo <secantus arguments>``.

SecantusDB 0.7.0b3 re-asserts a ``findAndModify``'s query at write time as
``{"_id": <matched id>, "$and": [<query>]}``. Its index picker gives up on any filter with a
``$``-key, so every ``find_one_and_update`` ended in a scan of the whole collection: 100 ms on a
2,000-document collection and growing with it, against 10 ms for the same ``update_one``. The
services' hot paths (the planner's task transitions, the simulator's calls, webhook deliveries)
use ``find_one_and_update``; on the embedded stack a 1,000-contact campaign spent most of the
database's CPU in those scans.

The fix: a filter that carries an ``_id`` equality beside other clauses is looked up by ``_id``
first. The candidates are a superset of the matches (the top-level clauses are a conjunction and
the caller applies the whole filter to each candidate), so results are unchanged. A real MongoDB
plans these filters on the ``_id`` index by itself; this module is for the embedded default only.
"""

from __future__ import annotations

from typing import Any

from secantus.cli import main
from secantus.storage import Storage

_original = Storage._try_index_id_keys


def _try_index_id_keys(
    self: Storage, db: str, coll: str, filter: dict[str, Any], *, collation: Any = None
) -> list[bytes] | None:
    if len(filter) > 1 and "_id" in filter:
        by_id: list[bytes] | None = _original(self, db, coll, {"_id": filter["_id"]})
        if by_id is not None:
            return by_id
    result: list[bytes] | None = _original(self, db, coll, filter, collation=collation)
    return result


def patch() -> None:
    Storage._try_index_id_keys = _try_index_id_keys


if __name__ == "__main__":
    patch()
    raise SystemExit(main())
