"""`Runtime`: starting, observing, steering and recovering runs (opened by `open_runtime`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from .._errors import (
    CallbackTokenError,
    NotRegisteredError,
    RedriveError,
    RunAlreadyFinishedError,
    RunConflictError,
    RunNotFoundError,
    RuntimeClosedError,
    StoreError,
    WorkflowNotFoundError,
)
from ..actors import ActorRef, ActorStoppedError, Clock, Supervisor, TimerHandle
from ..persistence import (
    UNFINISHED,
    AnyEvent,
    CallbackCompleted,
    CallbackFailed,
    Custom,
    ErrorInfo,
    InboxMessage,
    RunFailed as RunFailedEvent,
    RunRecord,
    RunStarted,
    RunStatus,
    Store,
)
from ._asl_run import DETACHED_KEY, PARENT_KEY, AslWorkflow, asl_workflows
from ._definitions import WorkflowDef
from ._handles import RunHandle, RunInfo
from ._run import RunActor
from ._run_state import Cancel, Deliver, RunMessage
from ._telemetry import Telemetry
from ._tokens import digest_token, token_run_id
from .asl import StateMachine, prepare_redrive

log = logging.getLogger("wayline")

T = TypeVar("T")

#: A registered workflow, as the runtime runs it (state machines are wrapped in one).
Workflow = WorkflowDef[Any, Any]


class Runtime:
    """The embedded engine. Create it with `open_runtime`; all methods are coroutine-safe."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        *,
        workflows: Iterable[WorkflowDef[Any, Any] | StateMachine],
        clock: Clock,
        max_concurrent_activities: int | None,
        passivate_after: float | None = None,
        owner: bool = True,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.store = store
        self._passivate_after = passivate_after
        self._owner = owner  # runs runs (recover=True), not just a client of the database
        self._wake_timer: TimerHandle | None = None
        self._wake_at: float | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.clock = clock
        self._supervisor = supervisor
        self._workflows: dict[str, Workflow] = {}
        self._sources: dict[str, object] = {}  # what the user registered, by name
        given = list(workflows)
        machines = {m.name: m for m in given if isinstance(m, StateMachine)}
        # With the machines their distributed Maps run per item: those child runs are recovered by name.
        wrapped = asl_workflows(machines, self)
        for wf in given:
            if isinstance(wf, StateMachine):
                self._workflows[wf.name] = wrapped[wf.name]
            elif isinstance(wf, WorkflowDef):
                self._workflows[wf.name] = wf
            else:
                raise NotRegisteredError(wf, "workflow")
            self._sources[wf.name] = wf
        for name, item in wrapped.items():
            if name in machines:
                continue
            if name in self._workflows:
                raise WorkflowNotFoundError(name, tuple(self._workflows), other_definition=True)
            self._workflows[name] = item
            self._sources[name] = item.machine
        self._limiter = asyncio.Semaphore(max_concurrent_activities) if max_concurrent_activities else None
        self._live: dict[str, ActorRef[RunMessage]] = {}
        self._actors: dict[str, RunActor] = {}  # the current incarnation of each live run
        # Futures for callers of RunHandle.result(), resolved with the final record by the
        # run's actor (None: the runtime closed first), so waiting on a live run costs no
        # store read. One future per caller: a caller giving up cancels only its own.
        self._finished: dict[str, list[asyncio.Future[RunRecord | None]]] = {}
        self._closed = False
        self._callback_claims: set[str] = set()  # completions being committed right now
        self._telemetry = Telemetry(self, tracer_provider, meter_provider)

    # --- registry ------------------------------------------------------------------------

    def _workflow(self, name: str, *, run_id: str | None = None) -> Workflow:
        wf = self._workflows.get(name)
        if wf is None:
            raise WorkflowNotFoundError(name, tuple(self._workflows), run_id=run_id)
        return wf

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError()

    # --- starting and supervising runs ---------------------------------------------------

    async def start(
        self, workflow: WorkflowDef[Any, T] | StateMachine | str, input: Any = None, *, run_id: str | None = None
    ) -> RunHandle[T]:
        """Start a run of ``workflow`` on ``input``, durably, and return its handle.

        Idempotent on ``run_id``: if a run with that id exists (running or finished), no new
        run starts and the handle refers to the existing one.

        Raises:
            WorkflowNotFoundError: the workflow was not passed to ``open_runtime``.
            RunConflictError: ``run_id`` exists as a run of another workflow.
            PayloadError: ``input`` is not storable data.
        """
        self._check_open()
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(name, str):
            raise NotRegisteredError(workflow, "workflow")
        wf = self._workflow(name)
        if not isinstance(workflow, str) and workflow is not self._sources[name]:
            raise WorkflowNotFoundError(name, tuple(self._workflows), other_definition=True)
        run_id = run_id or uuid.uuid4().hex
        await self._create(wf, input, run_id)
        return RunHandle(self, run_id)

    async def _start_child(self, workflow: str, input: Any, *, run_id: str, metadata: dict[str, Any]) -> None:
        """Start the run ``run_id`` of ``workflow`` for another run, which ``metadata`` links;
        nothing if it exists (a parent restarted after a crash finds its child again).

        Raises:
            WorkflowNotFoundError: ``workflow`` is not registered.
            RunConflictError: ``run_id`` exists as a run of another workflow.
        """
        self._check_open()
        await self._create(self._workflow(workflow), input, run_id, metadata)

    async def _create(self, wf: Workflow, input: Any, run_id: str, metadata: dict[str, Any] | None = None) -> None:
        if run_id in self._live:
            return
        now = self.clock.time()
        span, trace_context = self._telemetry.start_run(wf.name, wf.version, run_id)
        record = RunRecord(
            run_id=run_id,
            workflow=wf.name,
            version=wf.version,
            status=RunStatus.RUNNING,
            input=input,
            created_at=now,
            updated_at=now,
            tail=(RunStarted(ts=now, workflow=wf.name, version=wf.version, input=input),),
            metadata=metadata or {},
            trace=trace_context,
        )
        try:
            existing = await self.store.create_run(record, [])
        except BaseException as exc:
            self._telemetry.start_failed(span, exc)
            raise
        self._telemetry.run_created(span, run_id, wf.name, existing is None)
        if existing is not None:
            if existing.workflow != wf.name:
                raise RunConflictError(run_id, existing.workflow, wf.name)
            return
        if run_id not in self._live:
            self._spawn(record, None)

    async def _cancel_children(self, parent: RunRecord, reason: str | None) -> None:
        """Cancel the unfinished child runs a run waits for (a state machine's ``.sync``
        executions and distributed Map items) before it ends cancelled; detached children
        (``states:startExecution`` without ``.sync``) go on. A crash before the parent's end
        is committed repeats this on restart, so no waited-for child outlives its parent."""
        wf = self._workflows.get(parent.workflow)
        if not isinstance(wf, AslWorkflow) or not wf.waits_on_children:
            return  # nothing to look for: spare the scan of the store
        children = [
            rec.run_id
            for rec in await self.store.list_runs(statuses=UNFINISHED)
            if rec.metadata.get(PARENT_KEY) == parent.run_id and not rec.metadata.get(DETACHED_KEY)
        ]

        async def cancel(run_id: str) -> None:
            with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
                await self.cancel(run_id, reason)

        await asyncio.gather(*(cancel(run_id) for run_id in children))

    def _spawn(self, record: RunRecord, reason: str | None) -> None:
        child = _RunChild(self, record, reason)
        self._live[record.run_id] = self._supervisor.spawn(
            record.run_id, child.build, on_crash=child.on_crash, on_give_up=child.on_give_up
        )

    async def _fail_crash_loop(self, run_id: str, exc: BaseException, restarts: int) -> None:
        self._live.pop(run_id, None)
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
        failed = await self._rewrite(
            rec,
            RunFailedEvent(ts=now, error=error.error, cause=error.cause),
            status=RunStatus.FAILED,
            error=error,
            ended_at=now,
        )
        self._run_finished(run_id, failed)

    # --- passivation ---------------------------------------------------------------------

    def _run_passivated(self, run_id: str, wake_at: float | None, seen: int = 0) -> None:
        """A waiting run left memory: wake it at its due time, and at once if a message
        newer than ``seen`` (the last inbox seq it took in) reached its inbox while it was
        leaving (a tell to a stopping actor is dropped). Older ones are signals it keeps for
        a later wait: they are in its inbox, so they must not reload it again and again."""
        self._live.pop(run_id, None)
        if wake_at is not None:
            self._schedule_wake(wake_at)
        self._spawn_background(self._reactivate_if_messages(run_id, seen))

    def _spawn_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reactivate_if_messages(self, run_id: str, seen: int) -> None:
        if any(seq > seen for seq, _ in await self.store.get_inbox(run_id)):
            await self._reactivate(run_id, "woken by a message")

    async def _reactivate(self, run_id: str, reason: str) -> None:
        if run_id in self._live or self._closed or not self._owner:
            return
        rec = await self.store.get_run(run_id)
        if rec is None or rec.status.finished or rec.workflow not in self._workflows or run_id in self._live:
            return
        self._spawn(rec, reason)

    def _schedule_wake(self, when: float) -> None:
        if self._wake_at is not None and self._wake_at <= when:
            return
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        self._wake_at = when
        self._wake_timer = self.clock.call_at(when, lambda: self._spawn_background(self._wake_due_runs()))

    async def _wake_due_runs(self) -> None:
        """Reload every passivated run whose timer is due, then wait for the next one."""
        self._wake_at = self._wake_timer = None
        now = self.clock.time()
        while True:
            due = await self.store.due_runs(now, limit=1000)
            for run_id, _ in due:
                await self._reactivate(run_id, "woken by its timer")
            if len(due) < 1000:
                break
        following = await self.store.next_wake(now)
        if following is not None:
            self._schedule_wake(following)

    async def _rewrite(self, rec: RunRecord, event: AnyEvent, **changes: Any) -> RunRecord:
        """Commit a change to a run that no actor holds (failing a crash loop, a redrive): its
        waits cleared, its pending tail and ``event`` moved to the history; returns the record."""
        new = msgspec.structs.replace(
            rec, updated_at=event.ts, waits=(), tail=(), history_seq=rec.history_seq + 1, **changes
        )
        await self.store.checkpoint(new, [*rec.tail, event])
        return new

    def _run_finished(self, run_id: str, record: RunRecord | None = None) -> None:
        self._live.pop(run_id, None)
        if record is not None:
            self._telemetry.run_finished(record)
        for fut in self._finished.pop(run_id, ()):
            if not fut.done():
                # Closing (None) is a result rather than an exception, which asyncio would
                # report as "never retrieved" if the waiter had already gone away.
                fut.set_result(record)

    async def _wait_finished(self, run_id: str) -> RunRecord:
        while True:
            if run_id not in self._live:
                rec = await self.store.get_run(run_id)
                if rec is None:
                    raise RunNotFoundError(run_id)
                if rec.status.finished:
                    return rec
                if rec.workflow not in self._workflows:
                    # Nothing here can run it, so waiting would never end.
                    raise WorkflowNotFoundError(rec.workflow, tuple(self._workflows), run_id=run_id)
            self._check_open()
            fut: asyncio.Future[RunRecord | None] = asyncio.get_running_loop().create_future()
            waiters = self._finished.setdefault(run_id, [])
            waiters.append(fut)
            try:
                done = await fut
            except asyncio.CancelledError:
                if fut in waiters:
                    waiters.remove(fut)
                raise
            if done is None:
                raise RuntimeClosedError()
            return done

    async def _recover(self) -> int:
        """Restart every unfinished run in the store; returns how many."""
        count = 0
        statuses = UNFINISHED
        if self._passivate_after is not None:
            # Waiting runs stay passivated: the waker reloads them when a timer is due, and a
            # message reloads them at once, so millions of them need not fit in memory.
            statuses = tuple(st for st in UNFINISHED if st is not RunStatus.WAITING)
            self._telemetry.passivated_found(await self.store.count_runs((RunStatus.WAITING,)))
            self._spawn_background(self._wake_due_runs())
        for rec in await self.store.list_runs(statuses=statuses):
            if rec.workflow not in self._workflows:
                log.error(
                    "run %s needs workflow %r, which is not registered; it stays %s until a runtime "
                    "that registers it opens this database",
                    rec.run_id,
                    rec.workflow,
                    rec.status.value,
                    extra={"run_id": rec.run_id},
                )
                continue
            self._spawn(rec, "recovered after a process restart")
            count += 1
        return count

    # --- observing runs ------------------------------------------------------------------

    def get_handle(self, run_id: str) -> RunHandle[Any]:
        """A handle for an existing run id (checked when used)."""
        return RunHandle(self, run_id)

    async def describe(self, run_id: str) -> RunInfo:
        """Status, vars, output or error, version and timestamps of a run, and whether the
        store can write now (``store_health``: while it cannot, runs wait instead of failing).

        Raises:
            RunNotFoundError: no such run.
        """
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id)
        actor = self._actors.get(run_id)
        if actor is not None and not rec.status.finished and hasattr(actor, "ctx"):
            # A live run: its current vars, not those of its last checkpoint.
            info = RunInfo.from_record(rec, vars=actor.ctx.vars)
        else:
            info = RunInfo.from_record(rec)
        return dataclasses.replace(info, store_health=self.store.health())

    async def list_runs(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs, oldest first, optionally filtered.

        Args:
            status: one status or several (names or `RunStatus` members).
            workflow: a workflow name.
            since: only runs created at or after this time (epoch seconds).
            newest_first: order by creation time, the most recent first.
            limit: at most this many runs; only those are read from the store.
        """
        statuses: list[RunStatus] | None = None
        if status is not None:
            items = [status] if isinstance(status, (str, RunStatus)) else list(status)
            try:
                statuses = [RunStatus(str(s).upper()) for s in items]
            except ValueError:
                valid = ", ".join(s.value for s in RunStatus)
                raise ValueError(f"unknown run status in {status!r}; use one of {valid}") from None
        records = await self.store.list_runs(
            statuses=statuses, workflow=workflow, since=since, newest_first=newest_first, limit=limit
        )
        return [RunInfo.from_record(r) for r in records]

    async def history(self, run_id: str) -> AsyncIterator[AnyEvent]:
        """The run's events, oldest first.

        Raises:
            RunNotFoundError: no such run.
        """
        if await self.store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        for event in await self.store.get_history(run_id):
            yield event

    # --- controlling runs ----------------------------------------------------------------

    async def _check_unfinished(self, run_id: str, action: str) -> None:
        """Raise unless the run exists and has not ended. A run live in this runtime is known
        to be unfinished, so only others cost a read."""
        self._check_open()
        if run_id in self._live:
            return
        await self._check_stored(run_id, action)

    async def _check_stored(self, run_id: str, action: str) -> None:
        """Raise unless the stored run exists and has not ended."""
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id)
        if rec.status.finished:
            raise RunAlreadyFinishedError(run_id, rec.status.value, action)

    async def _append(self, run_id: str, message: InboxMessage, action: str) -> int:
        """Commit a message for a run; the store refuses it if the run ended in the meantime
        (its final checkpoint committed after `_check_unfinished` looked)."""
        seq = await self.store.append_inbox(run_id, message)
        if seq is None:
            # The store, not `_live`: the run's actor may not have stopped yet.
            await self._check_stored(run_id, action)
            raise StoreError(f"the store refused a message for run {run_id!r}, which has not ended")
        return seq

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send signal ``name`` with ``payload`` to a run; returns once it is durable.

        The run receives it at its next ``ctx.wait_signal(name)``, or at once if it is
        waiting for it; signals that arrive early are kept, in order. Signals the run never
        waits for are deleted when it ends.

        Raises:
            RunNotFoundError: no such run.
            RunAlreadyFinishedError: the run has ended.
            PayloadError: ``payload`` is not storable data.
        """
        action = f"signal {name!r} to"
        await self._check_unfinished(run_id, action)
        seq = await self._append(
            run_id, InboxMessage(kind="signal", name=name, payload=payload, ts=self.clock.time()), action
        )
        ref = self._live.get(run_id)
        if ref is None:
            await self._reactivate(run_id, "woken by a message")  # passivated: reload it
            return
        try:
            ref.tell(Deliver(seq, name, payload))
        except ActorStoppedError:
            # Stopping (passivating or ending): the inbox keeps it for the next incarnation.
            await self._reactivate(run_id, "woken by a message")

    async def complete_callback(self, token: str, output: Any = None) -> None:
        """Complete the ``ctx.wait_for_callback`` (or ASL ``.waitForTaskToken`` task) that
        handed out ``token``: it returns ``output``. Returns once the completion is durable.

        Raises:
            CallbackTokenError: no run waits on this token (malformed, never issued, already
                completed or timed out, or its run has ended).
            PayloadError: ``output`` is not storable data.
        """
        await self._send_callback(token, {"op": "complete", "output": output})

    async def fail_callback(self, token: str, error: str, cause: str | None = None) -> None:
        """Fail the callback wait that handed out ``token``: the workflow gets `CallbackError`
        (an ASL task, a ``StatesError``) with ``error`` and ``cause``. Durable on return.

        Raises:
            CallbackTokenError: as for `complete_callback`.
        """
        if not isinstance(error, str) or not error:
            raise ValueError("fail_callback needs an error name (a non-empty string, e.g. 'Rejected')")
        await self._send_callback(token, {"op": "fail", "error": error, "cause": cause})

    async def heartbeat(self, token: str) -> None:
        """Tell the run waiting on ``token`` that the work it waits for is still alive: its
        heartbeat timeout starts again from now.

        Raises:
            CallbackTokenError: as for `complete_callback`.
        """
        await self._send_callback(token, {"op": "heartbeat"})

    async def _send_callback(self, token: str, payload: dict[str, Any]) -> None:
        self._check_open()
        run_id = token_run_id(token)
        if run_id is None:
            raise CallbackTokenError(
                "this is not a wayline callback token (they look like 'wlcb1.<run>.<secret>', as "
                "ctx.wait_for_callback and $$.Task.Token hand them out)"
            )
        digest = digest_token(token)
        final = payload["op"] != "heartbeat"
        if final and digest in self._callback_claims:
            raise CallbackTokenError("this token's callback has already been completed", run_id)
        actor = self._actors.get(run_id)
        if actor is not None and actor._loaded:
            reason = actor.callback_state(digest)
        else:
            reason = await self._stored_callback_state(run_id, digest)
        if reason is not None:
            raise CallbackTokenError(reason, run_id)
        now = self.clock.time()
        if final:
            self._callback_claims.add(digest)
        try:
            seq = await self.store.append_inbox(
                run_id, InboxMessage(kind="callback", name=digest, payload=payload, ts=now)
            )
        finally:
            self._callback_claims.discard(digest)
        if seq is None:  # the run ended while the message was being committed
            raise CallbackTokenError(await self._stored_callback_state(run_id, digest) or "its run has ended", run_id)
        actor = self._actors.get(run_id)
        if actor is not None and run_id in self._live:
            actor.callback_arrived(seq, digest, payload, now)
        else:
            await self._reactivate(run_id, "woken by a message")  # passivated: it reads its inbox

    async def _stored_callback_state(self, run_id: str, digest: str) -> str | None:
        """Why a run not live here does not accept token ``digest`` (None if it does)."""
        rec = await self.store.get_run(run_id)
        if rec is None:
            return f"its run {run_id!r} does not exist"
        if not rec.status.finished and any(
            w.kind == "callback" and (w.key == digest or digest in w.keys) for w in rec.waits
        ):
            for _, msg in await self.store.get_inbox(run_id):
                if msg.kind == "callback" and msg.name == digest and msg.payload.get("op") != "heartbeat":
                    return "this token's callback has already been completed (the run has not applied it yet)"
            return None
        ended = f"; its run {run_id!r} has ended ({rec.status.value})" if rec.status.finished else ""
        for ev in [*(await self.store.get_history(run_id)), *rec.tail]:
            if isinstance(ev, (CallbackCompleted, CallbackFailed)) and ev.token_hash == digest:
                if isinstance(ev, CallbackFailed) and ev.error in ("States.Timeout", "States.HeartbeatTimeout"):
                    return f"this token's callback timed out ({ev.error}){ended}"
                return f"this token's callback has already been completed{ended}"
        if ended:
            return ended[2:].replace("its run", "the token's run", 1)
        return f"run {run_id!r} is not waiting on this token (it was never issued, or it was already used)"

    async def redrive(self, run_id: str) -> RunHandle[Any]:
        """Restart a FAILED state machine run from the state that failed (as Step Functions
        redrives): finished states, Map items and Parallel branches are not run again.

        Raises:
            RunNotFoundError: no such run.
            RedriveError: the run did not fail, or is not a state machine run.
        """
        self._check_open()
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id)
        if rec.status is not RunStatus.FAILED:
            raise RedriveError(run_id, f"only FAILED runs can be redriven, and it is {rec.status.value}")
        wf = self._workflow(rec.workflow, run_id=run_id)
        if wf.kind != "asl" or not isinstance(rec.state, dict):
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
        redriven = await self._rewrite(
            rec, event, status=RunStatus.RUNNING, output=None, error=None, ended_at=None, state=state, metadata=metadata
        )
        self._spawn(redriven, "redriven")
        return RunHandle(self, run_id)

    async def _poll_inbox(self, interval: float) -> None:
        """Deliver messages that other processes (the CLI, other replicas) commit to the inbox.

        Messages sent through this runtime are delivered at once as well; the run actor drops
        a message it has already seen (by its sequence number), so both paths are safe.
        """
        last = 0
        rows = await self.store.inbox_since(0, limit=1)
        if rows:
            last = rows[0][0] - 1
        while True:
            for seq, run_id, msg in await self.store.inbox_since(last):
                last = seq
                ref = self._live.get(run_id)
                if ref is None:
                    await self._reactivate(run_id, "woken by a message")  # loads its inbox
                    continue
                try:
                    if msg.kind == "signal":
                        ref.tell(Deliver(seq, msg.name, msg.payload))
                    elif msg.kind == "callback":
                        actor = self._actors.get(run_id)
                        if actor is not None:
                            actor.callback_arrived(seq, msg.name, msg.payload, msg.ts)
                    elif msg.kind == "cancel":
                        actor = self._actors.get(run_id)
                        if actor is not None:
                            actor.request_cancel(msg.payload)
                        ref.tell(Cancel(msg.payload, seq))
                except ActorStoppedError:
                    pass
            await asyncio.sleep(interval)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Cancel a run: its waiting or running step is cancelled and the body gets
        `RunCancelledError` at that await (it may run compensation steps); the run ends
        CANCELLED.

        Raises:
            RunNotFoundError: no such run.
            RunAlreadyFinishedError: the run has already ended.
        """
        await self._check_unfinished(run_id, "cancel")
        # Committed before it is delivered: a crash from here on cannot lose the request.
        seq = await self._append(run_id, InboxMessage(kind="cancel", payload=reason, ts=self.clock.time()), "cancel")
        ref = self._live.get(run_id)
        if ref is None:
            await self._reactivate(run_id, "woken by a message")  # it applies the cancel on load
            return
        if ref is not None:
            actor = self._actors.get(run_id)
            if actor is not None:
                actor.request_cancel(reason)
            try:
                await ref.ask(Cancel(reason, seq))
            except ActorStoppedError:
                # The run ended first (the interrupt itself may have ended it): fine if it
                # ended cancelled, otherwise the cancel came too late.
                ended = await self.store.get_run(run_id)
                if ended is not None and ended.status is not RunStatus.CANCELLED:
                    raise RunAlreadyFinishedError(run_id, ended.status.value, "cancel") from None


class _RunChild:
    """How the supervisor builds (and rebuilds) one run's actor: one object per run rather
    than three closures, since there can be 100,000 of them alive."""

    __slots__ = ("crash", "reason", "record", "rt", "run_id")

    def __init__(self, rt: Runtime, record: RunRecord, reason: str | None) -> None:
        self.rt = rt
        self.run_id = record.run_id
        self.record: RunRecord | None = record
        self.reason = reason
        self.crash = ""

    def build(self) -> RunActor:
        record, self.record = self.record, None
        reason = self.reason if record is not None else f"restarted after a crash: {self.crash}"
        return RunActor(self.rt, self.run_id, record, reason)

    async def on_crash(self, exc: BaseException, restarts: int) -> None:
        self.crash = f"{type(exc).__name__}: {exc}"  # the history's RunResumed says why
        log.warning("run %s crashed (restart %d): %r", self.run_id, restarts, exc, extra={"run_id": self.run_id})

    async def on_give_up(self, exc: BaseException, restarts: int) -> None:
        log.error("run %s crashed too often; failing it: %r", self.run_id, exc, extra={"run_id": self.run_id})
        try:
            await self.rt._fail_crash_loop(self.run_id, exc, restarts)
        except Exception:
            # Logged here, with the run id, rather than by the supervisor, which knows only actors.
            log.exception("run %s could not be marked FAILED", self.run_id, extra={"run_id": self.run_id})
