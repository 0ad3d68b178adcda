"""`Pacing`: the runs a `Debounce` or a `Throttle` holds back, and when they go on.

A run under flow control passes up to three stages, each durable in the store, in this
order: its debounce (``store.pacing`` holds it until its key has been quiet for the
period, taking in the input of later starts), its throttle (a queue per key that lets runs
go at the key's pace) and its concurrency limit (`Flow`: a slot per running run). A run
that leaves the last stage it has is rewritten RUNNING and started.

Nothing here polls: a timer on the runtime's clock is set at the earliest moment a
debounce is due or a throttle allows its next start; each beat of the inbox poller looks
too (the runs a client queued, a due time another worker set). Recovery reconciles the
QUEUED runs with the stages: a run found in none of them (a crash between two stages)
goes back to its throttle, or on to its slot or its start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import msgspec

from .._errors import LeaseLostError, StoreError
from ..actors import Clock
from ..persistence import DebouncePush, PacingStore, RunRecord, RunStarted, RunStatus, Store, Throttled, pace
from ._flow import GROUP_KEY, PRIORITY_KEY, THROTTLE_KEY
from ._flow_spec import FlowSpec
from ._passivation import WakeTimer

log = logging.getLogger("wayline.flow")

#: Metadata key of a run under a debounce: its key (a throttle's is `THROTTLE_KEY`).
DEBOUNCE_KEY = "wayline.debounce_key"


def held_back(spec: FlowSpec | None) -> bool:
    """Whether runs under ``spec`` are created QUEUED (some stage may hold them back)."""
    return spec is not None and (spec.concurrency is not None or spec.throttle is not None or spec.debounce is not None)


class Pacing:
    """Debounces and throttles for the runs of one runtime.

    Args:
        store: the store (``store.pacing`` holds the stages).
        clock: the runtime's clock (its timers wake the stages).
        owner: a client (worker=False) queues runs but leaves the stages to the workers.
        specs: workflow name -> its `FlowSpec` (or None).
        start: starts a run that passed every stage (`Runs.start_admitted`).
        enqueue: hands a run that passed its throttle to its concurrency limit (`Flow.enqueue`).
        commit: writes a QUEUED run's new record (a later input of its debounce).
        background: runs a coroutine as a task the runtime owns.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        owner: bool,
        specs: Callable[[str], FlowSpec | None],
        start: Callable[[str], Awaitable[None]],
        enqueue: Callable[[RunRecord, FlowSpec], Awaitable[None]],
        commit: Callable[[RunRecord, RunRecord], Awaitable[None]],
        background: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        table: PacingStore | None = getattr(store, "pacing", None)
        self._table = table
        self._store = store
        self._clock = clock
        self._owner = owner
        self._specs = specs
        self._start = start
        self._enqueue = enqueue
        self._commit = commit
        self._background = background
        self._timer = WakeTimer(clock)
        # Runs this process is handing to their next stage: the reconciliation at open (the
        # first beat) must not hand them on a second time meanwhile.
        self._passing: set[str] = set()
        # Debounced runs taking a later start's input here: their start waits for it, so the
        # rewrite of a QUEUED run's input never lands on the run once it is RUNNING.
        self._joins: dict[str, asyncio.Lock] = {}

    # --- labels and the first stage ----------------------------------------------------------

    def labels(self, spec: FlowSpec, subject: Any, run_id: str) -> dict[str, Any]:
        """The metadata a run under ``spec`` is created with (raises `FlowSpecError`)."""
        out: dict[str, Any] = {}
        if spec.throttle is not None:
            out[THROTTLE_KEY] = spec.key_of(spec.throttle.key, subject, run_id, "Throttle key")
            out[PRIORITY_KEY] = spec.priority_of(subject, run_id)
        if spec.debounce is not None:
            out[DEBOUNCE_KEY] = spec.key_of(spec.debounce.key, subject, run_id, "Debounce key")
        return out

    async def debounce(self, spec: FlowSpec, subject: Any, run_id: str) -> DebouncePush:
        """A start under the workflow's debounce (see `DebouncePush`); a run of the key that
        was due and not yet started goes on."""
        assert self._table is not None and spec.debounce is not None
        d = spec.debounce
        key = spec.key_of(d.key, subject, run_id, "Debounce key")
        pushed = await self._table.debounce(spec.workflow, key, run_id, self._clock.time(), d.period, d.max_wait)
        if pushed.due is not None and self._owner:
            await self.passed_debounce(pushed.due)
        if self._owner:
            self._schedule(pushed.due_at)
        return pushed

    async def join(
        self, spec: FlowSpec, subject: Any, run_id: str, input: Any, metadata: dict[str, Any]
    ) -> tuple[str | None, bool]:
        """A start under the workflow's debounce: (the pending run that took its input, or
        None if the caller creates run ``run_id``; whether the debounce holds that run)."""
        for _ in range(2):
            pushed = await self.debounce(spec, subject, run_id)
            if pushed.created:
                return None, True
            if await self.take_input(pushed.run_id, input, metadata):
                return pushed.run_id, False
            # The pending run started (or ended) between the push and now: its debounce is
            # over, so pushing again opens a new one for this start.
        return None, False  # still refused: a run of its own, past its debounce

    async def take_input(self, run_id: str, input: Any, metadata: dict[str, Any]) -> bool:
        """A later start of a debounce: its input (and labels) replace the pending run's,
        durably. False if the run is no longer QUEUED (it started meanwhile)."""
        async with self._joins.setdefault(run_id, asyncio.Lock()):
            rec = await self._store.get_run(run_id)
            if rec is None or rec.status is not RunStatus.QUEUED:
                return False
            tail = tuple(
                msgspec.structs.replace(e, input=input, metadata=metadata) if isinstance(e, RunStarted) else e
                for e in rec.tail
            )
            new = msgspec.structs.replace(rec, input=input, metadata=metadata, tail=tail, updated_at=self._clock.time())
            try:
                await self._commit(rec, new)
            except LeaseLostError:
                return False  # a worker claimed it to start it: it started with the input before
        assert self._table is not None
        if self._owner and await self._table.debounced(run_id) is None:
            # Due and taken while this input went in: whoever took it may have found the run
            # held for the rewrite (another worker's claim failed), so it goes on from here too.
            await self.passed_debounce(run_id)
        return True

    async def queued(self, record: RunRecord, spec: FlowSpec, *, debouncing: bool) -> None:
        """A QUEUED run was just created: it waits for its debounce (``debouncing``), or
        enters its throttle, or goes on to its slot or its start."""
        if debouncing:
            return  # its debounce holds it; `debounce` set the timer
        await self._after_debounce(record, spec)

    async def passed_debounce(self, run_id: str) -> None:
        """A run's debounce is over: its throttle, its slot or its start next."""
        # Under the run's join lock: a later start's input going in is the one it starts with,
        # and one coming after finds it started (or still queued for its throttle or slot).
        async with self._joins.setdefault(run_id, asyncio.Lock()):
            rec = await self._store.get_run(run_id)
            spec = None if rec is None else self._specs(rec.workflow)
            if rec is not None and rec.status is RunStatus.QUEUED and spec is not None:
                await self._after_debounce(rec, spec)
        self._joins.pop(run_id, None)

    async def _after_debounce(self, rec: RunRecord, spec: FlowSpec) -> None:
        assert self._table is not None
        if spec.throttle is None:
            await self._passed(rec, spec)
            return
        key = str(rec.metadata.get(THROTTLE_KEY, ""))
        priority = int(rec.metadata.get(PRIORITY_KEY, 0))
        t = spec.throttle
        entry = Throttled(
            run_id=rec.run_id,
            group=spec.workflow,
            key=key,
            priority=priority,
            limit=t.limit,
            period=float(t.period),
            burst=t.burst,
        )
        await self._table.throttle_enqueue(entry)
        if self._owner:
            await self.admit(spec.workflow, key)

    async def _passed(self, rec: RunRecord, spec: FlowSpec) -> None:
        """Past the debounce and the throttle: the concurrency limit, or the start; then the
        throttle forgets the run."""
        if rec.run_id in self._passing:
            return
        self._passing.add(rec.run_id)
        try:
            if spec.concurrency is not None and GROUP_KEY in rec.metadata:
                await self._enqueue(rec, spec)
            elif self._owner:
                await self._start(rec.run_id)
            else:
                # A client starts nothing (it only gets here for a debounce-only run whose burst
                # it could not join): a worker's reconciliation at its next open starts it.
                return
            if spec.throttle is not None and self._table is not None:
                await self._table.throttle_done(rec.run_id)
        finally:
            self._passing.discard(rec.run_id)

    async def admit(self, group: str, key: str) -> list[str]:
        """Let the runs the throttle of ``group``/``key`` allows now go on; their ids."""
        assert self._table is not None
        spec = self._specs(group)
        if spec is None or spec.throttle is None:
            return []  # its workflow is not registered here: a runtime that has it paces it
        t = spec.throttle
        admitted, following = await self._table.throttle_admit(
            group, key, t.limit, t.period, t.burst, self._clock.time()
        )
        for run_id in admitted:
            await self._go_on(run_id, spec)
        if following is not None:
            self._schedule(following)
        return admitted

    async def _go_on(self, run_id: str, spec: FlowSpec | None) -> None:
        """A run its throttle let go: on to its next stage (forgotten if it is not QUEUED)."""
        assert self._table is not None
        rec = await self._store.get_run(run_id)
        if spec is None and rec is not None:
            spec = self._specs(rec.workflow)
        if rec is not None and rec.status is RunStatus.QUEUED and spec is not None:
            await self._passed(rec, spec)
        elif rec is None or rec.status is not RunStatus.QUEUED:
            await self._table.throttle_done(run_id)

    # --- the timer, the beat and recovery ----------------------------------------------------

    def _schedule(self, when: float) -> None:
        self._timer.schedule(when, self._fired)

    def _fired(self) -> None:
        self._timer.fired()
        self._background(self.poll_once())

    async def poll_once(self, *, full: bool = False) -> None:
        """Start the debounced runs that are due and offer every throttle its allowed starts,
        then set the timer for the next; ``full`` first reconciles QUEUED runs with the stages."""
        table = self._table
        if table is None or not self._owner:
            return
        try:
            if full:
                await self._reconcile(table)
            for run_id in await table.take_due(self._clock.time()):
                await self.passed_debounce(run_id)
            for group, key in await table.throttle_queues():
                await self.admit(group, key)
            following = await table.next_due()
            if following is not None:
                self._schedule(following)
        except StoreError as exc:
            log.warning("throttles and debounces could not be looked at (%s); trying again later", exc)

    async def _reconcile(self, table: PacingStore) -> None:
        for run_id in await table.throttle_passed():
            await self._go_on(run_id, None)  # let go, then a crash before its next stage took it
        held = await table.held()
        for rec in await self._store.list_runs(statuses=[RunStatus.QUEUED]):
            spec = self._specs(rec.workflow)
            if rec.run_id in held or rec.run_id in self._passing or spec is None:
                continue
            if THROTTLE_KEY in rec.metadata and spec.throttle is not None:
                if spec.concurrency is not None and await self._in_flow(rec.run_id):
                    continue
                # Between stages at the crash: back to its throttle, which may cost the key one
                # more start of its pace, but never lets one start beyond it.
                await self._after_debounce(rec, spec)
            elif DEBOUNCE_KEY in rec.metadata and spec.concurrency is None:
                await self._passed(rec, spec)  # its debounce was over; `Flow` reconciles the others

    async def _in_flow(self, run_id: str) -> bool:
        flow = getattr(self._store, "flow", None)
        if flow is None:
            return False
        if await flow.position(run_id) is not None:
            return True
        return any(s.run_id == run_id for s in await flow.slots())

    async def held(self) -> set[str]:
        """The runs a debounce or a throttle holds (`Flow` leaves them to this)."""
        return set() if self._table is None else await self._table.held()

    async def withdraw(self, run_id: str) -> bool:
        """Take a QUEUED run (being cancelled) out of its debounce or throttle."""
        self._joins.pop(run_id, None)
        return self._table is not None and await self._table.withdraw(run_id)

    async def why(self, run_id: str) -> str | None:
        """Why a QUEUED run waits, if a debounce or throttle holds it (for ``describe``)."""
        if self._table is None:
            return None
        debounced = await self._table.debounced(run_id)
        if debounced is not None:
            key = f" for key {debounced.key!r}" if debounced.key else ""
            starts = f"{debounced.count} start{'' if debounced.count == 1 else 's'}"
            return (
                f"debounced until {_when(debounced.due_at)}{key} ({starts} so far; it starts with the last one's input)"
            )
        pos = await self._table.throttle_position(run_id)
        if pos is None:
            return None
        t = pos.entry  # the pace it was queued under (a client need not register the workflow)
        now = self._clock.time()
        allowed, at = pace(pos.tat, now, t.limit, t.period, t.burst)
        burst = f" (+{t.burst} at once)" if t.burst else ""
        key = f" for key {pos.entry.key!r}" if pos.entry.key else ""
        return (
            f"throttled: {t.limit} starts per {t.period:g} s{burst}{key}; next start at "
            f"{_when(now if allowed else at)} ({pos.ahead} queued ahead, priority {pos.entry.priority})"
        )

    def close(self) -> None:
        self._timer.cancel()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
