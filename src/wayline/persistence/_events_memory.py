"""Events in the in-memory store: the same contract as on disk, rows in dicts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ._crypto import Sealer
from ._events import Accepted, EventRecord, NewEvent, decode_body, record, seal_body, values_at, wake_message
from ._records import InboxMessage


class MemoryEvents:
    """`EventStore` for `MemoryStore`."""

    def __init__(
        self,
        check: Callable[[], None],
        append: Callable[[str, InboxMessage], Awaitable[int | None]],
        sealer: Callable[[], Sealer],
    ) -> None:
        self._check = check
        self._sealer = sealer  # the store's, which the runtime sets after the store is made
        self._append = append  # the store's append_inbox
        self._rows: dict[int, tuple[str, str, float, float, bytes, bool]] = {}
        self._ids: dict[str, tuple[int, float]] = {}
        self._waits: set[tuple[str, str, str, str]] = set()  # (name, paths, values, run_id)
        self._seq = 0

    def _record(self, seq: int) -> EventRecord:
        return record(self._sealer(), seq, *self._rows[seq])

    async def append(self, events: Sequence[NewEvent], *, now: float, window: float) -> list[Accepted]:
        self._check()
        bodies = [seal_body(self._sealer(), ev) for ev in events]  # as the other stores write them
        await asyncio.sleep(0)  # as a commit would
        out = []
        for ev, body in zip(events, bodies, strict=True):
            claimed = self._ids.get(ev.event_id)
            if claimed is not None and claimed[1] >= now - window:
                out.append(Accepted(claimed[0], True))
                continue
            self._seq += 1
            seq = self._seq
            self._rows[seq] = (ev.name, ev.event_id, ev.ts, now, body, ev.settled)
            self._ids[ev.event_id] = (seq, now)
            woken = []
            runs = self._take(ev.name, decode_body(ev.body)[0])
            if runs:
                message = wake_message(seq, ev, now)
                for run_id in runs:
                    inbox_seq = await self._append(run_id, message)
                    if inbox_seq is not None:
                        woken.append((run_id, inbox_seq))
            out.append(Accepted(seq, woken=tuple(woken)))
        return out

    async def get(self, seq: int) -> EventRecord | None:
        self._check()
        return self._record(seq) if seq in self._rows else None

    async def listing(
        self, *, name: str | None = None, after: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[EventRecord]:
        self._check()
        seqs = sorted((s for s, row in self._rows.items() if s > after and (name is None or row[0] == name)))
        if newest_first:
            seqs.reverse()
        return [self._record(s) for s in seqs[:limit]]

    async def undispatched(self, limit: int = 100, after: int = 0) -> list[EventRecord]:
        self._check()
        seqs = [s for s in sorted(self._rows) if s > after and not self._rows[s][5]][:limit]
        return [record(self._sealer(), s, *self._rows[s], tolerant=True) for s in seqs]

    async def mark_dispatched(self, seqs: Collection[int]) -> None:
        self._check()
        for s in seqs:
            if s in self._rows:
                self._rows[s] = (*self._rows[s][:5], True)

    async def find(self, name: str, *, since: float, after: int = 0, limit: int = 100) -> list[EventRecord]:
        self._check()
        seqs = sorted(s for s, row in self._rows.items() if s > after and row[0] == name and row[3] >= since)
        return [self._record(s) for s in seqs[:limit]]

    async def add_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        self._check()
        self._waits.add((name, paths, values, run_id))

    async def remove_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        self._check()
        self._waits.discard((name, paths, values, run_id))

    async def waiters(self, name: str, data: Any) -> list[str]:
        self._check()
        found: list[str] = []
        for path_set in sorted({w[1] for w in self._waits if w[0] == name}):
            values = values_at(data, path_set)
            if values is not None:
                found += sorted(w[3] for w in self._waits if w[:3] == (name, path_set, values))
        return found

    def _take(self, name: str, data: Any) -> list[str]:
        found: list[str] = []
        for path_set in sorted({w[1] for w in self._waits if w[0] == name}):
            values = values_at(data, path_set)
            if values is not None:
                rows = sorted(w for w in self._waits if w[:3] == (name, path_set, values))
                self._waits.difference_update(rows)
                found += [w[3] for w in rows]
        return found

    async def take_waiters(self, name: str, data: Any) -> list[str]:
        self._check()
        return self._take(name, data)

    async def remove_waits(self, run_ids: Collection[str]) -> None:
        self._check()
        self._waits = {w for w in self._waits if w[3] not in run_ids}
