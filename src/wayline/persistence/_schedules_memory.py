"""Schedules in the in-memory store: encoded records in a dict, the same contract as on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from ._crypto import Sealer
from ._schedules import ScheduleRecord, ScheduleWrite, decode_schedule, encode_schedule


class MemorySchedules:
    """`ScheduleStore` for `MemoryStore`: records kept encoded, so no caller aliases them."""

    def __init__(self, check: Callable[[], None], sealer: Callable[[], Sealer]) -> None:
        self._check = check  # raises if the store is closed
        self._sealer = sealer  # the store's, which the runtime sets after the store is made
        self._rows: dict[str, bytes] = {}

    def _records(self) -> list[ScheduleRecord]:
        return [decode_schedule(self._sealer(), self._rows[k]) for k in sorted(self._rows)]

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        self._check()
        data = self._rows.get(schedule_id)
        return None if data is None else decode_schedule(self._sealer(), data)

    async def all(self) -> list[ScheduleRecord]:
        self._check()
        return self._records()

    async def due(self, until: float, workflows: Collection[str], limit: int = 1000) -> list[ScheduleRecord]:
        self._check()
        due = [r for r in self._records() if r.workflow in workflows and r.due_at is not None and r.due_at <= until]
        return sorted(due, key=lambda r: (r.due_at, r.schedule_id))[:limit]

    async def next_due(self, workflows: Collection[str]) -> float | None:
        self._check()
        return min(
            (r.due_at for r in self._records() if r.workflow in workflows and r.due_at is not None), default=None
        )

    async def put(self, writes: Sequence[ScheduleWrite]) -> list[bool]:
        self._check()
        encoded = [(rec, expected, encode_schedule(self._sealer(), rec)) for rec, expected in writes]
        await asyncio.sleep(0)  # as a commit would
        done = []
        for rec, expected, data in encoded:
            stored = self._rows.get(rec.schedule_id)
            if expected is None:
                ok = stored is None
            else:
                ok = stored is not None and decode_schedule(self._sealer(), stored).revision == expected
            if ok:
                self._rows[rec.schedule_id] = data
            done.append(ok)
        return done

    async def delete(self, schedule_id: str, expected: int) -> bool:
        self._check()
        await asyncio.sleep(0)
        stored = self._rows.get(schedule_id)
        if stored is None or decode_schedule(self._sealer(), stored).revision != expected:
            return False
        del self._rows[schedule_id]
        return True
