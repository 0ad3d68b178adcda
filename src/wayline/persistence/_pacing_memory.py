"""Throttle and debounce in the in-memory store: the same contract as on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from ._pacing import Debounced, DebouncePush, Throttled, ThrottlePosition, pace, push


class MemoryPacing:
    """`PacingStore` for `MemoryStore`."""

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._queue: dict[str, Throttled] = {}
        self._tat: dict[tuple[str, str], float] = {}
        self._seq = 0
        self._passed: set[str] = set()
        self._debounces: dict[tuple[str, str], Debounced] = {}

    def _order(self, group: str, key: str) -> list[Throttled]:
        found = [q for q in self._queue.values() if q.group == group and q.key == key and q.run_id not in self._passed]
        return sorted(found, key=lambda q: (-q.priority, q.seq))

    async def throttle_enqueue(self, entry: Throttled) -> None:
        self._check()
        await asyncio.sleep(0)
        if entry.run_id not in self._queue and entry.run_id not in self._passed:
            self._seq += 1
            self._queue[entry.run_id] = msgspec.structs.replace(entry, seq=self._seq)

    async def throttle_admit(
        self, group: str, key: str, limit: int, period: float, burst: int, now: float
    ) -> tuple[list[str], float | None]:
        self._check()
        await asyncio.sleep(0)
        admitted: list[str] = []
        for head in self._order(group, key):
            allowed, at = pace(self._tat.get((group, key)), now, limit, period, burst)
            if not allowed:
                return admitted, at
            self._tat[(group, key)] = at
            del self._queue[head.run_id]
            self._passed.add(head.run_id)
            admitted.append(head.run_id)
        return admitted, None

    async def throttle_queues(self) -> list[tuple[str, str]]:
        self._check()
        return sorted({(q.group, q.key) for q in self._queue.values()})

    async def throttle_passed(self) -> list[str]:
        self._check()
        return sorted(self._passed)

    async def throttle_done(self, run_id: str) -> None:
        self._check()
        await asyncio.sleep(0)
        self._passed.discard(run_id)

    async def throttle_position(self, run_id: str) -> ThrottlePosition | None:
        self._check()
        entry = self._queue.get(run_id)
        if entry is None:
            return None
        ahead = self._order(entry.group, entry.key).index(entry)
        return ThrottlePosition(entry=entry, ahead=ahead, tat=self._tat.get((entry.group, entry.key)))

    async def debounce(
        self, group: str, key: str, run_id: str, now: float, period: float, max_wait: float | None
    ) -> DebouncePush:
        self._check()
        await asyncio.sleep(0)
        row = self._debounces.get((group, key))
        out = push(row, run_id, now, period, max_wait)
        if out.created:
            self._debounces[(group, key)] = Debounced(
                run_id=run_id, group=group, key=key, first_at=now, due_at=out.due_at
            )
        else:
            assert row is not None
            self._debounces[(group, key)] = msgspec.structs.replace(row, due_at=out.due_at, count=row.count + 1)
        return out

    async def take_due(self, now: float) -> list[str]:
        self._check()
        await asyncio.sleep(0)
        due = sorted((d for d in self._debounces.values() if d.due_at <= now), key=lambda d: d.due_at)
        for d in due:
            del self._debounces[(d.group, d.key)]
        return [d.run_id for d in due]

    async def next_due(self) -> float | None:
        self._check()
        return min((d.due_at for d in self._debounces.values()), default=None)

    async def debounced(self, run_id: str) -> Debounced | None:
        self._check()
        return next((d for d in self._debounces.values() if d.run_id == run_id), None)

    async def held(self) -> set[str]:
        self._check()
        return set(self._queue) | self._passed | {d.run_id for d in self._debounces.values()}

    async def withdraw(self, run_id: str) -> bool:
        self._check()
        await asyncio.sleep(0)
        found = self._queue.pop(run_id, None) is not None
        self._passed.discard(run_id)
        for k, d in list(self._debounces.items()):
            if d.run_id == run_id:
                del self._debounces[k]
                found = True
        return found
