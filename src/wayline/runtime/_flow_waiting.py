"""``Concurrency(count_waiting=False)``: a waiting run gives its slot back, and queues for one
again when its wait ends.

A run of such a workflow gives its slot back once a checkpoint with status WAITING is durable
(everything it waits for is in the store: a sleep's due time, a signal, callback, event or
child wait). When a message wakes it (a timer, a signal, a callback, a child's end), its
actor decides the message but performs nothing before it holds a slot again: it is put back
in its key's queue, behind the runs queued there (priority, then arrival order), and goes on
once an admission moves it to a slot (this worker's, on a run's end or give-back, or any
worker's on a shared database; a waiter polls as the fallback).

Nothing here runs for a workflow without it: the actor asks `SlotGate.for_run` once when it
loads, and a run without a gate costs one ``is None`` test per message.

Under ``open_runtime(max_runs=N)`` (`_max_runs`) such a run gives its runtime slot back with
its key's, and takes both again in the order a start takes them (key first), so that a woken
run never holds the runtime slot while it waits for a key slot held by a run that waits for
the runtime slot.

A cancel stops a wait for a slot: the run goes on without one, its next inline step is not
run, and the cancel ends it (steps of a ``gather`` it resumes into do run).

Durability: the slot rows are in the store. At recovery, a slot held by a WAITING run of such
a workflow is given back (the run was waiting, or had been woken and admitted but had not yet
made its next checkpoint: it wakes again from its snapshot and queues again); a RUNNING one
keeps its slot, as any run that was executing does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..persistence import FlowStore, QueuedRun, RunRecord, RunStatus, Store
from ._flow_spec import FlowSpec
from ._max_runs import CAPPED_KEY, MaxRuns, entry_id, real_id

log = logging.getLogger("wayline.flow")

#: Metadata keys of a run under flow control (the same as `_flow`'s; repeated rather than
#: imported so that this module stays below `_flow`).
GROUP_KEY = "wayline.flow_group"
KEY_KEY = "wayline.flow_key"
PRIORITY_KEY = "wayline.priority"

#: How long (real seconds) a run waiting for its slot waits for this worker's admission before
#: it asks the store again: another worker's admission of it (a shared database) is seen then.
POLL_SECONDS = 0.5


def gives_back(spec: FlowSpec | None) -> bool:
    """Whether runs under ``spec`` give their slot back while they wait."""
    return spec is not None and spec.concurrency is not None and not spec.concurrency.count_waiting


class SlotGate:
    """The slot of one run of a ``count_waiting=False`` workflow: given back, taken again.

    Built by `WaitingSlots.for_run`; the run's actor calls `give_back` after a WAITING
    checkpoint and `take_again` before it goes on from a wake.
    """

    __slots__ = ("_entries", "_slots", "held", "skip_step", "stale")

    def __init__(self, slots: WaitingSlots, entries: tuple[QueuedRun, ...]) -> None:
        self._slots = slots
        # Its key's slot, then (under ``max_runs``) its runtime slot: taken in that order, as
        # at a run's start, so that two runs never each hold the slot the other waits for.
        self._entries = entries
        #: Whether the run holds its slots now.
        self.held = True
        #: A slot row this incarnation did not take (a crash before its give-back, or an
        #: admission its last incarnation did not use): given back before it queues again.
        self.stale = False
        #: Stopped by a cancel without a slot: the next inline step is not run.
        self.skip_step = False

    def loaded(self, waiting: bool) -> None:
        """A new incarnation of the run: a WAITING one gave its slot back (or recovery did),
        and a slot row it still has is not its own; a running one holds its slot."""
        self.held = not waiting
        self.stale = waiting

    async def released(self) -> None:
        """The run's WAITING checkpoint is durable: its slots go back, if it holds them."""
        if self.held:
            self.held = False
            await self.give_back()

    async def woken(self) -> None:
        """The run was woken without its slot: it holds one again once this returns, or it
        was stopped by a cancel (then its next step is skipped, and the cancel ends it)."""
        if self.stale:
            self.stale = False
            await self.give_back()
        self.held = await self.take_again()
        self.stale = self.skip_step = not self.held

    async def give_back(self) -> None:
        """Give the slots back (the run's WAITING checkpoint is durable) and admit the next runs."""
        for entry in reversed(self._entries):
            await self._slots.give_back(entry)

    async def take_again(self) -> bool:
        """Queue for a slot behind the runs queued for the key (then for a runtime slot, under
        ``max_runs``), and return once holding them (True), or once `stop_waiting` stopped the
        wait (False)."""
        for entry in self._entries:
            if not await self._slots.take_again(entry):
                return False
        return True

    def stop_waiting(self) -> None:
        """Stop a `take_again` in progress (the run is cancelled: it goes on without a slot)."""
        for entry in self._entries:
            self._slots.stop_waiting(entry.run_id)


