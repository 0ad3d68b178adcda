"""`FaultInjectingStore`: a store that "crashes the process" at a chosen write."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import Any, Literal

from ..persistence import (
    CLAIMABLE,
    AnyEvent,
    InboxMessage,
    Lease,
    Listener,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    ScheduleStore,
    ScheduleWrite,
    Store,
    StoreHealth,
    Subscription,
    WorkerInfo,
)


class SimulatedCrash(BaseException):
    """Stands for the process dying. A `BaseException`, so nothing in wayline or in user
    code handles it: it unwinds the whole runtime, as a real crash would stop everything."""


class FaultInjectingStore:
    """Wraps a real store; the ``crash_at``-th write (1-based) raises `SimulatedCrash`.

    ``when="before"``: the write never reaches the store (the process died before the
    commit). ``when="after"``: it is committed, then the crash hits before the caller learns
    it. From then on every call raises, so nothing more is written: reopen the same
    database with a plain store to play the restart. ``writes`` counts writes so far, so a
    run with ``crash_at=None`` tells how many writes a workload makes.
    """

    def __init__(
        self, inner: Store, *, crash_at: int | None = None, when: Literal["before", "after"] = "before"
    ) -> None:
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        self.inner = inner
        self.crash_at = crash_at
        self.when = when
        self.writes = 0
        self.crashed = False
        inner_schedules = getattr(inner, "schedules", None)
        if inner_schedules is not None:  # schedule writes count (and crash) like any other
            self.schedules = _FaultySchedules(self, inner_schedules)

    @property
    def pending(self) -> int:
        return self.inner.pending

    def _check(self) -> None:
        if self.crashed:
            raise SimulatedCrash(f"the store is dead after a simulated crash at write #{self.crash_at}")

    def _before(self) -> int:
        """Count a write; crash now if it is the chosen one (``before``). Returns its number."""
        self._check()
        self.writes += 1
        if self.writes == self.crash_at and self.when == "before":
            self.crashed = True
            raise SimulatedCrash(f"simulated crash before write #{self.writes}")
        return self.writes

    def _after(self, number: int) -> None:
        # ``number`` is this write's own: other writes may have been counted while it ran.
        if number == self.crash_at and self.when == "after":
            self.crashed = True
            raise SimulatedCrash(f"simulated crash after write #{number}")

    async def start(self) -> None:
        await self.inner.start()

    @property
    def shared(self) -> bool:
        """Whether the wrapped store's database is shared by several workers."""
        return bool(getattr(self.inner, "shared", False))

    async def claim_ownership(self) -> None:
        claim = getattr(self.inner, "claim_ownership", None)
        if claim is not None:
            result = claim()
            if result is not None:  # the PostgreSQL store's is a coroutine
                await result

    async def close(self) -> None:
        await self.inner.close()

    def health(self) -> StoreHealth:
        return self.inner.health()

    async def create_run(
        self, record: RunRecord, events: Sequence[AnyEvent], message: InboxMessage | None = None
    ) -> RunRecord | None:
        number = self._before()
        result = await self.inner.create_run(record, events, message)
        self._after(number)
        return result

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        number = self._before()
        return self._then_after(self.inner.checkpoint(record, events, consumed), number)

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        number = self._before()
        seq = await self.inner.append_inbox(run_id, message)
        self._after(number)
        return seq

    async def rotate_keys(self, *, batch_size: int = 100, progress: Any = None) -> Any:
        """The inner store's key rotation; each batch's write transaction counts as a write
        (and crashes like any other)."""
        self._check()

        def wrap(write: Any) -> Any:
            async def counted(snaps: Any, hist: Any) -> Any:
                number = self._before()
                done = await write(snaps, hist)
                self._after(number)
                return done

            return counted

        return await self.inner.rotate_keys(batch_size=batch_size, progress=progress, wrap=wrap)  # type: ignore[attr-defined]

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        self._check()
        return await self.inner.inbox_since(seq, limit)

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        self._check()
        return await self.inner.due_runs(until, limit)

    async def next_wake(self, after: float) -> float | None:
        self._check()
        return await self.inner.next_wake(after)

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        self._check()
        return await self.inner.get_inbox(run_id)

    async def _then_after(self, done: Awaitable[None], number: int) -> None:
        await done
        self._after(number)

    async def get_run(self, run_id: str) -> RunRecord | None:
        self._check()
        return await self.inner.get_run(run_id)

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        self._check()
        return await self.inner.get_history(run_id)

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        self._check()
        return await self.inner.count_runs(statuses)

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
        return await self.inner.list_runs(
            statuses=statuses,
            workflow=workflow,
            since=since,
            newest_first=newest_first,
            limit=limit,
            metadata=metadata,
            tag=tag,
        )

    async def purge_runs(
        self,
        *,
        before: float,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int | None = 200,
        dry_run: bool = False,
    ) -> list[str]:
        if dry_run:  # a read
            self._check()
            return await self.inner.purge_runs(
                before=before, statuses=statuses, workflow=workflow, limit=limit, dry_run=True
            )
        number = self._before()
        done = await self.inner.purge_runs(before=before, statuses=statuses, workflow=workflow, limit=limit)
        self._after(number)
        return done

    # Worker and lease operations pass through: they are not the writes counted here.

    async def register_worker(
        self,
        worker_id: str | None = None,
        *,
        lease_seconds: float = 10.0,
        exclusive: bool = False,
        listens: Mapping[str, Collection[str]] | None = None,
    ) -> WorkerInfo:
        self._check()
        return await self.inner.register_worker(
            worker_id, lease_seconds=lease_seconds, exclusive=exclusive, listens=listens
        )

    async def renew_worker(self) -> list[str]:
        self._check()
        return await self.inner.renew_worker()

    async def claim_runs(
        self, limit: int, statuses: Collection[RunStatus] = CLAIMABLE, *, workflows: Collection[str] | None = None
    ) -> list[Lease]:
        self._check()
        return await self.inner.claim_runs(limit, statuses, workflows=workflows)

    async def unclaimed_workflows(self, statuses: Collection[RunStatus], registered: Collection[str]) -> list[str]:
        self._check()
        return await self.inner.unclaimed_workflows(statuses, registered)

    async def claim_run(self, run_id: str) -> Lease | None:
        self._check()
        return await self.inner.claim_run(run_id)

    async def release_runs(self, run_ids: Collection[str]) -> None:
        self._check()
        await self.inner.release_runs(run_ids)

    async def list_workers(self) -> list[WorkerInfo]:
        self._check()
        return await self.inner.list_workers()

    async def run_owners(self, run_ids: Collection[str]) -> dict[str, str | None]:
        self._check()
        return await self.inner.run_owners(run_ids)

    async def subscribe(self, listener: Listener) -> Subscription:
        self._check()
        return await self.inner.subscribe(listener)


class _FaultySchedules:
    """The schedule table of a `FaultInjectingStore`: its writes are counted with the store's."""

    def __init__(self, store: FaultInjectingStore, inner: ScheduleStore) -> None:
        self._store = store
        self._inner = inner

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        self._store._check()
        return await self._inner.get(schedule_id)

    async def all(self) -> list[ScheduleRecord]:
        self._store._check()
        return await self._inner.all()

    async def due(self, until: float, workflows: Collection[str], limit: int = 1000) -> list[ScheduleRecord]:
        self._store._check()
        return await self._inner.due(until, workflows, limit)

    async def next_due(self, workflows: Collection[str]) -> float | None:
        self._store._check()
        return await self._inner.next_due(workflows)

    async def put(self, writes: Sequence[ScheduleWrite]) -> list[bool]:
        number = self._store._before()
        done = await self._inner.put(writes)
        self._store._after(number)
        return done

    async def delete(self, schedule_id: str, expected: int) -> bool:
        number = self._store._before()
        done: bool = await self._inner.delete(schedule_id, expected)
        self._store._after(number)
        return done
