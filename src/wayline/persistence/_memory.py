"""In-memory store for tests: the same contract as SQLite, minus the disk.

Values are encoded on the way in and decoded on the way out, exactly as on disk, so tests
catch unencodable payloads and callers can never alias stored state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from .._errors import StoreError
from ._blobs import Offloader, PayloadLimits
from ._cancel_keys import MemoryCancelKeys
from ._codec import decode_history, decode_inbox_rows, decode_record, encode_stored
from ._crypto import KeyRing, Sealer, encode_message, encode_sealed, may_hold_sealed
from ._events_memory import MemoryEvents
from ._flow_memory import MemoryFlow
from ._leases import SingleOwner
from ._pacing_memory import MemoryPacing
from ._purge import check_statuses
from ._records import AnyEvent, InboxMessage, RunRecord, RunStatus
from ._rotate import KeyRotation, Write, rotate
from ._schedules_memory import MemorySchedules
from ._search import filter_terms, matches
from ._store import HEALTHY, StoreHealth


class MemoryStore(SingleOwner):
    """A `Store` that keeps encoded snapshots and history in dicts.

    It checks `PayloadLimits` as the database stores do, but keeps large values in place:
    memory has no snapshot to rewrite on disk.
    """

    def __init__(self, *, payload_limits: PayloadLimits | None = None) -> None:
        self.payloads = Offloader(payload_limits)
        self.sealer = Sealer(KeyRing(()))  # the runtime's keys, once it sets them
        self._runs: dict[str, bytes] = {}
        self._history: dict[str, list[bytes]] = {}
        self._inbox: dict[int, tuple[str, bytes]] = {}
        self._inbox_seq = 0
        self._closed = False
        self.schedules = MemorySchedules(self._check, lambda: self.sealer)
        self.events = MemoryEvents(self._check, self.append_inbox, lambda: self.sealer)
        self.flow = MemoryFlow(self._check, self._status_of)
        self.cancel_keys = MemoryCancelKeys(self._check)
        self.pacing = MemoryPacing(self._check)

    @property
    def pending(self) -> int:
        return 0

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    def health(self) -> StoreHealth:
        return HEALTHY  # memory has no disk to fill

    def _status_of(self, run_id: str) -> RunStatus | None:
        data = self._runs.get(run_id)
        return None if data is None else decode_record(data).status

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the in-memory store is closed")

    async def create_run(
        self, record: RunRecord, events: Sequence[AnyEvent], message: InboxMessage | None = None
    ) -> RunRecord | None:
        self._check()
        snap, rows = encode_sealed(self.sealer, record, events, self._encode)
        data = None if message is None else encode_message(self.sealer, message, record.run_id)
        await asyncio.sleep(0)
        existing = self._runs.get(record.run_id)
        if existing is not None:
            return self._decode(existing)
        self._runs[record.run_id] = snap
        self._history[record.run_id] = [rows] if rows is not None else []
        self.cancel_keys.written(record, True)
        if data is not None:
            self._inbox_seq += 1
            self._inbox[self._inbox_seq] = (record.run_id, data)
        return None

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        # Encode now, at the call, as the Store contract requires (PayloadError raised here).
        self._check()
        snap, rows = encode_sealed(self.sealer, record, events, self._encode)
        if record.status.finished:
            self.payloads.run_ended(record.run_id)
        self.cancel_keys.written(record, False)
        return self._commit(record.run_id, snap, rows, tuple(consumed), record.status.finished, record.history_seq)

    def _encode(self, record: RunRecord, events: list[AnyEvent]) -> tuple[bytes, bytes | None]:
        snap = encode_stored(record, what=f"state of run {record.run_id!r}", run_id=record.run_id)
        rows = encode_stored(events, what=f"history of run {record.run_id!r}") if events else None
        self.payloads.prepare(record, events, len(snap), len(rows or b""))  # the limits
        return snap, rows

    def _decode(self, data: bytes) -> RunRecord:
        record = decode_record(data)
        return self.sealer.open_record(record) if may_hold_sealed(data) else record

    async def _commit(
        self, run_id: str, snap: bytes, rows: bytes | None, consumed: tuple[int, ...], finished: bool, seq: int
    ) -> None:
        # Yield like a real commit would, so runs interleave the same way as on disk.
        await asyncio.sleep(0)
        self._runs[run_id] = snap
        history = self._history.setdefault(run_id, [])
        if rows is not None:
            # Row seq - 1; a run continued as new writes from row 0 again, over the old rows.
            if seq - 1 < len(history):
                history[seq - 1] = rows
            else:
                history.append(rows)
        for seq in consumed:
            self._inbox.pop(seq, None)
        if finished:
            for seq in [s for s, (rid, _) in self._inbox.items() if rid == run_id]:
                del self._inbox[seq]

    async def purge_runs(
        self,
        *,
        before: float,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int | None = 200,
        dry_run: bool = False,
    ) -> list[str]:
        self._check()
        chosen = check_statuses(statuses)
        found = [
            rec
            for rec in map(decode_record, self._runs.values())
            if rec.status.value in chosen
            and (workflow is None or rec.workflow == workflow)
            and rec.ended_at is not None
            and rec.ended_at < before
        ]
        found.sort(key=lambda r: (r.created_at, r.run_id))
        picked = [r.run_id for r in found[:limit]]
        if not dry_run:
            await asyncio.sleep(0)
            self.cancel_keys.forget(picked)
            for run_id in picked:
                self._runs.pop(run_id, None)
                self._history.pop(run_id, None)
                for seq in [s for s, (rid, _) in self._inbox.items() if rid == run_id]:
                    del self._inbox[seq]
        return picked

    async def rotate_keys(
        self,
        *,
        batch_size: int = 100,
        progress: Callable[[KeyRotation], Any] | None = None,
        wrap: Callable[[Write], Write] | None = None,
    ) -> KeyRotation:
        """Re-encrypt stored values with the current key (see `wayline.persistence._rotate`)."""
        self._check()

        async def read_runs(after: str, limit: int) -> list[tuple[str, bytes]]:
            return sorted((r, d) for r, d in self._runs.items() if r > after)[:limit]

        async def read_history(run_ids: list[str]) -> list[tuple[str, int, bytes]]:
            return [(r, i, d) for r in run_ids for i, d in enumerate(self._history.get(r, ()))]

        async def write(
            snaps: list[tuple[str, bytes, bytes]], hist: list[tuple[str, int, bytes, bytes]]
        ) -> tuple[int, int]:
            n = m = 0
            for run_id, old, new in snaps:
                if self._runs.get(run_id) == old:
                    self._runs[run_id], n = new, n + 1
            for run_id, seq, old, new in hist:
                rows = self._history.get(run_id)
                if rows is not None and seq < len(rows) and rows[seq] == old:
                    rows[seq], m = new, m + 1
            return n, m

        return await rotate(
            self.sealer, read_runs, read_history, write, batch_size=batch_size, progress=progress, wrap=wrap
        )

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        self._check()
        data = encode_message(self.sealer, message, run_id)
        await asyncio.sleep(0)
        stored = self._runs.get(run_id)
        if stored is None or decode_record(stored).status.finished:
            return None
        self._inbox_seq += 1
        self._inbox[self._inbox_seq] = (run_id, data)
        return self._inbox_seq

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        self._check()
        rows = ((s, rid, data) for s, (rid, data) in sorted(self._inbox.items()) if s > seq)
        found = decode_inbox_rows(rows, ":memory:", placeholders=True)
        return [(s, r, self.sealer.open_message(m, r)) for s, r, m in found[:limit]]

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        self._check()
        due = []
        for data in self._runs.values():
            rec = decode_record(data)
            wake = rec.wake_at
            if rec.status is RunStatus.WAITING and wake is not None and wake <= until:
                due.append((rec.run_id, wake))
        return sorted(due, key=lambda d: d[1])[:limit]

    async def next_wake(self, after: float) -> float | None:
        self._check()
        wakes = [
            w
            for rec in map(decode_record, self._runs.values())
            if rec.status is RunStatus.WAITING and (w := rec.wake_at) is not None and w > after
        ]
        return min(wakes, default=None)

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        self._check()
        rows = ((s, rid, data) for s, (rid, data) in sorted(self._inbox.items()) if rid == run_id)
        return [(s, self.sealer.open_message(m, run_id)) for s, _, m in decode_inbox_rows(rows, ":memory:")]

    async def get_run(self, run_id: str) -> RunRecord | None:
        self._check()
        data = self._runs.get(run_id)
        return None if data is None else self._decode(data)

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        self._check()
        data = self._runs.get(run_id)
        rows = [(0, seq, events) for seq, events in enumerate(self._history.get(run_id, ()))]
        events = decode_history([*rows, (1, 0, data)] if data is not None else rows)
        return self.sealer.open_events(events, run_id)

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        self._check()
        return sum(decode_record(data).status in statuses for data in self._runs.values())

    async def list_runs(
        self,
        *,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> list[RunRecord]:
        self._check()
        filter_terms(metadata, tag)  # the same errors as the stores with an index
        out = []
        for data in self._runs.values():
            rec = self._decode(data)
            if (metadata or tag is not None) and not matches(rec, metadata, tag):
                continue
            if statuses is not None and rec.status not in statuses:
                continue
            if workflow is not None and rec.workflow != workflow:
                continue
            if since is not None and rec.created_at < since:
                continue
            out.append(rec)
        out.sort(key=lambda r: (r.created_at, r.run_id), reverse=newest_first)
        return out[:limit] if limit is not None else out