class WaitingSlots:
    """The give-back and take-again of slots for one runtime (held by `Flow`).

    Args:
        table: the store's flow table.
        admit: `Flow.admit` (starts queued runs, wakes the runs here waiting for a slot).
        specs: workflow name -> its `FlowSpec` (or None).
    """

    def __init__(
        self,
        table: FlowStore,
        admit: Callable[[str, str], Awaitable[list[str]]],
        specs: Callable[[str], Any],
    ) -> None:
        self._table = table
        self._admit = admit
        self._specs = specs
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._stopped: set[str] = set()
        #: The runtime's ``max_runs`` (set by `Flow`): a waiting run gives its runtime slot back too.
        self.cap: MaxRuns | None = None

    def for_run(self, record: RunRecord) -> SlotGate | None:
        """The gate of a run whose workflow gives slots back while waiting; None otherwise."""
        spec = self._specs(record.workflow)
        meta = record.metadata
        if not gives_back(spec) or GROUP_KEY not in meta:
            return None
        entry = QueuedRun(
            run_id=record.run_id,
            group=meta[GROUP_KEY],
            key=meta[KEY_KEY],
            priority=meta.get(PRIORITY_KEY, 0),
            limit=spec.concurrency.limit,
        )
        if self.cap is not None and CAPPED_KEY in meta:
            return SlotGate(self, (entry, self.cap.entry(record)))
        return SlotGate(self, (entry,))

    def admitted(self, run_id: str) -> bool:
        """An admission moved ``run_id`` to a slot: whether a run here was waiting for it (it
        goes on; it is not started)."""
        fut = self._waiters.pop(run_id, None)
        if fut is None:
            return False
        if not fut.done():
            fut.set_result(None)
        return True

    def waiting(self, run_id: str) -> bool:
        """Whether ``run_id`` waits here for its slot."""
        return run_id in self._waiters

    def stop_waiting(self, run_id: str) -> None:
        fut = self._waiters.get(run_id)
        if fut is not None:
            self._stopped.add(run_id)
            if not fut.done():
                fut.set_result(None)

    async def give_back(self, entry: QueuedRun) -> None:
        freed = await self._table.release(entry.run_id)
        if freed is not None:
            await self._admit(*freed)

    async def take_again(self, entry: QueuedRun) -> bool:
        run_id = entry.run_id
        loop = asyncio.get_running_loop()
        try:
            while True:
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters[run_id] = fut
                await self._table.enqueue(entry)  # nothing if it is queued, or holds a slot
                await self._admit(entry.group, entry.key)
                if await self._holds(entry):
                    return True
                if not fut.done():
                    await asyncio.wait((fut,), timeout=POLL_SECONDS)
                if run_id in self._stopped:  # cancelled: it goes on, out of the queue
                    await self._table.withdraw(run_id)
                    return await self._holds(entry)
        finally:
            self._waiters.pop(run_id, None)
            self._stopped.discard(run_id)

    async def _holds(self, entry: QueuedRun) -> bool:
        return entry.run_id in await self._table.holders(entry.group, entry.key)

    async def reconcile(self, store: Store, holds: Callable[[str], bool]) -> None:
        """At recovery: give back the slots held by WAITING runs that give them back while
        waiting, unless ``holds`` says a run in memory here has taken it again. On a shared
        database only the runs no live worker holds (or this one) are looked at."""
        owners: dict[str, str | None] | None = None
        slots = await self._table.slots()
        waiting = []
        for slot in slots:
            run_id = real_id(slot.run_id)  # a runtime slot (``max_runs``) is given back too
            if holds(run_id):
                continue
            rec = await store.get_run(run_id)
            if rec is not None and rec.status is RunStatus.WAITING and gives_back(self._specs(rec.workflow)):
                waiting.append(slot.run_id)
        if not waiting:
            return
        run_owners = getattr(store, "run_owners", None)
        me = getattr(store, "worker_id", None)
        if run_owners is not None and me is not None:
            owners = await run_owners([real_id(w) for w in waiting])
        for run_id in waiting:
            if owners is not None and owners.get(real_id(run_id)) not in (None, me):
                continue  # a live worker runs it: it gives its slot back itself
            freed = await self._table.release(run_id)
            if freed is not None:
                await self._admit(*freed)

    async def why(self, run_id: str) -> str | None:
        """Why a woken WAITING run does not go on (it is queued for its slot), for describe."""
        pos = await self._table.position(run_id)
        if pos is None:
            pos = await self._table.position(entry_id(run_id))
            if pos is None:
                return None
            return (
                f"a runtime slot: woken, queued for its runtime slot again (count_waiting=False); "
                f"max_runs={pos.entry.limit} reached ({pos.running} running, {pos.ahead} queued ahead)"
            )
        e = pos.entry
        key = f" for key {e.key!r}" if e.key else ""
        return (
            f"a slot: woken, queued for its slot again (count_waiting=False); concurrency limit {e.limit}{key} "
            f"reached ({pos.running} running, {pos.ahead} queued ahead, priority {e.priority})"
        )
