"""Flow control in the in-memory store: the same contract as on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from ._flow import Position, QueuedRun
from ._records import RunStatus


class MemoryFlow:
    """`FlowStore` for `MemoryStore`."""

    def __init__(self, check: Callable[[], None], status: Callable[[str], RunStatus | None]) -> None:
        self._check = check
        self._status = status  # a run's status in the store (None: no such run)
        self._queue: dict[str, QueuedRun] = {}
        self._slots: dict[str, QueuedRun] = {}
        self._seq = 0
        self._starts: dict[tuple[str, str], list[tuple[float, str]]] = {}

    def _order(self, group: str, key: str) -> list[QueuedRun]:
        found = [q for q in self._queue.values() if q.group == group and q.key == key]
        return sorted(found, key=lambda q: (-q.priority, q.seq))

    def _held(self, group: str, key: str) -> int:
        return sum(1 for s in self._slots.values() if s.group == group and s.key == key)

    async def enqueue(self, entry: QueuedRun) -> None:
        self._check()
        await asyncio.sleep(0)
        if entry.run_id in self._queue or entry.run_id in self._slots:
            return
        self._seq += 1
        self._queue[entry.run_id] = msgspec.structs.replace(entry, seq=self._seq)

    async def admit(self, group: str, key: str) -> list[str]:
        self._check()
        await asyncio.sleep(0)
        admitted = []
        held = self._held(group, key)
        for head in self._order(group, key):
            if held >= head.limit:
                break
            del self._queue[head.run_id]
            self._slots[head.run_id] = head
            admitted.append(head.run_id)
            held += 1
        return admitted

    async def release(self, run_id: str) -> tuple[str, str] | None:
        self._check()
        await asyncio.sleep(0)
        entry = self._slots.pop(run_id, None) or self._queue.pop(run_id, None)
        return None if entry is None else (entry.group, entry.key)

    async def withdraw(self, run_id: str) -> bool:
        self._check()
        await asyncio.sleep(0)
        return self._queue.pop(run_id, None) is not None

    async def slots(self) -> list[QueuedRun]:
        self._check()
        return sorted(self._slots.values(), key=lambda s: s.run_id)

    async def stalled(self) -> list[str]:
        self._check()
        await asyncio.sleep(0)
        return sorted(run_id for run_id in self._slots if self._status(run_id) is RunStatus.QUEUED)

    async def take_rate(self, group: str, key: str, limit: int, period: float, now: float, run_id: str) -> float | None:
        self._check()
        await asyncio.sleep(0)
        starts = [s for s in self._starts.get((group, key), []) if s[0] > now - period]
        self._starts[(group, key)] = starts
        if any(s[1] == run_id for s in starts):
            return None
        if len(starts) >= limit:
            return starts[-limit][0] + period - now
        starts.append((now, run_id))
        return None

    async def holders(self, group: str, key: str) -> list[str]:
        self._check()
        return sorted(s.run_id for s in self._slots.values() if s.group == group and s.key == key)

    async def queues(self) -> list[tuple[str, str]]:
        self._check()
        return sorted({(q.group, q.key) for q in self._queue.values()})

    async def position(self, run_id: str) -> Position | None:
        self._check()
        entry = self._queue.get(run_id)
        if entry is None:
            return None
        order = self._order(entry.group, entry.key)
        return Position(entry=entry, ahead=order.index(entry), running=self._held(entry.group, entry.key))
