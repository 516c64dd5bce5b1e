"""Due-time tracking without scanning the tasks collection: an in-memory heap of
(due_at, task_id), rebuilt from MongoDB on start-up. Entries are hints — the task document is
the truth, so a stale entry (the task moved on) is simply dropped when popped."""

from __future__ import annotations

import heapq
from datetime import datetime


class DueTimer:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due_at: datetime, task_id: str) -> None:
        heapq.heappush(self._heap, (due_at, task_id))

    def extend(self, entries: list[tuple[datetime, str]]) -> None:
        """Add many entries at once (start-up): one O(n) heapify instead of n pushes."""
        self._heap.extend(entries)
        heapq.heapify(self._heap)

    def pop_due(self, now: datetime, limit: int) -> list[tuple[datetime, str]]:
        out: list[tuple[datetime, str]] = []
        while self._heap and self._heap[0][0] <= now and len(out) < limit:
            out.append(heapq.heappop(self._heap))
        return out

    def next_due(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None
