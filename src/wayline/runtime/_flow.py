"""`Flow`: the runs a concurrency limit holds back, and when they start.

A run of a workflow with ``concurrency=`` is created QUEUED, put in its key's queue in the
store, and admitted at once if a slot is free (`FlowStore.admit`: the count of slots and the
move to a slot are one transaction). An admitted run is rewritten RUNNING (a ``RunDequeued``
history event says when and for which key) and started. A run gives its slot back when it
ends, and the head of its queue is admitted then.

Recovery (at open: `Runtime._open`): a slot whose run ended is given back; a slot whose run
is still QUEUED (admitted, then a crash before its rewrite) starts it; a QUEUED run missing
from the queue (a crash between its creation and its enqueue) is queued again; and every
queue is offered its free slots. Runs that were executing hold their slots across a restart,
so the limit holds then too.

Each beat of the inbox poller offers every queue its free slots, and starts again the runs
that hold a slot but are still QUEUED (`FlowStore.stalled`, one query) once two beats in a
row have seen them so: a start that failed (the store failed, or another worker held the run
for a moment and refused the claim) or a worker killed between an admission and its start
would otherwise keep that slot until some runtime opens the database again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import RateLimitedError, StoreError
from ..persistence import FlowStore, QueuedRun, RunRecord, RunStatus, Store
from ._flow_spec import FlowSpec
from ._flow_waiting import WaitingSlots
from ._max_runs import MaxRuns, needs_slot, real_id, why_queued

log = logging.getLogger("wayline.flow")

#: Metadata keys of a run under flow control: its group and key (``wayline.`` keys are the
#: runtime's own; describe shows them).
GROUP_KEY = "wayline.flow_group"
KEY_KEY = "wayline.flow_key"
PRIORITY_KEY = "wayline.priority"
#: A run under a `Throttle`: the key it counts against (set and read by `Pacing`).
THROTTLE_KEY = "wayline.throttle_key"


class Flow:
    """Flow control for the runs of one runtime.

    Args:
        store: the store (its ``flow`` table holds the queues and slots).
        start: starts an admitted run (rewrites it RUNNING if it is QUEUED, and spawns it);
            given by `Runs`.
        owner: a client (worker=False) queues runs but leaves admission to the owner.
    """

    def __init__(
        self,
        store: Store,
        start: Callable[[str], Awaitable[None]],
        *,
        owner: bool,
        specs: Callable[[str], Any],
        clock: Callable[[], float] = lambda: 0.0,
        end_queued: Callable[[str, str], Awaitable[None]] | None = None,
        cancel: Callable[[str, str], Awaitable[None]] | None = None,
        max_runs: int | None = None,
    ) -> None:
        table: FlowStore | None = getattr(store, "flow", None)
        self._table = table
        self._store = store
        self._start = start
        self._owner = owner
        self._specs = specs  # workflow name -> its FlowSpec (or None)
        self._clock = clock
        self._end_queued = end_queued  # ends a QUEUED run CANCELLED, with a reason (Singleton "skip")
        self._cancel = cancel  # cancels a run (Singleton "cancel")
        # Runs being started here: an admission's start and the beat's retry of a stalled
        # run must not both rewrite one run.
        self._starting: set[str] = set()
        self._stalled: set[str] = set()  # the runs the last beat saw admitted and QUEUED
        #: The runs a debounce or throttle holds (`Pacing`): not yet for a slot.
        self.held: Callable[[], Awaitable[set[str]]] | None = None
        #: Slots given back while waiting and taken again (``Concurrency(count_waiting=False)``).
        self.waiting = WaitingSlots(table, self.admit, specs) if table is not None else None
        #: ``open_runtime(max_runs=N)`` on a store with one owner (`_max_runs`); else None.
        self.cap = MaxRuns(table, max_runs, self.admit) if table is not None and max_runs is not None else None
        if self.waiting is not None:
            self.waiting.cap = self.cap
        #: Whether a run in memory here holds its slot again (set by `Runs`): kept at recovery.
        self.holds_live: Callable[[str], bool] = lambda run_id: False

    @property
    def enabled(self) -> bool:
        return self._table is not None

    def labels(self, spec: FlowSpec, subject: Any, run_id: str) -> dict[str, Any]:
        """The metadata a run under ``spec`` is created with (raises `FlowSpecError`)."""
        group, key, priority, _ = spec.labels(subject, run_id)
        return {GROUP_KEY: group, KEY_KEY: key, PRIORITY_KEY: priority}

    async def take_rate(self, spec: FlowSpec, subject: Any, run_id: str) -> None:
        """Count a start against the workflow's `RateLimit`.

        Raises:
            RateLimitedError: the limit is reached for the run's key (nothing was stored).
        """
        assert self._table is not None and spec.rate_limit is not None
        limit = spec.rate_limit
        key = spec.key_of(limit.key, subject, run_id, "RateLimit key")
        wait = await self._table.take_rate(spec.workflow, key, limit.limit, limit.period, self._clock(), run_id)
        if wait is not None:
            raise RateLimitedError(spec.workflow, key, wait, run_id)

    async def enqueue(self, record: RunRecord, spec: FlowSpec) -> None:
        """Queue a QUEUED run just created, then admit its key's queue."""
        assert self._table is not None
        entry = _entry(record, spec)
        await self._table.enqueue(entry)
        if not self._owner:
            return
        admitted = await self.admit(entry.group, entry.key)
        if spec.singleton is not None and record.run_id not in admitted:
            await self._single(record.run_id, entry, spec.singleton.mode)

    async def _single(self, run_id: str, entry: QueuedRun, mode: str) -> None:
        """A singleton's key is held: skip the new run, or cancel the holder for it."""
        assert self._table is not None
        holders = [h for h in await self._table.holders(entry.group, entry.key) if h != run_id]
        held = f"singleton key {entry.key!r} is held by run {holders[0]!r}" if holders else "its singleton key is held"
        if mode == "skip":
            if await self.dequeue(run_id) and self._end_queued is not None:
                await self._end_queued(run_id, f"skipped: {held}")
            return
        for holder in holders:
            if self._cancel is not None:
                await self._cancel(holder, f"replaced by run {run_id!r} (singleton key {entry.key!r})")

    async def admit(self, group: str, key: str) -> list[str]:
        """Start the runs the free slots of ``group``/``key`` admit; their ids."""
        assert self._table is not None
        admitted = await self._table.admit(group, key)
        waiting = self.waiting
        for run_id in admitted:
            if waiting is None or not waiting.admitted(run_id):  # else: a woken run here goes on
                await self.start(run_id)
        return admitted

    async def start(self, run_id: str) -> None:
        """Start a run admitted to a slot, unless it is being started here already. A start
        that fails leaves the run QUEUED in its slot: the beat starts it again (`poll_once`)."""
        if run_id in self._starting:
            return
        self._starting.add(run_id)
        try:
            await self._start(run_id)
        except StoreError as exc:
            log.warning(
                "run %s was admitted but could not start yet (%s); the next beats try again",
                run_id,
                exc,
                extra={"run_id": run_id},
            )
        finally:
            self._starting.discard(run_id)

    async def finished_id(self, run_id: str) -> None:
        """A run admitted or queued is gone or ended: give its slot back, admit the next."""
        if self._table is not None:
            freed = await self._table.release(run_id)
            if freed is not None and self._owner:
                await self.admit(*freed)

    async def finished(self, record: RunRecord) -> None:
        """A run ended: give its slot back (or take it out of its queue) and admit the next."""
        if self._table is None or GROUP_KEY not in record.metadata:
            return
        try:
            freed = await self._table.release(record.run_id)
            if freed is not None and self._owner:
                await self.admit(*freed)
        except StoreError as exc:  # the beat (`poll_once`) gives it back later
            log.warning("the slot of run %s could not be given back yet (%s)", record.run_id, exc)

    async def recover(self) -> None:
        """Reconcile the slots and queues with the runs, then offer every queue its free
        slots (at open, after the runs are recovered)."""
        await self.poll_once(full=True)

    async def poll_once(self, *, full: bool = False) -> None:
        """Offer every queue its free slots (each beat of the inbox poller: runs a client
        queued); ``full`` first reconciles the slots and queues with the runs."""
        table = self._table
        if table is None or not self._owner:
            return
        try:
            if full:
                await self._reconcile(table)
            else:
                await self._restart_stalled(table)
            for group, key in await table.queues():
                await self.admit(group, key)
        except StoreError as exc:
            log.warning("flow control could not look at its queues (%s); trying again later", exc)

    async def _restart_stalled(self, table: FlowStore) -> None:
        """Start the runs this beat and the one before found QUEUED in a slot. A run seen
        once may be an admission whose start is under way (here or on another worker)."""
        stalled = set(await table.stalled())
        again, self._stalled = stalled & self._stalled, stalled
        for run_id in sorted(again - self._starting):
            await self.start(run_id)

    async def _reconcile(self, table: FlowStore) -> None:
        if self.waiting is not None:
            await self.waiting.reconcile(self._store, self.holds_live)
        for slot in await table.slots():
            rec = await self._store.get_run(real_id(slot.run_id))  # a runtime slot's too
            if rec is None or rec.status.finished:
                await table.release(slot.run_id)
            elif rec.status is RunStatus.QUEUED:
                await self.start(slot.run_id)  # admitted, then a crash before it started
        held = set() if self.held is None else await self.held()
        for rec in await self._store.list_runs(statuses=[RunStatus.QUEUED]):
            if rec.run_id in held or THROTTLE_KEY in rec.metadata:
                continue  # a debounce or throttle holds it, or `Pacing` finds its stage
            spec = self._specs(rec.workflow)
            if spec is not None and spec.concurrency is not None and GROUP_KEY in rec.metadata:
                await table.enqueue(_entry(rec, spec))  # a no-op for a run queued or in a slot
            elif needs_slot(rec):
                await self._recover_capped(rec)

    async def _recover_capped(self, rec: RunRecord) -> None:
        """A QUEUED run created under ``max_runs``: queued again for a runtime slot (a no-op
        if it is queued or holds one); started, if this runtime has no ``max_runs`` now."""
        if self.cap is not None:
            await self.cap.request(rec)
        else:
            await self._start(rec.run_id)

    async def dequeue(self, run_id: str) -> bool:
        """Take a QUEUED run out of its queue (it is cancelled before it started); whether
        it was there. A run admitted meanwhile keeps its slot: another admission (the
        poller's reconciliation, another worker's) may have taken it there between this
        worker's enqueue and its own admission, and it starts."""
        return self._table is not None and await self._table.withdraw(run_id)

    async def why_capped(self, run_id: str) -> str | None:
        """Why a QUEUED run waits for a runtime slot (``max_runs``), for ``describe``."""
        return None if self._table is None else await why_queued(self._table, run_id)

    async def why(self, run_id: str) -> str | None:
        """Why a QUEUED run waits, for ``describe``."""
        if self._table is None:
            return None
        pos = await self._table.position(run_id)
        if pos is None:
            return "a slot: admitted, starting"
        e = pos.entry
        key = f" for key {e.key!r}" if e.key else ""
        return (
            f"a slot: concurrency limit {e.limit}{key} reached ({pos.running} running, {pos.ahead} queued ahead, "
            f"priority {e.priority})"
        )


def _entry(record: RunRecord, spec: FlowSpec) -> QueuedRun:
    assert spec.concurrency is not None
    meta = record.metadata
    return QueuedRun(
        run_id=record.run_id,
        group=meta[GROUP_KEY],
        key=meta[KEY_KEY],
        priority=meta[PRIORITY_KEY],
        limit=spec.concurrency.limit,
    )
