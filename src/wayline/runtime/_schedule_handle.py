"""What callers hold of schedules: `ScheduleHandle` (its operations) and `ScheduleInfo`.

Every operation is a compare-and-swap on the stored record, retried if another process changed
it meanwhile, so pausing from the CLI while the owning runtime fires the schedule loses
neither change. An operation made through the owning runtime takes effect at once; one made
through a client (the CLI) at the owner's next look at the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .._errors import ScheduleConflictError, ScheduleExistsError, ScheduleNotFoundError, ScheduleSpecError
from ..actors import Clock
from ..persistence import RunStatus, ScheduleAction, ScheduleRecord, ScheduleStore, Store
from . import _checks as check, _schedule_records as records
from ._schedule_spec import Duration, Instant, Overlap, Timetable, build_spec
from ._schedules import ATTEMPTS, Scheduler
from ._versions import StateMachineAlias
from ._workflows import Registry

#: Upcoming fire times ``describe`` lists.
UPCOMING = 5


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """A run a schedule started, as ``describe`` shows it."""

    run_id: str
    scheduled_at: float  # the fire's nominal time
    status: RunStatus | None  # None: not created yet (it is being started)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as ``describe`` and ``rt.list_schedules`` report it.

    Attributes:
        next_fires: when its next runs start (jitter included), soonest first; empty while
            paused or once it has ended.
        recent: what it did about its last fires (`wayline.persistence.ScheduleAction`),
            newest last: ``started``, ``buffered``, ``skipped``, ``missed``, ``cancelled``.
        last_runs: the runs it started most recently and their status, newest last.
        running: the runs that count for its overlap policy now.
        buffered: nominal times of the fires waiting for a run to end.
        paused, note: whether it is paused, and why (the note given to pause or resume).
        started, skipped, missed: how many fires it started, skipped (overlap policy, full
            buffer) and missed (older than the catch-up window when processed).
        declared: it comes from ``@workflow(schedules=...)`` and follows the code.
        unreadable: None, or why its input cannot be decrypted with this runtime's keys
            (naming the key): ``input`` is then None (it stays in the store as it is), and a
            runtime without that key does not fire it.
    """

    schedule_id: str
    workflow: str
    version: str | None
    input: Any
    cron: str | None
    every: float | None
    tz: str
    jitter: float
    start_at: float | None
    end_at: float | None
    overlap: str
    catchup_window: float
    paused: bool
    note: str | None
    declared: bool
    next_fires: tuple[float, ...]
    recent: tuple[ScheduleAction, ...]
    running: tuple[str, ...]
    buffered: tuple[float, ...]
    started: int
    skipped: int
    missed: int
    created_at: float
    updated_at: float
    last_runs: tuple[ScheduledRun, ...] = dataclasses.field(default=())
    unreadable: str | None = None

    @classmethod
    def from_record(cls, rec: ScheduleRecord, now: float, last_runs: tuple[ScheduledRun, ...] = ()) -> ScheduleInfo:
        spec = rec.spec
        upcoming: list[float] = []
        if not rec.paused:
            # After the last fire processed: a fire due but not processed yet is still to come.
            upcoming = Timetable(rec.schedule_id, spec).upcoming(rec.watermark, UPCOMING)
        return cls(
            schedule_id=rec.schedule_id,
            workflow=rec.workflow,
            version=rec.version,
            input=None if rec.unreadable is not None else rec.input,
            cron=spec.cron,
            every=spec.every,
            tz=spec.tz,
            jitter=spec.jitter,
            start_at=spec.start_at,
            end_at=spec.end_at,
            overlap=rec.overlap,
            catchup_window=rec.catchup_window,
            paused=rec.paused,
            note=rec.note,
            declared=rec.declared,
            next_fires=tuple(upcoming),
            recent=rec.recent,
            running=rec.running,
            buffered=tuple(f.at for f in rec.buffered),
            started=rec.started,
            skipped=rec.skipped,
            missed=rec.missed,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
            last_runs=last_runs,
            unreadable=rec.unreadable,
        )


