"""The embedded document server (SecantusDB), started with two fixes for its cost per write:
``python -m outbound_core.embedded_mongo <secantus arguments>``. A real MongoDB needs neither;
this module is for the embedded default only.

1. Index use of conditional writes.
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
plans these filters on the ``_id`` index by itself.

2. Retryable-write records. Every retryable write (the drivers' default) is recorded for 30
minutes, up to 10,000 records, and each record and lookup pruned the whole table: a scan of
every record, and once the cap was reached a sort of all of them, per write. On the 1,000-contact
campaign that was a quarter of the server's CPU. The fix prunes expired records at most once a
second and evicts over the cap oldest first from the front of the table (records are kept in
the order they were written), which is what the sort computed.
"""

from __future__ import annotations

import itertools
from typing import Any

from secantus import transactions
from secantus.cli import main
from secantus.storage import Storage
from secantus.transactions import TransactionRegistry

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


_PRUNE_EVERY_SECONDS = 1.0
_pruned_at: dict[int, float] = {}


def _prune_retryable_locked(self: TransactionRegistry) -> None:
    records: dict[Any, tuple[Any, float, bytes]] = self._retryable
    now: float = self._time()
    if now - _pruned_at.get(id(self), float("-inf")) >= _PRUNE_EVERY_SECONDS:
        _pruned_at[id(self)] = now
        cutoff = now - transactions._RETRYABLE_RECORD_LIFETIME_SECONDS
        for key in [k for k, (_r, at, _i) in records.items() if at < cutoff]:
            records.pop(key, None)
    excess = len(records) - transactions._RETRYABLE_RECORD_MAX
    if excess > 0:
        for key in list(itertools.islice(records, excess)):
            records.pop(key, None)


def patch() -> None:
    Storage._try_index_id_keys = _try_index_id_keys
    TransactionRegistry._prune_retryable_locked = _prune_retryable_locked


if __name__ == "__main__":
    patch()
    raise SystemExit(main())
