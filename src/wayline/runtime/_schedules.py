"""`Scheduler`: fires a runtime's schedules, durably, once each.

Each schedule's next due time is a column of the store, indexed, like a passivated run's wake
time: one timer per runtime, set at the earliest due time of the schedules of the workflows it
registers, wakes it for the next fire. A pass reads the schedules that are due, decides each
(`_schedule_pass.advance`), stores every new record in one compare-and-swap write, and only
then starts the runs decided (the same start path as ``rt.start``: `Runs.create`), with run ids
made from the schedule id and the fire time. A runtime that loses a compare-and-swap (another
process changed the schedule) reads it again and decides again, so one fire is decided once
across processes, and its run, whatever happens, is started under one id: the store decides.

Only an owning runtime (``open_runtime(worker=True)``) fires schedules; clients (the CLI)
change them, and the owner finds the change by its next look at the store (``poll_interval``),
or at once when the change is made through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Collection
from typing import Any, Protocol

from .._errors import RunAlreadyFinishedError, RunNotFoundError, ScheduleExistsError, StoreError, WaylineError
from ..actors import Clock, TimerHandle
from ..persistence import RunRecord, ScheduleRecord, ScheduleStore, Store
from ._definitions import WorkflowDef
from ._schedule_pass import Pass, advance
from ._schedule_records import declared_record, redeclared
from ._schedule_spec import Schedule, Timetable
from ._versions import PINNED_KEY
from ._workflows import Registry, Workflow

log = logging.getLogger("wayline.schedules")

#: Due schedules read per query during a pass.
BATCH = 1000
#: The slowest a runtime looks for schedule changes other processes made (seconds): the
#: ``wayline schedules`` commands take effect within it.
SCHEDULE_POLL = 1.0
#: Compare-and-swap attempts on one schedule before a pass leaves it to the next one.
ATTEMPTS = 5
#: The run metadata keys a scheduled run carries (as Temporal's scheduled-by search attributes).
SCHEDULE_KEY, SCHEDULED_AT_KEY, FIRE_KEY = "schedule_id", "scheduled_at", "fire"


class Starter(Protocol):
    """How a scheduler starts and stops runs: the runtime's `Runs` (the path ``rt.start``
    takes), or anything that keeps the same promises."""

    @property
    def store(self) -> Store: ...

    def live(self, run_id: str) -> object | None:
        """The run, if it is in memory here (then it has not ended)."""
        ...

    async def create(self, wf: Workflow, input: Any, run_id: str, metadata: dict[str, Any] | None = None) -> object:
        """Create and start run ``run_id``; nothing if it exists."""
        ...

    async def cancel_run(self, run_id: str, reason: str | None) -> None:
        """Cancel run ``run_id`` (through its inbox)."""
        ...


class Scheduler:
    """The schedules of one owning runtime (see the module docstring)."""

    def __init__(self, schedules: ScheduleStore, clock: Clock, registry: Registry, runs: Starter) -> None:
        self.store = schedules
        self._clock = clock
        self._registry = registry
        self._runs = runs
        self._lock = asyncio.Lock()
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wanted: set[str] = set()  # schedules to look at even if not due: a run of theirs ended
        self._awaiting: set[str] = set()  # schedules whose fires wait for a run to end
        # Runs the committed records count as going, and those of them seen ending here: a
        # pass then needs no store read to know (1,000 reads cost a burst of fires ~0.2 s).
        self._going: set[str] = set()
        self._ended_here: set[str] = set()
        self._cancel_again = True  # the first pass repeats the cancels of runs still cancelling
        self._closed = False
        self._fatal: BaseException | None = None
        # Schedules the last pass found due and left (their input unreadable here, their
        # version not registered here): the timer is set past them, not on them (a due time
        # in the past would wake the next pass at once, and the next...).
        self._skipped: set[str] = set()
        self._said: set[tuple[str, str]] = set()  # (schedule id, why it is skipped), as logged

    # --- life ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Make the declared schedules match the code (before runs are recovered: a clash
        between a declared and a created schedule is an error of ``open_runtime``)."""
        stored = await self.reconcile()
        # Runs decided before a crash and maybe never started: their schedules' first pass
        # starts them (idempotently), whenever those are next due.
        self._wanted |= {rec.schedule_id for rec in stored if rec.starting}

    def start(self, poll_interval: float | None) -> None:
        """Fire what is due, then keep watching: in the background, so that opening the
        runtime does not wait for it (recovered runs are already going)."""
        self.poke()
        if poll_interval is not None:
            # Schedules change rarely: a look every second at most (one indexed MIN read)
            # spares the runs a read per inbox poll (every 10 ms in some workers).
            self._spawn(self._poll(max(poll_interval, SCHEDULE_POLL)))

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def poke(self) -> None:
        """Look at the schedules now (one was changed through this runtime)."""
        if not self._closed:
            self._spawn(self._guarded_pass())

    def run_finished(self, record: RunRecord) -> None:
        """A run ended here: if it was a scheduled one that fires wait for, look again now."""
        schedule_id = record.metadata.get(SCHEDULE_KEY) if record.metadata else None
        if schedule_id is None:
            return
        if record.run_id in self._going:
            self._ended_here.add(record.run_id)
        if schedule_id in self._awaiting and not self._closed:
            self._wanted.add(schedule_id)
            self.poke()

    # --- the timer -----------------------------------------------------------------------------

    def _set_timer(self, when: float | None) -> None:
        if self._closed or when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self._clock.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = self._timer_at = None
        self.poke()

    async def _poll(self, interval: float) -> None:
        """Find schedules changed by other processes (the CLI, other workers): their due time."""
        while True:
            await asyncio.sleep(interval)
            try:
                due = await self._next_due(self._registry.names())
            except StoreError as exc:
                log.warning("could not read the schedules' due times: %s", exc)
                continue
            if due is not None and (self._timer_at is None or due < self._timer_at):
                if due <= self._clock.time():
                    await self._guarded_pass()
                else:
                    self._set_timer(due)

    # --- passes ----------------------------------------------------------------------------------

    async def _guarded_pass(self) -> None:
        try:
            await self.run_pass()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Logged, and the schedules stay due: the next pass (the poll, the next timer) retries.
            log.exception("a pass over the schedules failed; it is retried at the next look")
        except BaseException as exc:  # not an error to retry (the process is going down): kept
            self._fatal = exc  # for `close` to raise, where the runtime's owner sees it

    async def run_pass(self) -> None:
        """Decide every schedule that is due (and those a run end concerns), store the
        decisions, start and cancel the runs decided, and set the timer for the next."""
        async with self._lock:
            names = self._registry.names()
            self._skipped = set()
            while True:
                now = self._clock.time()
                records = await self.store.due(now, names, limit=BATCH)
                wanted, self._wanted = self._wanted, set()
                seen = {r.schedule_id for r in records}
                for schedule_id in wanted - seen:
                    rec = await self.store.get(schedule_id)
                    if rec is not None and rec.workflow in self._registry:
                        records.append(rec)
                if records:
                    await self._decide(records, now)
                if len(records) < BATCH:
                    break
            self._cancel_again = False
            self._set_timer(await self._next_due(names))

    async def _next_due(self, names: Collection[str]) -> float | None:
        """The earliest due time of the schedules of ``names``, but for those the last pass
        skipped (still due, they are looked at again by every pass, and by none sooner)."""
        due = await self.store.next_due(names)
        if due is None or not self._skipped or due > self._clock.time():
            return due
        for rec in await self.store.due(math.inf, names, limit=len(self._skipped) + 1):
            if rec.schedule_id not in self._skipped:
                return rec.due_at
        return None

    async def _decide(self, records: list[ScheduleRecord], now: float) -> None:
        todo = [r for r in records if self._runnable(r)]
        for _ in range(ATTEMPTS):
            if not todo:
                return
            passes = [(rec, advance(rec, now, await self._ended(rec))) for rec in todo]
            changed = [(rec, p) for rec, p in passes if p.changed]
            applied = await self.store.put([(p.record, rec.revision) for rec, p in changed]) if changed else []
            done = [p for (_, p), ok in zip(changed, applied, strict=True) if ok]
            await self._carry_out(done)
            lost = [rec.schedule_id for (rec, _), ok in zip(changed, applied, strict=True) if not ok]
            todo = [r for sid in lost if (r := await self.store.get(sid)) is not None and self._runnable(r)]
        if todo:
            ids = ", ".join(r.schedule_id for r in todo)
            log.warning("schedules %s kept changing during a pass; they are decided at the next one", ids)

    def _runnable(self, rec: ScheduleRecord) -> bool:
        """Whether this runtime can start the schedule's runs (its workflow and version, its
        input readable with this runtime's keys). One it cannot is left as it is, due, for a
        runtime that can, and said once."""
        if rec.workflow not in self._registry:
            return False
        why = None
        if rec.unreadable is not None:
            why = f"its input cannot be decrypted here, so it is not fired here: {rec.unreadable}"
        elif rec.version is not None and rec.version not in self._registry.versions(rec.workflow):
            why = (
                f"it starts version {rec.version!r} of workflow {rec.workflow!r}, which is not registered here; "
                "it waits"
            )
        if why is None:
            return True
        self._skipped.add(rec.schedule_id)
        if (rec.schedule_id, why) not in self._said:
            self._said.add((rec.schedule_id, why))
            log.error("schedule %s: %s", rec.schedule_id, why)
        return False

    async def _ended(self, rec: ScheduleRecord) -> set[str]:
        """Which runs the schedule counts as going have ended (or never existed)."""
        ended = set()
        starting = {f.run_id for f in rec.starting}
        for run_id in (*rec.running, *rec.cancelling):
            if run_id in self._ended_here:
                ended.add(run_id)
                continue
            if self._runs.live(run_id) is not None:
                continue
            found = await self._runs.store.get_run(run_id)
            if (found is None and run_id not in starting) or (found is not None and found.status.finished):
                ended.add(run_id)  # a run still to be started (a crash came first) is not over
        return ended

    async def _carry_out(self, passes: list[Pass]) -> None:
        """Start and cancel what the stored passes decided (after they are stored)."""
        starts = []
        for p in passes:
            rec = p.record
            going = {*rec.running, *rec.cancelling}
            for run_id in p.ended:
                self._going.discard(run_id)
                self._ended_here.discard(run_id)
            self._going |= going
            self._awaiting.discard(rec.schedule_id)
            if rec.buffered or rec.cancelling:
                self._awaiting.add(rec.schedule_id)
            wf = self._registry.lookup(rec.workflow, version=rec.version)
            for fire in p.starts:
                metadata: dict[str, Any] = {
                    SCHEDULE_KEY: rec.schedule_id,
                    SCHEDULED_AT_KEY: fire.at,
                    FIRE_KEY: fire.kind,
                }
                if rec.version is not None:
                    metadata[PINNED_KEY] = True  # its runs keep that version across continue-as-new
                starts.append(self._start(wf, rec, fire.run_id, metadata))
            cancels = p.cancels + (rec.cancelling if self._cancel_again else ())
            for run_id in dict.fromkeys(cancels):
                starts.append(self._cancel(rec.schedule_id, run_id))
        if starts:
            await asyncio.gather(*starts)

    async def _start(self, wf: Any, rec: ScheduleRecord, run_id: str, metadata: dict[str, Any]) -> None:
        try:
            await self._runs.create(wf, rec.input, run_id, metadata)
        except WaylineError as exc:
            log.error("schedule %s could not start run %s: %s", rec.schedule_id, run_id, exc)

    async def _cancel(self, schedule_id: str, run_id: str) -> None:
        with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
            await self._runs.cancel_run(run_id, f"a new run of schedule {schedule_id!r} replaces it")

    # --- declared schedules ----------------------------------------------------------------------

    async def reconcile(self) -> list[ScheduleRecord]:
        """Make the stored declared schedules match ``@workflow(schedules=...)`` of the code:
        create the missing, update the changed (their state kept), delete the ones the code of
        a workflow registered here no longer declares. Returns the schedules as it found them."""
        desired: dict[str, tuple[WorkflowDef[Any, Any], Schedule]] = {}
        for wf in self._registry.newest():
            if isinstance(wf, WorkflowDef):
                for schedule in wf.schedules:
                    desired[schedule.id or wf.name] = (wf, schedule)
        now = self._clock.time()
        for _ in range(ATTEMPTS):
            stored = {r.schedule_id: r for r in await self.store.all()}
            writes: list[tuple[ScheduleRecord, int | None]] = []
            for schedule_id, (wf, schedule) in desired.items():
                rec = stored.get(schedule_id)
                if rec is not None and not rec.declared:
                    raise ScheduleExistsError(schedule_id, declared=False, workflow=wf.name, clash=True)
                new = (
                    declared_record(schedule_id, wf, schedule, now)
                    if rec is None
                    else redeclared(rec, wf, schedule, now)
                )
                if new is not None:
                    writes.append((new, None if rec is None else rec.revision))
            gone = [
                r
                for r in stored.values()
                if r.declared and r.schedule_id not in desired and r.workflow in self._registry
            ]
            applied = await self.store.put(writes) if writes else []
            deleted = [await self.store.delete(r.schedule_id, r.revision) for r in gone]
            for r, ok in zip(gone, deleted, strict=True):
                if ok:
                    log.warning(
                        "schedule %s was declared by workflow %r and no longer is: deleted (runs it started go on)",
                        r.schedule_id,
                        r.workflow,
                    )
            if all(applied) and all(deleted):
                return list(stored.values())
        log.warning("declared schedules kept changing while they were reconciled; the next open retries")
        return list(stored.values())


def due_first(schedule_id: str, rec: ScheduleRecord, now: float) -> float | None:
    """The first due time of a schedule whose fires start after ``now``."""
    if rec.paused:
        return None
    timetable = Timetable(schedule_id, rec.spec)
    at = timetable.next_fire(max(rec.watermark, now))
    return None if at is None else at + timetable.jitter(at)