class Schedules:
    """The schedules of one runtime: its API (`ScheduleHandle` uses it) and, in an owning
    runtime, the `Scheduler` that fires them."""

    def __init__(self, store: Store, clock: Clock, registry: Registry, scheduler: Scheduler | None) -> None:
        self._store = store
        self.clock = clock
        self._registry = registry
        self.scheduler = scheduler

    @property
    def table(self) -> ScheduleStore:
        table = getattr(self._store, "schedules", None)
        if table is None:
            raise TypeError(f"{type(self._store).__name__} keeps no schedules (it has no `schedules` table)")
        return table  # type: ignore[no-any-return]

    def _poke(self) -> None:
        if self.scheduler is not None:
            self.scheduler.poke()

    async def create(
        self,
        schedule_id: str,
        workflow: Any,
        input: Any,
        *,
        cron: str | None,
        every: Duration | None,
        tz: str | None,
        overlap: Overlap,
        catchup_window: Duration,
        jitter: Duration,
        start_at: Instant | None,
        end_at: Instant | None,
        version: str | None,
    ) -> ScheduleHandle:
        target = self._registry.resolve(workflow, version=version)
        if isinstance(target, StateMachineAlias):
            raise ScheduleSpecError(schedule_id, "a schedule starts a workflow (or a version= of it), not an alias")
        name = target.name
        spec = build_spec(schedule_id, cron=cron, every=every, tz=tz, jitter=jitter, start_at=start_at, end_at=end_at)
        rec = records.new_record(
            schedule_id,
            name,
            spec,
            self.clock.time(),
            input=input,
            version=version,
            overlap=overlap,
            catchup_window=catchup_window,
        )
        (applied,) = await self.table.put([(rec, None)])
        if not applied:
            existing = await self.table.get(schedule_id)
            declared = existing is not None and existing.declared
            raise ScheduleExistsError(schedule_id, declared=declared, workflow=existing.workflow if existing else None)
        self._poke()
        return ScheduleHandle(self, schedule_id)

    def versions(self, workflow: str) -> tuple[str, ...]:
        return self._registry.versions(workflow)

    async def get_record(self, schedule_id: str) -> ScheduleRecord:
        rec = await self.table.get(schedule_id)
        if rec is None:
            raise ScheduleNotFoundError(schedule_id)
        return rec

    async def modify(
        self, schedule_id: str, change: Callable[[ScheduleRecord, float], ScheduleRecord]
    ) -> ScheduleRecord:
        """Apply ``change`` to the stored record by compare-and-swap, retried on a conflict."""
        for _ in range(ATTEMPTS * 2):
            rec = await self.get_record(schedule_id)
            now = self.clock.time()
            new = msgspec.structs.replace(change(rec, now), revision=rec.revision + 1, updated_at=now)
            (applied,) = await self.table.put([(new, rec.revision)])
            if applied:
                self._poke()
                return new
        raise ScheduleConflictError(schedule_id, ATTEMPTS * 2)

    async def info(self, rec: ScheduleRecord) -> ScheduleInfo:
        started = [a for a in rec.recent if a.outcome == "started" and a.run_id is not None]
        runs = []
        for action in started[-UPCOMING:]:
            assert action.run_id is not None
            found = await self._store.get_run(action.run_id)
            runs.append(ScheduledRun(action.run_id, action.at, found.status if found is not None else None))
        going = []
        for run_id in rec.running:  # as stored; a run that has ended since is not shown
            found = await self._store.get_run(run_id)
            if found is None or not found.status.finished:
                going.append(run_id)
        info = ScheduleInfo.from_record(rec, self.clock.time(), tuple(runs))
        return dataclasses.replace(info, running=tuple(going))

    async def all(self) -> list[ScheduleInfo]:
        return [await self.info(rec) for rec in await self.table.all()]


class ScheduleHandle:
    """A reference to one schedule (checked when used). Made by ``rt.create_schedule`` and
    ``rt.get_schedule``."""

    __slots__ = ("_schedules", "schedule_id")

    def __init__(self, schedules: Schedules, schedule_id: str) -> None:
        self._schedules = schedules
        self.schedule_id = schedule_id

    def __repr__(self) -> str:
        return f"<ScheduleHandle {self.schedule_id!r}>"

    async def describe(self) -> ScheduleInfo:
        """Its definition, state, next fire times and last runs.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        return await self._schedules.info(await self._schedules.get_record(self.schedule_id))

    async def pause(self, note: str | None = None) -> None:
        """Stop firing until `resume`; ``note`` says why (``describe`` shows it). Fires that
        fall while it is paused are not run later. Triggers and backfills still run."""
        check.text("ScheduleHandle.pause", "note", note)
        await self._schedules.modify(self.schedule_id, lambda rec, now: records.paused(rec, now, note))

    async def resume(self, note: str | None = None) -> None:
        """Fire again, from now on (fires that fell while paused are not caught up)."""
        check.text("ScheduleHandle.resume", "note", note)
        await self._schedules.modify(self.schedule_id, lambda rec, now: records.resumed(rec, now, note))

    async def trigger(self, overlap: Overlap | None = None) -> str:
        """Fire now, once, outside the spec, under ``overlap`` (default: the schedule's
        policy, so a trigger while a run goes is skipped under ``skip``). Returns the id of
        the run it starts if its policy lets it start."""
        run_id = ""

        def change(rec: ScheduleRecord, now: float) -> ScheduleRecord:
            nonlocal run_id
            new, run_id = records.triggered(rec, now, overlap)
            return new

        await self._schedules.modify(self.schedule_id, change)
        return run_id

    async def backfill(self, start: Instant, end: Instant, overlap: Overlap | None = None) -> None:
        """Fire every time of the spec from ``start`` to ``end`` (both included), as if they
        had come, in order. Each starts the run its scheduled fire would have (the same id),
        so a time that already ran is not run again. ``overlap`` defaults to ``buffer_all``
        (one after the other): under ``skip``, a backfill would drop all but its first fire."""
        await self._schedules.modify(
            self.schedule_id, lambda rec, now: records.backfilled(rec, now, start, end, overlap)
        )

    async def update(self, **changes: Any) -> None:
        """Change its definition: ``cron``, ``every``, ``tz``, ``jitter``, ``start_at``,
        ``end_at``, ``overlap``, ``catchup_window``, ``input``, ``version``. A new spec applies
        from now on. A declared schedule follows its code again at the next ``open_runtime``.

        Raises:
            ScheduleSpecError: an unknown field or an invalid value.
        """
        schedules = self._schedules
        await schedules.modify(
            self.schedule_id, lambda rec, now: records.updated(rec, now, changes, schedules.versions(rec.workflow))
        )

    async def delete(self) -> None:
        """Delete the schedule. Runs it started go on; nothing fires any more."""
        for _ in range(ATTEMPTS * 2):
            rec = await self._schedules.get_record(self.schedule_id)
            if await self._schedules.table.delete(self.schedule_id, rec.revision):
                return
        raise ScheduleConflictError(self.schedule_id, ATTEMPTS * 2)
