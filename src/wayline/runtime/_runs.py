"""`Runs`: the runs of one runtime, from their creation to their end.

It creates runs in the store, spawns their actors under the supervisor, keeps the table of
those in memory, recovers unfinished runs at startup, reloads passivated ones, fails a run
whose actor crashes too often, and answers whoever waits for a run's end. It is the `RunPort`
its runs talk to, and the `Mailboxes` the inbox delivers through.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

import msgspec

from .._errors import (
    LeaseLostError,
    RunAlreadyFinishedError,
    RunConflictError,
    RunNotFoundError,
    RuntimeClosedError,
    WorkflowNotFoundError,
)
from ..actors import ActorRef, Clock, SharedTimers, Supervisor
from ..persistence import (
    UNFINISHED,
    WAIT_FOR_STORE,
    AnyEvent,
    CancelMessage,
    ChildDone,
    Custom,
    ErrorInfo,
    RunCancelled,
    RunFailed,
    RunRecord,
    RunStarted,
    RunStatus,
    StartMessage,
    StepStarted,
    Store,
    UpdateAnswered,
)
from . import _failure as failure, _inbox as inbox
from ._cancel_on import cancel_metadata
from ._flow import GROUP_KEY as FLOW_GROUP, Flow
from ._flow_waiting import SlotGate
from ._max_runs import CAPPED_KEY, real_id
from ._pacing import Pacing, held_back
from ._passivation import WakeTimer, wake_due, wake_if_messages
from ._port import LiveRun
from ._shares import Shares
from ._statistics import RuntimeStatistics
from ._telemetry import Telemetry
from ._updates import UpdateWaiters
from ._workflows import AslWorkflow, Registry, Workflow
from .run import DETACHED_KEY, PARENT_KEY, RunActor, notifies_parent

log = logging.getLogger("wayline")

#: Unfinished runs loaded at once when a runtime recovers them: the next wave starts once
#: these have loaded their snapshots. All at once, every run's reads, decoding and replay are
#: in memory together, and the process keeps that peak (the allocator seldom hands it back):
#: it more than doubled the memory a waiting run holds afterwards.
RECOVERY_WAVE = 250


class Runs:
    """The runs of one runtime (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        supervisor: Supervisor,
        registry: Registry,
        telemetry: Telemetry,
        *,
        limiter: asyncio.Semaphore | None,
        passivate_after: float | None,
        owner: bool,
        threads: Executor,
        shared: bool = False,
        max_runs: int | None = None,
    ) -> None:
        self.store = store
        # The runs' clock: the runtime's, with their timers (waits, timeouts, backoffs,
        # passivation) on one timer of it rather than one event-loop timer each.
        self._timers = SharedTimers(clock)
        self.clock: Clock = self._timers
        self.limiter = limiter
        self.threads = threads
        self.passivate_after = passivate_after
        self.telemetry = telemetry
        self._supervisor = supervisor
        self._registry = registry
        self._owner = owner  # runs runs (a worker), not just a client of the database
        # One of several workers on one database (PostgreSQL): a run is loaded only once this
        # worker holds its lease (`claim`), and given back when it leaves memory.
        self.max_runs = max_runs
        self.shares = Shares(self) if shared and owner else None
        #: Polling interval of `wait_finished` for a run another process runs.
        self.poll_interval = 0.5
        self._refs: dict[str, ActorRef[Any]] = {}  # runs in memory, by run id (across restarts)
        self._actors: dict[str, RunActor] = {}  # the current incarnation of each
        # Callers of RunHandle.result(), resolved with the final record by the run's actor
        # (None: the runtime closed first), so waiting on a live run costs no store read. One
        # future per caller: a caller giving up cancels only its own.
        self._waiters: dict[str, list[asyncio.Future[RunRecord | None]]] = {}
        self._wake_timer = WakeTimer(clock)
        self._background: set[asyncio.Task[Any]] = set()
        self._passivated = 0
        # Passivated runs that had taken in inbox messages, with the seqs they took in. One of
        # them reaching the run again (the poller finds every message, those sent here too) is
        # in its inbox already, or applied: it must not reload it. A set, not the highest seq:
        # on PostgreSQL a lower seq can commit after a higher one, and that one must wake it.
        self._took_in: dict[str, frozenset[int]] = {}
        # Runs listed for recovery whose wave has not come yet, with their listed records. A
        # message to one of them loads it at once (`wake`, from its current record) and takes
        # it off this list, so its wave does not load it a second time from the listed one.
        self._unrecovered: dict[str, RunRecord] = {}
        self._finishing: set[str] = set()  # ended here, giving their flow slot back
        # The context every task of every run starts in (a copy each time): the opener's, with
        # WAIT_FOR_STORE set, so a run's writes wait out an outage of the store as the run
        # does. Given to the supervisor because a parked run's next task is started by
        # whoever sends it a message, whose context variables must not leak into the run.
        self._context = contextvars.copy_context()
        self._context.run(WAIT_FOR_STORE.set, True)
        self.closed = False
        #: Callers of ``rt.update`` waiting for the answers of runs here.
        self.updates = UpdateWaiters()
        #: Told of every run that ends here (the scheduler starts buffered fires then).
        self.finished_listener: Callable[[RunRecord], None] | None = None
        #: Concurrency limits: the queues of QUEUED runs and the slots of running ones.
        self.flow = Flow(
            store,
            self.start_admitted,
            owner=owner,
            specs=self._spec_of,
            clock=self.clock.time,
            end_queued=self.end_queued,
            cancel=self._cancel_quietly,
            # One owner of the store (SQLite, memory): a limit on this runtime's runs at once.
            # Several workers (PostgreSQL): the runs each holds in memory (`Shares`).
            max_runs=max_runs if owner and not shared else None,
        )
        #: Debounces and throttles: the stages before the concurrency limit.
        self.pacing = Pacing(
            store,
            self.clock,
            owner=owner,
            specs=self._spec_of,
            start=self.start_admitted,
            enqueue=self.flow.enqueue,
            commit=self._commit_queued,
            background=self.background,
        )
        self.flow.held = self.pacing.held
        self.flow.holds_live = self._holds_slot

    # --- the table -------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeClosedError()

    def live(self, run_id: str) -> LiveRun | None:
        ref = self._refs.get(run_id)
        if ref is None:
            return None
        actor = self._actors.get(run_id)
        return actor if actor is not None else _Restarting(run_id, ref)

    def took_in(self, run_id: str, seq: int) -> bool:
        seen = self._took_in.get(run_id)
        return seen is not None and seq in seen

    def statistics(self) -> RuntimeStatistics:
        depths = [ref.mailbox_depth for ref in self._refs.values()]
        return RuntimeStatistics(
            live_runs=len(self._actors),
            waiting_runs=sum(1 for actor in self._actors.values() if actor.only_waiting()),
            mailbox_depth=sum(depths),
            mailbox_depth_max=max(depths, default=0),
            passivated=self._passivated,
        )

    def _spec_of(self, workflow: str) -> Any:
        wf = self._registry.get(workflow)
        return wf.flow if wf is not None else None

    # --- the port: what runs ask -------------------------------------------------------------

    def workflow(self, name: str, run_id: str | None, version: str | None = None) -> Workflow:
        return self._registry.lookup(name, run_id=run_id, version=version)

    def slot_gate(self, record: RunRecord) -> SlotGate | None:
        waiting = self.flow.waiting
        return None if waiting is None else waiting.for_run(record)

    def _holds_slot(self, run_id: str) -> bool:
        actor = self._actors.get(run_id)
        return actor is not None and actor.holds_slot

    def run_stopped(self, run: LiveRun) -> None:
        if self._actors.get(run.run_id) is run:
            del self._actors[run.run_id]

    def run_dropped(self, run_id: str, error: BaseException) -> None:
        """A checkpoint of the run was refused: this worker lost its lease (it was paused or
        cut off past it) and another worker owns the run now. It leaves memory here; whoever
        waits for it here goes on waiting, reading the store."""
        self._refs.pop(run_id, None)
        # Given up in the database too, in case it still names this worker (then no other
        # worker could claim it from a live owner); a no-op if another worker holds it.
        if self.shares is not None:
            self.background(self.shares.release(run_id))
        log.error("run %s dropped from this worker: %s", run_id, error, extra={"run_id": run_id})

    def run_finished(self, record: RunRecord) -> None:
        self._refs.pop(record.run_id, None)
        self.telemetry.run_finished(record)
        if FLOW_GROUP in record.metadata or CAPPED_KEY in record.metadata:
            # Its waiters learn of its end once its slot is given back: a caller that starts
            # the next run of its key after ``result()`` must find the key free.
            self._finishing.add(record.run_id)
            self.background(self._give_slot_back(record))
        else:
            self._resolve(record.run_id, record)
        self.updates.run_ended(record)

        if self.finished_listener is not None:
            self.finished_listener(record)
        if record.status is RunStatus.FAILED and getattr(self._registry.get(record.workflow), "on_failure", None):
            self.background(self.start_failure_handler(record))

    async def _give_slot_back(self, record: RunRecord) -> None:
        try:
            await self.flow.finished(record)
            if self.flow.cap is not None and CAPPED_KEY in record.metadata:
                await self.flow.cap.finished(record.run_id)
        finally:
            self._finishing.discard(record.run_id)
            self._resolve(record.run_id, record)

    def run_passivated(self, run_id: str, wake_at: float | None, seen: frozenset[int]) -> None:
        self._refs.pop(run_id, None)
        if seen:
            self._took_in[run_id] = seen
        self._passivated += 1
        if self.shares is not None:
            # Out of memory, out of this worker's hands: whichever worker gets its message or
            # its timer claims it (this one too, once the release is done).
            self.shares.passivated(run_id)
        if wake_at is not None:
            self._wake_timer.schedule(wake_at, self._wake_timer_fired)
        self.background(wake_if_messages(self.store, run_id, max(seen, default=0), self.wake))

    async def start_child(
        self, workflow: str, input: Any, *, run_id: str, metadata: dict[str, Any], tags: tuple[str, ...] = ()
    ) -> None:
        self.check_open()
        await self.create(self._registry.lookup(workflow), input, run_id, metadata, tags)

    async def cancel_run(self, run_id: str, reason: str | None, *, terminate: bool = False) -> None:
        await inbox.cancel(self.store, self.clock, self, run_id, reason, terminate=terminate)

    def update_answered(self, run_id: str, event: UpdateAnswered) -> None:
        self.updates.answered(run_id, event)

    async def signal_run(self, run_id: str, name: str, payload: Any) -> None:
        await inbox.signal(self.store, self.clock, self, run_id, name, payload)

    async def watch_child(self, run_id: str, parent: str) -> None:
        try:
            rec = await self.store.get_run(run_id)
        except Exception:
            log.exception("could not read child run %s for its parent", run_id, extra={"run_id": run_id})
            return
        if rec is None:
            return
        if rec.status.finished:
            await self._send_end(parent, rec)
        elif rec.metadata.get(PARENT_KEY) != parent:
            # Another run's child (two parents gave one execution Name): its end is sent to
            # its own parent; this one is told too. Not durable, nor need it be: a restarted
            # parent watches again when it waits again.
            self.background(self._relay_end(run_id, parent))

    async def _relay_end(self, run_id: str, parent: str) -> None:
        try:
            rec = await self.wait_finished(run_id)
        except RuntimeClosedError:
            return
        except (RunNotFoundError, WorkflowNotFoundError):
            log.exception("run %s waits for run %s, which cannot end here", parent, run_id, extra={"run_id": parent})
            return
        await self._send_end(parent, rec)

    async def notify_parent(self, child: RunRecord) -> None:
        """Send a child's end to its parent's inbox (it may already have it: the parent applies
        one and deletes the others), for a code workflow's child and for a state machine's
        child that its parent waits for. If this fails, the parent asks again when it next
        opens its wait for the child (`watch_child`)."""
        parent = child.metadata.get(PARENT_KEY)
        if isinstance(parent, str) and notifies_parent(child.metadata):
            await self._send_end(parent, child)

    async def _send_end(self, parent: str, child: RunRecord) -> None:
        message = ChildDone(
            run_id=child.run_id, status=child.status.value, output=child.output, error=child.error, ts=self.clock.time()
        )
        try:
            seq = await self.store.append_inbox(parent, message)
            if seq is not None:  # None: the parent has ended, nobody waits
                await inbox.deliver(self, parent, seq, message)
        except Exception:
            log.exception(
                "could not tell run %s that its child %s ended", parent, child.run_id, extra={"run_id": parent}
            )

    async def close_children(self, children: tuple[tuple[str, str], ...], reason: str) -> None:
        async def close(run_id: str, policy: str) -> None:
            with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
                await self.cancel_run(run_id, reason, terminate=policy == "terminate")

        await asyncio.gather(*(close(run_id, policy) for run_id, policy in children))

    async def cancel_children(self, parent: RunRecord, reason: str | None) -> None:
        """Cancel the unfinished child runs a run waits for (a state machine's ``.sync``
        executions and distributed Map items) before it ends cancelled; detached children
        (``states:startExecution`` without ``.sync``) go on. A crash before the parent's end
        is committed repeats this on restart, so no waited-for child outlives its parent."""
        wf = self._registry.get(parent.workflow)
        if not isinstance(wf, AslWorkflow) or not wf.waits_on_children:
            return  # nothing to look for: spare the scan of the store
        children = [
            rec.run_id
            for rec in await self.store.list_runs(statuses=UNFINISHED)
            if rec.metadata.get(PARENT_KEY) == parent.run_id and not rec.metadata.get(DETACHED_KEY)
        ]

        async def cancel(run_id: str) -> None:
            with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
                await self.cancel_run(run_id, reason)

        await asyncio.gather(*(cancel(run_id) for run_id in children))

    # --- creating, spawning, ending ------------------------------------------------------------

    async def create(
        self,
        wf: Workflow,
        input: Any,
        run_id: str,
        metadata: dict[str, Any] | None = None,
        tags: tuple[str, ...] = (),
        *,
        subject: Any = None,
    ) -> str:
        """Create run ``run_id`` of ``wf`` durably and start it; nothing if it exists. A
        workflow with a concurrency limit, a throttle or a debounce has it created QUEUED and
        started as `Pacing` and `Flow` let it (``subject``: what its key and priority functions
        are given; ``input`` if None). Returns the run's id: under a debounce going on for its
        key, the pending run's, which takes ``input`` instead of a new run starting.

        Raises:
            RunConflictError: ``run_id`` exists as a run of another workflow.
            PayloadError: ``input`` is not storable data.
            FlowSpecError: the workflow's key or priority function failed for this input.
        """
        if run_id in self._refs:
            return run_id
        # Its cancel keys travel in its metadata, indexed by the store with the run itself
        # (worked out first: a match function that fails refuses the start before a rate
        # limit counts it).
        cancel_keys = cancel_metadata(wf, input, subject, run_id)
        if cancel_keys:
            metadata = {**(metadata or {}), **cancel_keys}
        spec = wf.flow if self.flow.enabled else None
        subject = input if subject is None else subject
        if spec is not None and spec.rate_limit is not None:  # a run counts once, however often it is started
            await self.flow.take_rate(spec, subject, run_id)  # or RateLimitedError
        if not held_back(spec):
            spec = None  # a rate limit alone: the run starts at once
        debouncing = False  # a debounce holds the new run (its row names it)
        if spec is not None:
            labels = self.flow.labels(spec, subject, run_id) if spec.concurrency is not None else {}
            metadata = {**(metadata or {}), **labels, **self.pacing.labels(spec, subject, run_id)}
            if spec.debounce is not None:
                joined, debouncing = await self.pacing.join(spec, subject, run_id, input, metadata)
                if joined is not None:
                    return joined  # a burst's pending run took this start's input
        # Under max_runs a run starts once it holds a runtime slot; a child runs on its parent's.
        capped = self.flow.cap is not None and PARENT_KEY not in (metadata or {})
        if capped:
            metadata = {**(metadata or {}), CAPPED_KEY: True}
        now = self.clock.time()
        span, trace_context = self.telemetry.start_run(wf.name, wf.version, run_id)
        record = RunRecord(
            run_id=run_id,
            workflow=wf.name,
            version=wf.version,
            status=RunStatus.QUEUED if spec is not None or capped else RunStatus.RUNNING,
            input=input,
            created_at=now,
            updated_at=now,
            tail=(RunStarted(ts=now, workflow=wf.name, version=wf.version, input=input, metadata=metadata or {}),),
            metadata=metadata or {},
            tags=tags,
            trace=trace_context,
        )
        try:
            if self._owner:
                existing = await self.store.create_run(record, [])
            else:
                # A client runs nothing: the run and the message that brings it to a worker
                # commit together (the workers watch the inbox).
                existing = await self.store.create_run(record, [], StartMessage(ts=now))
        except BaseException as exc:
            self.telemetry.start_failed(span, exc)
            raise
        self.telemetry.run_created(span, run_id, wf.name, existing)
        if existing is not None:
            if existing.workflow != wf.name:
                raise RunConflictError(run_id, existing.workflow, wf.name)
            return run_id
        if spec is not None:
            if self.shares is not None:
                # A QUEUED run is held by no worker (given up before its queue can admit it):
                # the worker whose admission takes its slot claims it (`start_admitted`).
                await self.store.release_runs([run_id])
            await self.pacing.queued(record, spec, debouncing=debouncing)
        elif capped and self.flow.cap is not None:
            await self.flow.cap.request(record)
        elif not self._owner or run_id in self._refs:
            return run_id
        elif self.shares is not None and self.max_runs is not None and len(self._refs) >= self.max_runs:
            # At its limit: another worker claims it (its sweep finds unowned runs).
            await self.store.release_runs([run_id])
        else:
            self.spawn(record, None)
        return run_id

    async def start_admitted(self, run_id: str) -> None:
        """Start a run `Flow` admitted: a QUEUED one is rewritten RUNNING first. Under
        ``max_runs`` it needs a runtime slot too, and starts once it holds one."""
        flow_id, run_id = run_id, real_id(run_id)
        rec = await self.store.get_run(run_id)
        if rec is None or rec.status.finished:
            await self.flow.finished_id(flow_id)
            return
        if run_id in self._refs or self.closed:
            return
        if rec.workflow not in self._registry:
            # Admitted here (admission serves every queue), run by a worker that has it: it
            # starts the run from its slot (`Flow.poll_once`). Started here, it would fail.
            if self.shares is not None:
                self.shares.unknown(rec.workflow)
            return
        if self.shares is not None and await self.store.claim_run(run_id) is None:
            return  # a live worker holds it: it was started there
        cap = self.flow.cap
        capped = rec.status is RunStatus.QUEUED and cap is not None and CAPPED_KEY in rec.metadata
        if capped and cap is not None and not await cap.holds(run_id):
            await cap.request(rec)  # starts it (this again) if a runtime slot is free
            return
        if rec.status is RunStatus.QUEUED:
            now = self.clock.time()
            details = {k: v for k, v in rec.metadata.items() if k.startswith("wayline.flow_")}
            event = Custom(ts=now, name="RunDequeued", details={**details, "queued_for": now - rec.created_at})
            rec = await self.rewrite(rec, event, status=RunStatus.RUNNING)
        if run_id not in self._refs:
            self.spawn(rec, None)

    async def go_on(self, record: RunRecord, reason: str) -> None:
        """Have a run that was just rewritten RUNNING (a redrive) go on: here in a worker; a
        client tells the workers through the run's inbox."""
        if self._owner:
            self.spawn(record, reason)
        else:
            await self.store.append_inbox(record.run_id, StartMessage(ts=self.clock.time()))

    def spawn(self, record: RunRecord, reason: str | None) -> None:
        self._took_in.pop(record.run_id, None)  # the new incarnation reads its inbox
        child = _RunChild(self, record, reason)
        self._refs[record.run_id] = self._supervisor.spawn_child(record.run_id, child, context=self._context)

    async def fail_crash_loop(self, run_id: str, exc: BaseException, restarts: int) -> None:
        self._refs.pop(run_id, None)
        rec = await self.store.get_run(run_id)
        if rec is None or rec.status.finished:
            return
        now = self.clock.time()
        spec = self._supervisor.spec
        error = ErrorInfo(
            "CrashLoop",
            f"the run crashed {restarts + 1} times within {spec.period:g}s (last: {type(exc).__name__}: {exc}); "
            "it was stopped to protect the process. Fix the cause, then redrive or restart it",
        )
        failed = await self.rewrite(
            rec,
            RunFailed(ts=now, error=error.error, cause=error.cause),
            status=RunStatus.FAILED,
            error=error,
            ended_at=now,
        )
        self.run_finished(failed)
        await self.notify_parent(failed)

    async def rewrite(self, rec: RunRecord, event: AnyEvent, **changes: Any) -> RunRecord:
        """Commit a change to a run that no actor holds (failing a crash loop, a redrive): its
        waits cleared, its pending tail and ``event`` moved to the history; returns the record."""
        new = msgspec.structs.replace(
            rec, updated_at=event.ts, waits=(), tail=(), history_seq=rec.history_seq + 1, **changes
        )
        await self._commit(new, [*rec.tail, event])
        return new

    async def _commit_queued(self, rec: RunRecord, new: RunRecord) -> None:
        """Write a QUEUED run's new record (its debounce took a later input): held by no
        worker after, as a QUEUED run is."""
        await self._commit(new, [])
        if self.shares is not None:
            await self.store.release_runs([rec.run_id])

    async def _commit(self, new: RunRecord, events: list[AnyEvent]) -> None:
        if self.shares is None:
            await self.store.checkpoint(new, events)
            return
        # A worker commits only the runs it holds (this one is held already if it ran here).
        # A refusal can come from this worker's own release in flight (a QUEUED run is given
        # back as it is queued, while the poller's admission may already start it): the run
        # is then unowned, and claimed again from the database.
        attempts = 3
        while True:
            if await self.store.claim_run(new.run_id) is None:
                raise LeaseLostError(new.run_id, str(getattr(self.store, "worker_id", None)), -1)
            try:
                await self.store.checkpoint(new, events)
                return
            except LeaseLostError:
                attempts -= 1
                if not attempts:
                    raise
                await self.store.release_runs([new.run_id])  # forgets the stale lease here

    # --- waiting for a run's end ---------------------------------------------------------------

    def _resolve(self, run_id: str, record: RunRecord | None) -> None:
        for fut in self._waiters.pop(run_id, ()):
            if not fut.done():
                # Closing (None) is a result rather than an exception, which asyncio would
                # report as "never retrieved" if the waiter had already gone away.
                fut.set_result(record)

    async def wait_finished(self, run_id: str) -> RunRecord:
        """The final record of ``run_id`` once it has ended.

        Raises:
            RunNotFoundError: no such run.
            WorkflowNotFoundError: the run's workflow is not registered here (it cannot end).
            RuntimeClosedError: the runtime closed first.
        """
        # Other processes may run it: a client runs nothing, and one of several workers only
        # its share. Then its end is read from the store, at growing intervals.
        elsewhere = not self._owner or self.shares is not None
        if run_id not in self._refs and run_id not in self._finishing:
            rec = await self.store.get_run(run_id)
            if rec is None:
                raise RunNotFoundError(run_id)
            if rec.status.finished:
                return rec
            if rec.workflow not in self._registry and not elsewhere:
                # Nothing here can run it, so waiting would never end.
                raise WorkflowNotFoundError(rec.workflow, self._registry.names(), run_id=run_id)
        self.check_open()
        fut: asyncio.Future[RunRecord | None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(run_id, [])
        waiters.append(fut)
        try:
            delay = 0.005
            while elsewhere and not fut.done():
                await asyncio.wait((fut,), timeout=delay)
                if fut.done():
                    break
                if run_id not in self._refs and run_id not in self._finishing:
                    rec = await self.store.get_run(run_id)
                    if rec is not None and rec.status.finished:
                        return rec
                delay = min(delay * 2, self.poll_interval)
            done = await fut
        except asyncio.CancelledError:
            if fut in waiters:
                waiters.remove(fut)
            raise
        finally:
            if fut in waiters and not fut.done():
                waiters.remove(fut)
        if done is None:
            raise RuntimeClosedError()
        return done

    # --- recovery and passivation ----------------------------------------------------------------

    async def recover(self) -> int:
        """Restart every unfinished run in the store; returns how many. One of several
        workers takes the runs no live worker holds, in waves, up to ``max_runs``."""
        if self.shares is not None:
            if self.passivate_after is not None:
                self.background(self._wake_due())
            return await self.shares.recover()
        statuses = UNFINISHED
        if self.passivate_after is not None:
            # Waiting runs stay passivated: the waker reloads them when a timer is due, and a
            # message reloads them at once, so millions of them need not fit in memory.
            statuses = tuple(st for st in UNFINISHED if st is not RunStatus.WAITING)
            found = await self.store.count_runs((RunStatus.WAITING,))
            self._passivated += found
            self.telemetry.passivated_found(found)
            self.background(self._wake_due())
        pending = self._unrecovered
        listed: list[RunRecord] = []
        for rec in await self.store.list_runs(statuses=statuses):
            if rec.workflow not in self._registry:
                log.error(
                    "run %s needs workflow %r, which is not registered; it stays %s until a runtime "
                    "that registers it opens this database",
                    rec.run_id,
                    rec.workflow,
                    rec.status.value,
                    extra={"run_id": rec.run_id},
                )
                continue
            pending[rec.run_id] = rec
            listed.append(rec)
        wave: list[str] = []
        try:
            for rec in listed:
                # Still listed: nothing has loaded it meanwhile, so the listed record is still
                # its current one (no actor here has held the run).
                if pending.pop(rec.run_id, None) is None or rec.run_id in self._refs:
                    continue
                if self.closed:
                    break
                self.spawn(rec, "recovered after a process restart")
                wave.append(rec.run_id)
                if len(wave) >= RECOVERY_WAVE:
                    await self._until_loaded(wave)
                    wave.clear()
        finally:
            pending.clear()
        return len(listed)

    async def _until_loaded(self, wave: list[str]) -> None:
        """Until every run of ``wave`` has loaded its snapshot, or stopped."""
        i = 0
        while i < len(wave):
            actor = self._actors.get(wave[i])
            if actor is None or actor.loaded:
                i += 1
            elif self.closed:
                return
            else:
                # Its reads are on the store's threads; polling (a few hundred times for a
                # wave) costs less than a notification from each of thousands of runs.
                await asyncio.sleep(0.001)

    async def wake(self, run_id: str, reason: str) -> None:
        """Load a run that is not in memory (passivated), unless it has ended."""
        if run_id in self._refs or self.closed or not self._owner:
            return
        if self.shares is not None:
            await self.shares.wake(run_id, reason)
            return
        # Listed for recovery and not loaded yet: loaded here and now, and taken off the list
        # before anything is awaited, so its wave does not load it again from the listed
        # record (two actors of one run, the second from a snapshot the first has moved past).
        recovering = self._unrecovered.pop(run_id, None) is not None
        rec = await self.store.get_run(run_id)
        if rec is None or rec.status.finished or rec.workflow not in self._registry or run_id in self._refs:
            return
        if rec.status is RunStatus.QUEUED:
            await self._queued_message(rec)  # it starts when its queue admits it, not now
            return
        if self._passivated and reason.startswith("woken by") and not recovering:
            self._passivated -= 1
        self.spawn(rec, reason)

    async def _queued_message(self, rec: RunRecord) -> None:
        """A message came for a QUEUED run: a cancel ends it in its queue; anything else
        waits in its inbox until it starts."""
        inbox = await self.store.get_inbox(rec.run_id)
        cancel = next((m for _, m in inbox if type(m) is CancelMessage), None)
        if cancel is None:
            return
        cap = self.flow.cap
        withdrawn = await self.pacing.withdraw(rec.run_id) or await self.flow.dequeue(rec.run_id)
        if not withdrawn and (cap is None or not await cap.withdraw(rec.run_id)):
            return  # admitted meanwhile: it applies the cancel when it starts
        await self.end_queued(rec.run_id, cancel.reason)

    async def end_queued(self, run_id: str, reason: str | None) -> None:
        """End a QUEUED run (out of its queue already) CANCELLED, never started."""
        rec = await self.store.get_run(run_id)
        if rec is None or rec.status is not RunStatus.QUEUED:
            return
        now = self.clock.time()
        ended = await self.rewrite(
            rec,
            RunCancelled(ts=now, reason=reason),
            status=RunStatus.CANCELLED,
            ended_at=now,
            error=ErrorInfo("Cancelled", reason),
        )
        self.run_finished(ended)

    async def _cancel_quietly(self, run_id: str, reason: str) -> None:
        with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
            await self.cancel_run(run_id, reason)

    async def start_failure_handler(self, failed: RunRecord) -> None:
        """Start the ``on_failure=`` workflow of a run that failed for good (see `_failure`)."""
        await failure.start_handler(self._registry, self.create, failed)

    def _wake_timer_fired(self) -> None:
        self._wake_timer.fired()
        self.background(self._wake_due())

    async def wake_due_now(self) -> None:
        """Reload the passivated runs whose timer is due (the sweep of a shared database)."""
        await wake_due(self.store, self.clock.time(), self.wake)

    async def _wake_due(self) -> None:
        """Reload every passivated run whose timer is due, then wait for the next one."""
        following = await wake_due(self.store, self.clock.time(), self.wake)
        if following is not None:
            self._wake_timer.schedule(following, self._wake_timer_fired)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task owned here (ended by `close`)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """The runtime closes: waiters get `RuntimeClosedError`, background work stops (the
        supervisor stops the runs themselves)."""
        self.closed = True
        for run_id in list(self._waiters):
            self._resolve(run_id, None)
        self._wake_timer.cancel()
        self.pacing.close()
        self._timers.close()
        # Releases of passivated runs too: closing the store unregisters this worker, which
        # gives up every run it still holds.
        releasing = [] if self.shares is None else self.shares.releasing()
        for task in [*self._background, *releasing]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Restarting:
    """A run in memory whose actor is between incarnations (restarting after a crash):
    messages queue in its mailbox for the next one."""

    __slots__ = ("ref", "run_id")

    def __init__(self, run_id: str, ref: ActorRef[Any]) -> None:
        self.run_id = run_id
        self.ref = ref

    @property
    def loaded(self) -> bool:
        return False

    def live_vars(self) -> dict[str, Any] | None:
        return None

    def in_flight(self) -> list[StepStarted]:
        return []

    def callback_refusal(self, digest: str) -> str | None:
        raise AssertionError("not loaded")


class _RunChild:
    """How the supervisor builds (and rebuilds) one run's actor (a `ChildSpec`): one object per
    run rather than three callables, since there can be 100,000 of them alive."""

    __slots__ = ("crash", "reason", "record", "run_id", "runs")

    def __init__(self, runs: Runs, record: RunRecord, reason: str | None) -> None:
        self.runs = runs
        self.run_id = record.run_id
        self.record: RunRecord | None = record
        self.reason = reason
        self.crash = ""

    def build(self) -> RunActor:
        record, self.record = self.record, None
        reason = self.reason if record is not None else f"restarted after a crash: {self.crash}"
        actor = RunActor(self.runs, self.run_id, record, reason)
        self.runs._actors[self.run_id] = actor
        return actor

    async def on_crash(self, exc: BaseException, restarts: int) -> None:
        self.crash = f"{type(exc).__name__}: {exc}"  # the history's RunResumed says why
        log.warning("run %s crashed (restart %d): %r", self.run_id, restarts, exc, extra={"run_id": self.run_id})

    async def on_give_up(self, exc: BaseException, restarts: int) -> None:
        log.error("run %s crashed too often; failing it: %r", self.run_id, exc, extra={"run_id": self.run_id})
        try:
            await self.runs.fail_crash_loop(self.run_id, exc, restarts)
        except Exception:
            # Logged here, with the run id, rather than by the supervisor, which knows only actors.
            log.exception("run %s could not be marked FAILED", self.run_id, extra={"run_id": self.run_id})
