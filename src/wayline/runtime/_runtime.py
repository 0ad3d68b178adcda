"""`Runtime`: starting, observing and steering runs (opened by `open_runtime`).

The public methods only; the work is done by the parts it is made of: `Registry` (the
workflows), `Runs` (runs from creation to end, the table of those in memory), `Inbox` (every
message from outside a run) and `Telemetry`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from .._errors import RedriveError, RunNotFoundError
from ..actors import Clock, Supervisor
from ..persistence import DEDUP_WINDOW, AnyEvent, Custom, RunRecord, RunStatus, StepStarted, Store
from . import _checks as check, _failure as failure, _updates as updates
from ._cluster import Cluster
from ._definitions import DEFAULT_ACTIVITY_THREADS, WorkflowDef
from ._events import Events
from ._events_api import EventsApi
from ._flow_spec import idempotent_run_id
from ._flow_waiting import gives_back
from ._handles import RunHandle, RunInfo, StepAttemptInfo
from ._inbox import Inbox
from ._metadata import check_metadata, check_tags
from ._retention import DEFAULT_INTERVAL, Retention, plan, purge, retention_seconds
from ._roundtrip import check_input
from ._runs import Runs
from ._schedule_handle import ScheduleHandle, ScheduleInfo, Schedules
from ._schedule_spec import DEFAULT_CATCHUP_WINDOW, Duration, Instant, Overlap
from ._schedules import Scheduler
from ._statistics import RuntimeStatistics
from ._telemetry import Telemetry
from ._threads import ActivityThreads
from ._versions import ALIAS_KEY, PINNED_KEY, StateMachineAlias
from ._workflows import AslWorkflow, Registry
from .asl import StateMachine, prepare_redrive

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - a workflow's input type


class Runtime(EventsApi):
    """The embedded engine. Create it with `open_runtime`; all methods are coroutine-safe.

    Attributes:
        store: the `Store` runs are kept in.
        clock: the runtime's clock (a `wayline.testing.VirtualClock` in tests).
    """

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        *,
        workflows: Iterable[WorkflowDef[Any, Any] | StateMachine | StateMachineAlias],
        clock: Clock,
        max_concurrent_activities: int | None,
        activity_threads: int = DEFAULT_ACTIVITY_THREADS,
        passivate_after: float | None = None,
        owner: bool = True,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        retention: float | timedelta | None = None,
        retention_interval: float = DEFAULT_INTERVAL,
        event_dedup_window: float = DEDUP_WINDOW,
        shared: bool = False,
        max_runs: int | None = None,
        lease_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self._registry = Registry(workflows)
        self._telemetry = Telemetry(tracer_provider, meter_provider, clock=clock, passivate_after=passivate_after)
        limiter = asyncio.Semaphore(max_concurrent_activities) if max_concurrent_activities else None
        # Threads start only when a sync activity first needs one.
        self._threads = ActivityThreads(activity_threads)
        self._runs = Runs(
            store,
            clock,
            supervisor,
            self._registry,
            self._telemetry,
            limiter=limiter,
            passivate_after=passivate_after,
            owner=owner,
            threads=self._threads,
            shared=shared and owner,
            max_runs=max_runs,
        )
        self._inbox = Inbox(store, clock, self._runs)
        # One of several workers on a shared database (PostgreSQL): leases, sweeps, notifications.
        self._cluster = (
            Cluster(store, self._runs, self._inbox.poke, lease_seconds=lease_seconds) if shared and owner else None
        )
        self._events = Events(store, clock, self._registry, self._runs, dedup_window=event_dedup_window, owner=owner)
        self._poller: asyncio.Future[None] | None = None
        # Only an owner fires schedules; a client (the CLI) changes them and the owner sees it.
        table = getattr(store, "schedules", None)
        self._scheduler = Scheduler(table, clock, self._registry, self._runs) if owner and table is not None else None
        if self._scheduler is not None:
            self._runs.finished_listener = self._scheduler.run_finished
        self._schedules = Schedules(store, clock, self._registry, self._scheduler)
        keep = plan(self._registry.newest(), retention_seconds(retention, "open_runtime retention"))
        self._retention = Retention(store, clock, keep, retention_interval) if owner and keep else None
        self._purger: asyncio.Future[None] | None = None
        self._flow_recovered = False

    # --- life (open_runtime) ---------------------------------------------------------------

    @property
    def worker_id(self) -> str | None:
        """This worker's id among the workers of a shared (PostgreSQL) database; None for a
        client (``worker=False``) and for the one worker of a SQLite database."""
        return None if self._cluster is None else self._cluster.worker_id

    async def _open(self, *, recover: bool, inbox_poll_interval: float | None, worker_id: str | None = None) -> None:
        self._telemetry.watch(self)
        if self._cluster is not None:
            await self._cluster.register(worker_id, self._events.listens)
        if self._scheduler is not None:
            await self._scheduler.open()
        if recover:
            await self._runs.recover()
        if inbox_poll_interval is not None:
            # The rest of the recovery is the poller's first beat, so that opening returns as
            # soon as the runs are back (as before there were queues and events to look at).
            also = self._beat if recover else None
            self._poller = asyncio.ensure_future(self._inbox.poll(inbox_poll_interval, also=also))
        elif recover:
            await self._recover_flow()
        if self._scheduler is not None:
            self._scheduler.start(inbox_poll_interval)
        if self._retention is not None:
            self._purger = asyncio.ensure_future(self._retention.run())
        if self._cluster is not None:
            self._cluster.start()

    async def _recover_flow(self) -> None:
        """What recovery does beyond the runs: the slots of runs that were executing are held
        again and queued runs admitted, the on_failure runs a crash kept from starting start,
        and events a crash left undispatched start their runs and wake their waiters."""
        await self._runs.flow.recover()
        await self._runs.pacing.poll_once(full=True)
        await failure.recover_handlers(self.store, self._registry, self._runs.create, self.clock.time())
        await self._events.poll_once()
        self._flow_recovered = True

    async def _beat(self) -> None:
        """On each beat of the inbox poller: the end of recovery first, then the runs queued
        and the events sent by other processes."""
        if not self._flow_recovered:
            await self._recover_flow()
            return
        await self._runs.flow.poll_once()
        await self._runs.pacing.poll_once()
        await self._events.poll_once()

    async def _close(self) -> None:
        self._telemetry.close()
        if self._cluster is not None:
            await self._cluster.close()
        if self._scheduler is not None:
            await self._scheduler.close()
        await self._runs.close()
        # Not waited for: a thread cannot be interrupted, and a run's state is durable anyway.
        self._threads.shutdown(wait=False, cancel_futures=True)
        for task in (self._poller, self._purger):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._poller = self._purger = None

    # --- starting runs ---------------------------------------------------------------------

    # Typing only: the workflow's declared input type is what `input` accepts, and the handle
    # is typed by its return type; a state machine, an alias or a name gives a RunHandle[Any].
    @overload
    async def start(
        self,
        workflow: WorkflowDef[None, T],
        input: None = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> RunHandle[T]: ...
    @overload
    async def start(
        self,
        workflow: WorkflowDef[I, T],
        input: I,
        *,
        run_id: str | None = None,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> RunHandle[T]: ...
    @overload
    async def start(
        self,
        workflow: StateMachine | StateMachineAlias | str,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> RunHandle[Any]: ...
    async def start(
        self,
        workflow: WorkflowDef[Any, Any] | StateMachine | StateMachineAlias | str,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> RunHandle[Any]:
        """Start a run of ``workflow`` on ``input``, durably, and return its handle.

        The run takes the newest version registered under the workflow's name (see
        `wayline.runtime.version_key` for "newest"), unless ``version`` names one; a
        `StateMachineAlias` (or ``"<machine>:<alias>"``) picks the version by its weights, and
        ``"<name>:<version>"`` names one too. The run keeps its version when it resumes. A run
        started on a version named here is pinned to it (``metadata["pinned"]``): it keeps it
        when it continues as new, where others take the newest (see ``ctx.continue_as_new``).

        Idempotent on ``run_id``: if a run with that id exists (running or finished), no new
        run starts and the handle refers to the existing one.

        Under a `Debounce` with a burst going on for the input's key, no new run is created:
        the burst's pending (QUEUED) run takes ``input`` and the handle refers to it, whatever
        ``run_id`` was given. Under a `Throttle` or `Concurrency`, the run may be QUEUED.

        ``metadata`` (str keys; str, int, float or bool values, such as a correlation id) and
        ``tags`` label the run: ``rt.list_runs(metadata=..., tag=...)`` and ``wayline runs list
        --where k=v --tag t`` find it from an index, ``describe`` shows them, the workflow reads
        and sets them as ``ctx.metadata``, and the runs it starts inherit them.

        Raises:
            WorkflowNotFoundError: the workflow was not passed to ``open_runtime``.
            VersionNotFoundError: ``version`` is not registered.
            RunConflictError: ``run_id`` exists as a run of another workflow.
            PayloadError: ``input`` is not storable data, or would not come back as it was
                passed (see `wayline.runtime` for what round-trips).
            InvalidArgumentError: ``run_id`` or ``version`` is not a short printable string,
                or ``input`` is given to a workflow that takes none.
            MetadataError: ``metadata`` or ``tags`` are not storable labels.
        """
        self._runs.check_open()
        check.name("rt.start", "run_id", run_id, optional=True)
        check.name("rt.start", "version", version, optional=True)
        target = self._registry.resolve(workflow, version=version)
        if run_id is None and isinstance(target, WorkflowDef) and target.idempotency_key is not None:
            run_id = idempotent_run_id(target.name, target.idempotency_key, input)
        run_id = run_id or uuid.uuid4().hex
        labels = check_metadata(metadata, run_id=run_id)
        labelled = check_tags(tags, run_id=run_id)
        if isinstance(target, StateMachineAlias):
            wf = self._registry.lookup(target.machine, version=target.route(run_id))
            check_input(wf.name, input, Any, run_id)
            await self._runs.create(wf, input, run_id, {**labels, ALIAS_KEY: target.name}, labelled)
        else:
            if isinstance(target, WorkflowDef):
                if not target.takes_input and input is not None:
                    check.refuse(
                        "rt.start",
                        "input",
                        f"was given ({type(input).__name__}), but workflow {target.name!r} takes none (its body "
                        "is fn(ctx)); start it without input, or declare one: async def fn(ctx, input: T)",
                    )
                check_input(target.name, input, target.input_type, run_id)
            else:
                check_input(target.name, input, Any, run_id)
            if version is not None or (isinstance(workflow, str) and workflow != target.name):
                labels[PINNED_KEY] = True  # a version named by the caller: kept across continue-as-new
            run_id = await self._runs.create(target, input, run_id, labels, labelled)
        return RunHandle(self, run_id)

    async def redrive(self, run_id: str) -> RunHandle[Any]:
        """Restart a FAILED state machine run from the state that failed (as Step Functions
        redrives): finished states, Map items and Parallel branches are not run again.

        Raises:
            RunNotFoundError: no such run.
            RedriveError: the run did not fail, or is not a state machine run.
            InvalidArgumentError: ``run_id`` is not a run id (a short printable string).
        """
        self._runs.check_open()
        check.name("rt.redrive", "run_id", run_id)
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id)
        if rec.status is not RunStatus.FAILED:
            raise RedriveError(run_id, f"only FAILED runs can be redriven, and it is {rec.status.value}")
        wf = self._registry.lookup(rec.workflow, run_id=run_id, version=rec.version)
        if not isinstance(wf, AslWorkflow) or not isinstance(rec.state, dict):
            raise RedriveError(
                run_id, "only state machine runs resume from a failed state; start a new run of a code workflow"
            )
        try:
            state = prepare_redrive(rec.state)
        except ValueError as exc:
            raise RedriveError(run_id, str(exc)) from exc
        now = self.clock.time()
        metadata = {**rec.metadata, "redrives": int(rec.metadata.get("redrives", 0)) + 1}
        event = Custom(ts=now, name="ExecutionRedriven", details={"redriveCount": metadata["redrives"]})
        redriven = await self._runs.rewrite(
            rec, event, status=RunStatus.RUNNING, output=None, error=None, ended_at=None, state=state, metadata=metadata
        )
        await self._runs.go_on(redriven, "redriven")
        return RunHandle(self, run_id)

    # --- schedules ---------------------------------------------------------------------------

    async def create_schedule(
        self,
        schedule_id: str,
        workflow: WorkflowDef[Any, Any] | StateMachine | str,
        input: Any = None,
        *,
        cron: str | None = None,
        every: Duration | None = None,
        tz: str | None = None,
        overlap: Overlap = "skip",
        catchup_window: Duration = DEFAULT_CATCHUP_WINDOW,
        jitter: Duration = 0.0,
        start_at: Instant | None = None,
        end_at: Instant | None = None,
        version: str | None = None,
    ) -> ScheduleHandle:
        """Start runs of ``workflow`` on ``input`` on a schedule, durably; its handle.

        Its fires are the times of ``cron`` (evaluated in time zone ``tz``, UTC by default, with
        cron's rules at daylight-saving changes) or every ``every`` seconds from ``start_at``,
        within ``start_at``..``end_at``, each delayed by a fixed part of ``jitter``. The run of
        a fire has the id ``"<schedule_id>@<fire time, UTC>"``, so no fire starts two runs. A
        fire that comes while the schedule's previous run goes is handled by ``overlap``:
        ``skip`` (default), ``buffer_one``, ``buffer_all``, ``cancel_other``,
        ``terminate_other`` or ``allow_all``. Fires missed while no runtime ran run when one
        opens if they are younger than ``catchup_window`` (seconds, default a day), under the
        overlap policy; older ones are counted as missed. ``version`` pins the version its runs
        start on (default: the newest at each fire). Only an owning runtime fires schedules.

        Raises:
            ScheduleExistsError: a schedule with this id exists.
            ScheduleSpecError: the cron expression, interval, time zone or a policy is invalid.
            WorkflowNotFoundError: the workflow is not registered here.
            PayloadError: ``input`` is not storable data.
        """
        self._runs.check_open()
        check.name("rt.create_schedule", "schedule_id", schedule_id)
        check.name("rt.create_schedule", "version", version, optional=True)
        return await self._schedules.create(
            schedule_id,
            workflow,
            input,
            cron=cron,
            every=every,
            tz=tz,
            overlap=overlap,
            catchup_window=catchup_window,
            jitter=jitter,
            start_at=start_at,
            end_at=end_at,
            version=version,
        )

    def get_schedule(self, schedule_id: str) -> ScheduleHandle:
        """A handle for an existing schedule (checked when used)."""
        check.name("rt.get_schedule", "schedule_id", schedule_id)
        return ScheduleHandle(self._schedules, schedule_id)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule in the store, by id."""
        return await self._schedules.all()

    # --- observing runs --------------------------------------------------------------------

    def get_handle(self, run_id: str) -> RunHandle[Any]:
        """A handle for an existing run id (checked when used)."""
        check.name("rt.get_handle", "run_id", run_id)
        return RunHandle(self, run_id)

    async def describe(self, run_id: str) -> RunInfo:
        """Status, vars, output or error, version and timestamps of a run, and whether the
        store can write now (``store_health``: while it cannot, runs wait instead of failing).

        For a run this runtime runs (``live``), its vars as they are now and the step attempts
        it has in flight (``running``: name, attempt, since when), from memory; for a run
        another process runs, what its last checkpoint (``updated_at``) shows.

        Raises:
            RunNotFoundError: no such run.
        """
        check.name("rt.describe", "run_id", run_id)
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id)
        live = self._runs.live(run_id)
        if live is not None and not rec.status.finished:
            # A live run: its current vars and steps in flight, not those of its last checkpoint.
            info = RunInfo.from_record(rec, vars=live.live_vars())
            running = tuple(StepAttemptInfo(e.step, e.index, e.attempt, e.ts) for e in live.in_flight())
            info = dataclasses.replace(info, store_health=self.store.health(), running=running, live=True)
            return await self._slot_wait(rec, info)
        info = RunInfo.from_record(rec)
        if rec.status is RunStatus.QUEUED and (why := await self._queued_why(run_id)) is not None:
            info = dataclasses.replace(info, waiting_for=(why,))
        return await self._slot_wait(rec, dataclasses.replace(info, store_health=self.store.health()))

    async def _queued_why(self, run_id: str) -> str | None:
        """Why a QUEUED run waits: its debounce or throttle, a runtime slot (``max_runs``), or
        its key's slot."""
        why = await self._runs.pacing.why(run_id) or await self._runs.flow.why_capped(run_id)
        return why if why is not None else await self._runs.flow.why(run_id)

    async def _slot_wait(self, rec: RunRecord, info: RunInfo) -> RunInfo:
        """``describe`` of a woken run queued for its slot again (``count_waiting=False``)."""
        waiting = self._runs.flow.waiting
        wf = self._registry.get(rec.workflow)
        if rec.status is not RunStatus.WAITING or waiting is None or (wf is not None and not gives_back(wf.flow)):
            return info  # (a client without the workflow, the CLI, reads its queue entry)
        why = await waiting.why(rec.run_id)
        return info if why is None else dataclasses.replace(info, waiting_for=(*info.waiting_for, why))

    async def list_runs(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> list[RunInfo]:
        """Runs, oldest first, optionally filtered.

        Metadata and tag filters are answered from the store's metadata index: a page of the
        runs of one customer among a million reads that page, not the million.

        Args:
            status: one status or several (names or `RunStatus` members).
            workflow: a workflow name.
            since: only runs created at or after this time (epoch seconds).
            newest_first: order by creation time, the most recent first.
            limit: at most this many runs; only those are read from the store.
            metadata: only runs whose metadata has every one of these entries (str, int,
                float or bool values; numbers compare as numbers).
            tag: only runs with this tag.

        Raises:
            InvalidArgumentError: an unknown status, or an argument of the wrong type (it is
                a `ValueError` too).
            MetadataError: a metadata or tag filter that cannot be searched (a non-scalar
                value, a ``wayline.`` key).
        """
        call = "rt.list_runs"
        check.name(call, "workflow", workflow, optional=True)
        check.number(call, "since", since)
        check.flag(call, "newest_first", newest_first)
        check.count(call, "limit", limit)
        statuses = check.statuses(call, status)
        records = await self.store.list_runs(
            statuses=statuses,
            workflow=workflow,
            since=since,
            newest_first=newest_first,
            limit=limit,
            metadata=metadata,
            tag=tag,
        )
        return [RunInfo.from_record(r) for r in records]

    async def purge(
        self,
        *,
        before: datetime | float,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        workflow: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete finished runs that ended before ``before``, with their history, inbox
        leftovers, metadata and the stored values no other run refers to; returns how many.

        Runs go in small transactions (200 at a time), so checkpoints go on meanwhile.
        Workflows with ``retention=`` (or a runtime with ``retention=``) are purged this way
        in the background.

        Args:
            before: a timezone-aware datetime, or epoch seconds.
            status: only runs in this status (or these); every finished status by default.
            workflow: only runs of this workflow.
            dry_run: count the runs that would go, deleting nothing.

        Raises:
            ValueError: a status that is not a finished one, or a naive datetime.
        """
        if isinstance(before, datetime):
            if before.tzinfo is None:
                raise ValueError("rt.purge needs a timezone-aware datetime for before= (e.g. tzinfo=UTC)")
            cutoff = before.timestamp()
        else:
            cutoff = float(before)
        statuses = check.statuses("rt.purge", status)
        return await purge(self.store, before=cutoff, statuses=statuses, workflow=workflow, dry_run=dry_run)

    async def history(self, run_id: str, *, running: bool = False) -> AsyncIterator[AnyEvent]:
        """The run's stored events (`wayline.history`), oldest first: a history read while the
        run goes on is a prefix of the one read after it ends.

        With ``running=True``, for a run this runtime runs, the step attempts in flight come
        last, as the `StepStarted` events their checkpoint will store with their outcome (an
        attempt is stored only once it ends). Those are a glimpse, not a prefix: a step that
        ends first is stored with its outcome before another's start.

        Raises:
            RunNotFoundError: no such run.
        """
        check.name("rt.history", "run_id", run_id)
        check.flag("rt.history", "running", running)
        live = self._runs.live(run_id) if running else None
        in_flight = live.in_flight() if live is not None else []  # before the read: none is missed
        if await self.store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        stored = await self.store.get_history(run_id)
        for event in stored:
            yield event
        if in_flight:
            done = {(e.index, e.attempt) for e in stored if type(e) is StepStarted}
            for started in in_flight:
                if (started.index, started.attempt) not in done:  # it ended during the read
                    yield started

    def statistics(self) -> RuntimeStatistics:
        """What this runtime holds in memory right now: live runs, their mailboxes, and the
        runs it passivated. Cheap: read from memory, never from the store."""
        return self._runs.statistics()

    async def _wait_finished(self, run_id: str) -> RunRecord:
        """The final record of ``run_id`` once it has ended (`RunHandle.result`)."""
        return await self._runs.wait_finished(run_id)

    # --- messages for runs ------------------------------------------------------------------

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send signal ``name`` with ``payload`` to a run; returns once it is durable.

        The run receives it at its next ``ctx.wait_signal(name)``, or at once if it is
        waiting for it; signals that arrive early are kept, in order. Signals the run never
        waits for are deleted when it ends.

        Raises:
            RunNotFoundError: no such run.
            RunAlreadyFinishedError: the run has ended.
            PayloadError: ``payload`` is not storable data.
            InvalidArgumentError: ``run_id`` or ``name`` is not a short printable string.
        """
        check.name("rt.signal", "run_id", run_id)
        check.name("rt.signal", "name", name)
        await self._inbox.signal(run_id, name, payload)

    async def update(
        self,
        run_id: str,
        name: str,
        payload: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - on the runtime's clock (virtual in tests)
        update_id: str | None = None,
    ) -> Any:
        """Send update ``name`` with ``payload`` to a run and return the run's answer.

        The run takes it with ``upd = await ctx.wait_update(name)`` and answers with ``await
        upd.reply(value)`` (returned here) or ``await upd.reject(error)`` (raised here as
        `UpdateRejectedError`). A validator the workflow declares for ``name``
        (``@workflow(validators={name: fn})``) runs first, here: if it raises, the update is
        rejected and nothing is written. The answer is durable before it is returned.

        Pass your own ``update_id`` to retry safely: after a timeout or a crash, calling
        again with the same id returns the same answer (or waits for it), and the run takes
        the update once.

        Raises:
            UpdateRejectedError: the validator or the run refused it.
            UpdateTimeoutError: no answer within ``timeout`` seconds (it may still come:
                retry with the same ``update_id``).
            UpdateNotAnsweredError: the run ended without answering it.
            RunNotFoundError: no such run.
            RunAlreadyFinishedError: the run has ended (and never answered this update id).
            PayloadError: ``payload`` is not storable data.
        """
        check.name("rt.update", "run_id", run_id)
        check.name("rt.update", "name", name)
        self._runs.check_open()
        return await updates.update(
            self.store,
            self.clock,
            self._runs,
            self._registry,
            self._runs.updates,
            run_id,
            name,
            payload,
            timeout=timeout,
            update_id=update_id,
        )

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Cancel a run: its waiting or running step is cancelled and the body gets
        `wayline.Cancelled` at that await (it may run compensation steps); the run ends
        CANCELLED. Returns once the run has taken the cancel in.

        Raises:
            RunNotFoundError: no such run.
            RunAlreadyFinishedError: the run has already ended.
            InvalidArgumentError: ``run_id`` is not a run id, or ``reason`` is not a string.
        """
        check.name("rt.cancel", "run_id", run_id)
        check.text("rt.cancel", "reason", reason)
        await self._inbox.cancel(run_id, reason)

    async def complete_callback(self, token: str, output: Any = None) -> None:
        """Complete the ``ctx.wait_for_callback`` (or ASL ``.waitForTaskToken`` task) that
        handed out ``token``: it returns ``output``. Returns once the completion is durable.

        Raises:
            CallbackTokenError: no run waits on this token (malformed, never issued, already
                completed or timed out, or its run has ended).
            PayloadError: ``output`` is not storable data.
            InvalidArgumentError: ``token`` is not a string.
        """
        check.token("rt.complete_callback", token)
        await self._inbox.complete(token, output)

    async def fail_callback(self, token: str, error: str, cause: str | None = None) -> None:
        """Fail the callback wait that handed out ``token``: the workflow gets `CallbackError`
        (an ASL task, a ``StatesError``) with ``error`` and ``cause``. Durable on return.

        Raises:
            CallbackTokenError: as for `complete_callback`.
            InvalidArgumentError: ``error`` is not a non-empty string (e.g. ``"Rejected"``),
                or ``cause`` is not a string (it is a `ValueError` too).
        """
        call = "rt.fail_callback"
        check.token(call, token)
        if not isinstance(error, str) or not error:
            check.refuse(call, "error", f"must be an error name (a non-empty string, e.g. 'Rejected'), got {error!r}")
        check.name(call, "error", error)
        check.text(call, "cause", cause)
        await self._inbox.fail(token, error, cause)

    async def heartbeat(self, token: str) -> None:
        """Tell the run waiting on ``token`` that the work it waits for is still alive: its
        heartbeat timeout starts again from now.

        Raises:
            CallbackTokenError: as for `complete_callback`.
            InvalidArgumentError: ``token`` is not a string.
        """
        check.token("rt.heartbeat", token)
        await self._inbox.heartbeat(token)
