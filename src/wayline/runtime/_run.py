"""The run actor: one per live run, owning its context and driving its workflow body.

The body is a coroutine the actor steps with ``send``/``throw`` inside its own task. Each
command the body yields is resolved from the journal (on replay) or performed: a single step
is awaited by the actor itself (interruptible by a cancel or its timeout), the steps of a
gather/map run as tasks whose outcomes come back through the mailbox, and waits (timers,
signals, retry backoff) are durable entries of the snapshot. Each outcome is checkpointed
(snapshot + new history events, one transaction, group-committed with other runs) before
the body resumes. A crash anywhere in between loses at most the step in flight, which runs
again (at least once, with the same idempotency key).

This module has the actor's loop, its lifecycle, the inline step and the checkpoints; its
mixins hold the rest: `StepAttempts` (gathered steps, sleeps, retries, failures, in
``_run_steps``), `SignalWaits` (signals and passivation, ``_run_waits``) and `CallbackWaits`
(callback tokens, ``_run_callbacks``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import ActivityTimeoutError, NonDeterminismError, PayloadError
from ..actors import Actor, TimerHandle
from ..actors._actor import answer, fail, message_of
from ..persistence import (
    WAIT_FOR_STORE,
    AnyEvent,
    CallbackCompleted,
    CallbackFailed,
    Custom,
    ErrorInfo,
    RunCancelled,
    RunFailed,
    RunRecord,
    RunResumed,
    RunStatus,
    RunSucceeded,
    SignalReceived,
    SignalTimedOut,
    StepFailed,
    StepStarted,
    StepSucceeded,
    Wait,
    encode,
)
from ._commands import CALLBACK_COMMANDS, Gather, Sleep, Step, WaitSignal
from ._context import RunContext
from ._definitions import WorkflowDef
from ._run_callbacks import CallbackWaits
from ._run_state import (
    KICK,
    TAIL_MAX,
    CallbackReady,
    Cancel,
    Deliver,
    Kick,
    Outcome,
    Passivate,
    RunCancelledError,
    RunMessage,
    StepDone,
    TimerFired,
    _as_replayed,
    _failure,
    _Group,
    _Journaled,
    _journaled_outcome,
    _Pending,
    _shaped,
)
from ._run_steps import StepAttempts
from ._run_waits import SignalWaits
from ._stepinfo import StepInfo, _current as _current_step
from ._telemetry import Segment

if TYPE_CHECKING:
    from ._runtime import Runtime

log = logging.getLogger("wayline.run")



class RunActor(SignalWaits, StepAttempts, CallbackWaits, Actor[RunMessage]):
    """One live run. Created by the runtime's supervisor, again after each crash."""

    def __init__(self, rt: Runtime, run_id: str, record: RunRecord | None, reason: str | None) -> None:
        self.rt = rt
        self.run_id = run_id
        self._initial = record
        self._reason = reason
        self.record: RunRecord
        self.ctx: RunContext
        self._coro: Any = None
        self._journal: dict[int, _Journaled] = {}
        self._failed_attempts: dict[int, int] = {}
        self._restored_waits: dict[int, Wait] = {}
        self._next_index = 0
        self._steps = 0
        self._active: dict[int, _Pending] = {}
        self._waits: dict[int, Wait] = {}
        self._events: list[AnyEvent] = []
        self._group: _Group | None = None
        self._cancel: tuple[str | None, int] | None = None
        self._task: asyncio.Task[Any] | None = None  # this incarnation's task
        self._inline_task: asyncio.Task[Any] | None = None
        self._interrupted: str | None = None
        self._cancel_requested = False
        self._cancel_reason: str | None = None
        self._direct = False
        self._waits_dirty = False  # a wait was added that no checkpoint has recorded yet
        self._signals: dict[str, deque[tuple[int, Any]]] = {}  # delivered, not yet consumed
        self._seen: set[int] = set()  # inbox messages already delivered (restarts redeliver)
        self._consumed: list[int] = []  # inbox messages to delete with the next checkpoint
        self._passivate_timer: TimerHandle | None = None
        self._passivated = False
        self._signal_waiters: dict[str, int] = {}  # signal name -> journal index waiting on it
        self._finished = False
        self._loaded = False  # on_start has read the snapshot and the inbox
        self._init_callbacks()
        self._tel: Segment | None = None  # this incarnation's telemetry, if any is configured

    # --- lifecycle -----------------------------------------------------------------------

    async def on_start(self) -> None:
        rt = self.rt
        WAIT_FOR_STORE.set(True)  # this run's writes wait out an outage of the store, as it does
        record = self._initial or await rt.store.get_run(self.run_id)
        self._initial = None
        if record is None:  # deleted under us: nothing to run
            self.stop()
            return
        self.record = record
        self._tel, self.record = rt._telemetry.open_segment(record, self._reason)
        rt._actors[self.run_id] = self
        wf = rt._workflow(record.workflow, run_id=self.run_id)
        assert isinstance(wf, WorkflowDef)
        if record.history_seq:
            self._load_journal(await rt.store.get_history(self.run_id))
        else:
            self._load_journal(list(record.tail))
        self._restored_waits = {w.step: w for w in record.waits}
        pending_cancel: tuple[Any, int] | None = None
        # A fresh run's messages all come through its mailbox (its ref exists before rt.start
        # returns); only a recovered or restarted run can have messages waiting in the store.
        inbox = await rt.store.get_inbox(self.run_id) if self._reason is not None else []
        for seq, msg in inbox:
            if msg.kind == "signal":
                self._buffer(seq, msg.name, msg.payload)
            elif msg.kind == "callback":
                self.callback_arrived(seq, msg.name, msg.payload, msg.ts)
            elif msg.kind == "cancel" and record.metadata.get("cancel") is None:
                # Accepted before a crash, not applied yet: apply it once the body has replayed
                # to where it blocks (Cancel is queued after Kick, below).
                self._cancel_requested = True
                self._cancel_reason = msg.payload
                pending_cancel = (msg.payload, seq)
        cancel = record.metadata.get("cancel")
        if isinstance(cancel, dict):
            self._cancel = (cancel.get("reason"), int(cancel.get("index", -1)))
        self._steps = record.steps
        self.ctx = RunContext(self.run_id, record.workflow, record.version, rt.clock)
        self.ctx.started_at = record.created_at
        self.ctx.saved_state = record.state
        if self._reason is not None:
            self._events.append(RunResumed(ts=rt.clock.time(), reason=self._reason))
        # The body sees its input as stored data, shaped by its annotation, whether this is
        # the first run (the caller's object) or a restart (decoded from the store).
        body = wf.body(self.ctx, _shaped(_as_replayed(record.input), wf.input_type))
        self._direct = wf.kind != "code"
        self._coro = body  # a coroutine: stepped with send/throw, or awaited if direct
        if self._direct:
            self.ctx._save_state = self._save_state
        self.ctx._waits = self
        self.ctx._segment = self._tel
        self._loaded = True
        self.ref.tell(KICK)
        if pending_cancel is not None:
            self.ref.tell(Cancel(*pending_cancel))

    async def on_stop(self, error: BaseException | None) -> None:
        if self.rt._actors.get(self.run_id) is self:
            del self.rt._actors[self.run_id]
        if self._passivate_timer is not None:
            self._passivate_timer.cancel()
        self._drop_active()
        if self._passivated:
            self.rt._run_passivated(self.run_id, self.record.wake_at, max(self._seen, default=0))
        if self._tel is not None:
            self._tel.close(error, self._passivated)
        if self._coro is not None and not self._finished:
            self._coro.close()
        self._unlink()

    def _unlink(self) -> None:
        """Break the reference cycles of this incarnation (actor, context, body) as it ends.

        The context points back at the actor, so without this an ended run is cyclic garbage:
        its dozen objects wait in the oldest GC generation for a full collection, which then
        walks them all. Unlinked, reference counting frees a run as soon as it stops (with
        runs ending all the time, full collections took 40% less time).
        """
        self._coro = None
        self._task = self._inline_task = None
        if self._loaded:
            ctx = self.ctx
            ctx._waits = ctx._save_state = ctx._segment = None

    def _drop_active(self) -> None:
        """Cancel every step task and timer of this incarnation."""
        for p in self._active.values():
            if p.task is not None:
                p.task.cancel()
            if p.timer is not None:
                p.timer.cancel()
        self._active.clear()
        self._drop_callbacks()

    def _load_journal(self, history: list[AnyEvent]) -> None:
        for ev in history:
            if isinstance(ev, StepSucceeded):
                self._journal[ev.index] = _Journaled(ev.step, result=ev.result, attempts=ev.attempt)
            elif isinstance(ev, SignalReceived):
                self._journal[ev.index] = _Journaled(f"signal:{ev.name}", result=ev.payload)
            elif isinstance(ev, CallbackCompleted):
                self._journal[ev.index] = _Journaled(f"callback:{ev.step}", result=ev.result)
            elif isinstance(ev, CallbackFailed):
                self._journal[ev.index] = _Journaled(f"callback:{ev.step}", error=ErrorInfo(ev.error, ev.cause))
            elif isinstance(ev, SignalTimedOut):
                self._journal[ev.index] = _Journaled(f"signal:{ev.name}", error=ErrorInfo("SignalTimeout"))
            elif isinstance(ev, StepFailed):
                if ev.final:
                    self._journal[ev.index] = _Journaled(
                        ev.step, error=ErrorInfo(ev.error, ev.cause), attempts=ev.attempt
                    )
                else:
                    self._failed_attempts[ev.index] = ev.attempt

    # --- the actor loop ------------------------------------------------------------------

    async def _main(self) -> None:
        """One incarnation: take a message, turn it into an outcome for the body, step the
        body until it blocks or ends; repeat until the run stops.

        This one loop is the whole hot path. A fresh step (the common command) runs its
        attempt through `_attempt_inline` and its commit is awaited right here, so a run
        waiting on its checkpoint holds this frame and its body's and no others: at 10,000
        live runs every frame and object a waiting run keeps is garbage-collector work.
        Everything else (replays, gathers, waits, failures, messages) is in the helpers
        below, which return the outcome the body resumes with (``None``: it stays blocked).
        The semantics are the generic `Actor._main`'s.
        """
        ref = self.ref
        error: BaseException | None = None
        try:
            await self.on_start()
            self._task = asyncio.current_task()
            while not ref._stopping:
                if not ref._mailbox:
                    await ref._mail()
                    continue
                item = ref._mailbox.popleft()
                try:
                    if not self._finished:
                        try:
                            outcome = await self._receive(message_of(item))
                            while outcome is not None:
                                value, exc = outcome
                                try:
                                    cmd = self._coro.throw(exc) if exc is not None else self._coro.send(value)
                                except StopIteration as stop:
                                    await self._finish_ok(stop.value)
                                    break
                                except RunCancelledError as cancelled:
                                    # The error's traceback holds this frame, whose locals held
                                    # the error: dropped, the run is freed without the collector.
                                    outcome = exc = None
                                    await self._finish(RunStatus.CANCELLED, None, None, reason=cancelled.reason)
                                    break
                                except Exception as failed:
                                    outcome = exc = None
                                    await self._finish(RunStatus.FAILED, None, _failure(failed))
                                    break
                                index = self._next_index
                                if type(cmd) is not Step or not self._fresh(index):
                                    outcome = await self._open(cmd)
                                    continue
                                self._next_index = index + 1
                                outcome, commit = await self._attempt_inline(index, cmd, self._attempts(index))
                                if commit is not None:
                                    await commit  # the body resumes only once its step is durable
                        except PayloadError as exc:
                            # A checkpoint could not encode the run's own state (ctx.vars): no retry
                            # or restart can fix that, so the run fails now, with the last vars that
                            # stored.
                            await self._fail_unstorable(exc)
                        if self.rt._passivate_after is not None:
                            self._arm_passivation()
                except BaseException as exc:
                    fail(item, exc, ref.name)
                    raise
                answer(item, None)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self.on_stop(error)

    async def _receive(self, message: RunMessage) -> Outcome | None:
        """Apply one message; the outcome for the body if it unblocks it."""
        match message:
            case StepDone():
                return await self._on_step_done(message)
            case TimerFired():
                return await self._on_timer(message)
            case Kick():
                if self._direct:
                    await self._run_direct()
                    return None
                return None, None
            case Cancel(reason=reason, seq=seq):
                return await self._on_cancel(reason, seq)
            case Deliver():
                return self._on_deliver(message)
            case CallbackReady():
                return await self._on_callback_ready(message)
            case Passivate():
                await self._on_passivate()
        return None

    # --- driving the body ----------------------------------------------------------------

    def _fresh(self, index: int) -> bool:
        """Journal position ``index`` is new work: nothing to replay, restore or cancel there."""
        return index not in self._journal and index not in self._restored_waits and self._cancel is None

    def _attempts(self, index: int) -> int:
        """The number of the next attempt of step ``index`` (failed attempts are journaled)."""
        return self._failed_attempts.get(index, 0) + 1 if self._failed_attempts else 1

    async def _open(self, cmd: Any) -> Outcome | None:
        """Start any command but a fresh step: the outcome if it is already settled, or
        None while the body stays blocked on it."""
        if type(cmd) is WaitSignal:
            return await self._open_signal_wait(cmd)
        if type(cmd) in CALLBACK_COMMANDS:
            return await self._callback_command(cmd)
        if type(cmd) is Step:
            return await self._open_step(cmd)
        try:
            if isinstance(cmd, Gather):
                group = _Group([], single=False, tolerated=cmd.tolerated, max_concurrency=cmd.max_concurrency)
                self._open_group(group, cmd.steps)
            elif isinstance(cmd, Sleep):
                group = _Group([], single=True)
                self._open_sleep(group, cmd)
            elif cmd is None or isinstance(cmd, asyncio.Future):
                return None, TypeError(
                    "a workflow body can only await ctx.run / ctx.gather / ctx.map / ctx.sleep "
                    "(and other ctx.* waits); do other I/O inside an @activity"
                )
            else:
                return None, TypeError(f"a workflow body awaited an unknown object {cmd!r}")
        except NonDeterminismError as exc:
            await self._finish(RunStatus.FAILED, None, ErrorInfo("NonDeterminismError", str(exc)))
            return None
        if self._cancel is not None and group.indices and group.indices[0] == self._cancel[1]:
            # Replaying a cancelled run: the cancellation was delivered at this await.
            self._abandon(group)
            return None, RunCancelledError(self._cancel[0])
        if group.remaining:
            self._group = group
            await self._flush_if_events()
            return None
        return self._group_outcome(group)

    async def _open_step(self, cmd: Step[Any]) -> Outcome | None:
        """A single step that is not plain new work: replayed, cancelled, or restored
        mid-backoff (or new after all, when only a later position is journaled)."""
        try:
            index, entry = self._allocate(cmd.activity.name)
        except NonDeterminismError as exc:
            await self._finish(RunStatus.FAILED, None, ErrorInfo("NonDeterminismError", str(exc)))
            return None
        if entry is not None:
            value, error = _journaled_outcome(entry, self.run_id)
            return _shaped(value, cmd.activity.result_type), error
        if self._cancel is not None and index == self._cancel[1]:
            return None, RunCancelledError(self._cancel[0])
        restored = self._restored_waits.pop(index, None)
        if restored is not None and restored.kind == "retry" and restored.due is not None:
            # Crashed during a retry backoff: wait out the rest of it, then retry.
            pending = _Pending(cmd, None, 0, attempt=self._attempts(index))
            self._active[index] = pending
            self._waits[index] = restored
            self._schedule(index, pending, restored.due)
            await self._flush_if_events()
            return None
        outcome, commit = await self._attempt_inline(index, cmd, self._attempts(index))
        if commit is not None:
            await commit
        return outcome

    async def _run_direct(self) -> None:
        """Await a body that manages its own progress (an ASL run) instead of stepping it.

        The interpreter checkpoints through `_save_state` and resumes from its own snapshot,
        and runs Map items and Parallel branches as tasks of its own, so it is awaited like
        any coroutine. A cancel interrupts the await, as for a step running inline.
        """
        if self._cancel_requested:
            # Accepted before a restart (or before this Kick): the body need not resume to end.
            await self._end_direct_cancelled()
            return
        self._interrupted = None
        self._inline_task = task = asyncio.current_task()
        try:
            output = await self._coro
        except asyncio.CancelledError:
            if self._interrupted != "cancel" or (task is not None and task.uncancel() > 0):
                raise
            await self._end_direct_cancelled()
        except Exception as exc:
            await self._finish(RunStatus.FAILED, None, _failure(exc))
        else:
            await self._finish_ok(output)
        finally:
            self._inline_task = None

    async def _end_direct_cancelled(self) -> None:
        self._cancel = (self._cancel_reason, -1)
        # The child runs it waits for first: a crash in between repeats both on restart.
        await self.rt._cancel_children(self.record, self._cancel_reason)
        await self._finish(RunStatus.CANCELLED, None, None)

    def _save_state(self, state: Any, events: list[dict[str, Any]]) -> Awaitable[None]:
        """Checkpoint a workflow kind's own state (and its history events); await to know it
        is durable. Encoded now: the caller keeps mutating its state object afterwards."""
        raw = msgspec.Raw(encode(state, what=f"state of run {self.run_id!r}", run_id=self.run_id))
        ts = self.rt.clock.time()
        converted: list[AnyEvent] = [Custom(ts=ts, name=str(e.get("type", "Event")), details=e) for e in events]
        return self._checkpoint(converted, state=raw)

    def _allocate(self, name: str) -> tuple[int, _Journaled | None]:
        index = self._next_index
        self._next_index += 1
        entry = self._journal.pop(index, None)
        if entry is not None and entry.name != name:
            raise NonDeterminismError(self.run_id, index, entry.name, name)
        return index, entry

    # --- running attempts ----------------------------------------------------------------

    def request_cancel(self, reason: str | None) -> None:
        """Called by the runtime before it sends `Cancel`: stop a step running inline now,
        and do not start one, so the Cancel message is processed promptly."""
        if self._cancel is not None or self._finished:
            return  # already cancelled: its compensation steps must not be interrupted
        self._cancel_requested = True
        self._cancel_reason = reason
        self._interrupt("cancel")

    def _interrupt(self, reason: str) -> None:
        """Stop the attempt running inline (its timeout expired, or the run is cancelled).

        The attempt runs in the actor's own task, so this cancels that task and
        `_attempt_inline` takes the cancellation back (``uncancel``): the same mechanism as
        ``asyncio.timeout``, without building a timeout object for every step.
        """
        task = self._inline_task
        if task is not None and self._interrupted is None:
            self._interrupted = reason
            task.cancel()

    async def _attempt_inline(
        self, index: int, step: Step[Any], attempt: int
    ) -> tuple[Outcome | None, Awaitable[None] | None]:
        """Run one attempt of ``step`` in the actor's own task.

        On success the result is journaled and its commit returned with the outcome: the
        caller awaits the commit before the body resumes (in its own frame, so this coroutine
        is gone while the run waits). A failure is recorded here (a retry scheduled, or the
        step failed for good) and comes back with no commit: the outcome for the body, or
        None while it is blocked (a retry backoff, or interrupted by a cancel).
        """
        act = step.activity
        clock = self.rt.clock
        started = clock.time()
        if self._cancel_requested:
            return None, None
        limiter = self.rt._limiter
        timer = None
        self._interrupted = None
        self._inline_task = task = self._task
        token = _current_step.set(StepInfo(self.run_id, act.name, index, attempt, self.record.workflow))
        otel = self._tel.attempt_started(index, act.name, attempt) if self._tel is not None else None
        try:
            if limiter is not None:
                await limiter.acquire()  # time queued here does not count against the timeout
            try:
                if act.timeout is not None:
                    timer = clock.call_at(clock.time() + act.timeout, lambda: self._interrupt("timeout"))
                result = await act.fn(*step.args, **step.kwargs)
            finally:
                if limiter is not None:
                    limiter.release()
        except asyncio.CancelledError as exc:
            reason = self._interrupted
            if reason is None and task is not None and not task.cancelling():
                # Raised by the activity itself (it awaited something a library cancelled),
                # not a cancellation of this task: the attempt failed.
                return await self._attempt_failed(index, self._pending(index, step, attempt, started), exc), None
            # Not ours, or a shutdown cancellation arrived as well: let it through.
            if reason is None or (task is not None and task.uncancel() > 0):
                raise
            if reason == "cancel":
                return None, None  # the Cancel message in the mailbox finishes the job
            timeout = ActivityTimeoutError(act.name, act.timeout or 0.0)
            return await self._attempt_failed(index, self._pending(index, step, attempt, started), timeout), None
        except Exception as exc:
            return await self._attempt_failed(index, self._pending(index, step, attempt, started), exc), None
        finally:
            _current_step.reset(token)
            if otel is not None:
                Segment.detach(otel)
            self._inline_task = None
            if timer is not None:
                timer.cancel()
        try:
            commit = self._record_success(index, act.name, attempt, started, result)
        except PayloadError as exc:
            return await self._unstorable(index, self._pending(index, step, attempt, started), exc), None
        return ((_as_replayed(result) if act.result_type is Any else result), None), commit

    def _record_success(self, index: int, name: str, attempt: int, started_at: float, result: Any) -> Awaitable[None]:
        """Journal a successful attempt; returns the commit to await. A plain function, so the
        inline path adds no coroutine per step. Raises `PayloadError` (nothing changed) if the
        result cannot be stored."""
        self._steps += 1
        now = self.rt.clock.time()
        try:
            done = self._checkpoint(
                [
                    StepStarted(ts=started_at, step=name, index=index, attempt=attempt),
                    StepSucceeded(ts=now, step=name, index=index, attempt=attempt, result=result),
                ]
            )
        except PayloadError:
            self._steps -= 1
            raise
        self._active.pop(index, None)
        self._waits.pop(index, None)
        if self._tel is not None:
            self._tel.attempt_succeeded(index, name, started_at, now)
        return done

    async def _fail_unstorable(self, exc: PayloadError) -> None:
        self._drop_active()
        self._events.clear()
        self.ctx.vars = dict(self.record.vars)
        await self._finish(
            RunStatus.FAILED, None, ErrorInfo("PayloadError", f"the run's ctx.vars cannot be stored: {exc}")
        )

    async def _on_cancel(self, reason: str | None, seq: int | None = None) -> Outcome | None:
        if self._finished:
            return None
        if self._cancel is not None:
            # A second request: the run is already cancelling; just consume the message.
            if seq is not None:
                await self._checkpoint([], consumed=(seq,))
            return None
        group = self._group
        if group is not None:
            first = group.indices[0] if group.indices else self._next_index
            self._abandon(group)
            self._group = None
        else:
            # The body is blocked on a single step: running inline (already interrupted) or
            # in a retry backoff. It is the most recently allocated index.
            first = self._next_index - 1
            for index in [i for i in self._active if i >= first]:
                pending = self._active.pop(index)
                self._waits.pop(index, None)
                if pending.timer is not None:
                    pending.timer.cancel()
        self._cancel = (reason, first)
        # From here the body may run compensation steps: they must run, not be interrupted.
        self._cancel_requested = False
        for name in list(self._signal_waiters):
            self._signal_waiters.pop(name)
        await self._checkpoint([], consumed=() if seq is None else (seq,))
        return None, RunCancelledError(reason)

    # --- checkpoints ---------------------------------------------------------------------

    def _snapshot(self, status: RunStatus, seq: int, tail: tuple[AnyEvent, ...], **changes: Any) -> RunRecord:
        rec = self.record
        metadata = rec.metadata
        if self._cancel is not None and "cancel" not in metadata:
            metadata = {**metadata, "cancel": {"reason": self._cancel[0], "index": self._cancel[1]}}
        return RunRecord(
            run_id=rec.run_id,
            workflow=rec.workflow,
            version=rec.version,
            status=status,
            input=rec.input,
            vars=self.ctx.vars,
            created_at=rec.created_at,
            updated_at=self.rt.clock.time(),
            history_seq=seq,
            steps=self._steps,
            state=changes.pop("state", rec.state),
            waits=tuple(self._waits.values()),
            tail=tail,
            trace=rec.trace,
            metadata=metadata,
            **changes,
        )

    def _checkpoint(
        self,
        events: list[AnyEvent],
        status: RunStatus | None = None,
        consumed: tuple[int, ...] = (),
        **changes: Any,
    ) -> Awaitable[None]:
        """Commit the current state plus ``events``; await the result to know it is durable.

        A plain function, not a coroutine: it hands the store's commit future straight back,
        one frame fewer per waiting run. An unstorable value raises `PayloadError` here,
        before anything changes. Events join the snapshot's tail; the tail moves to the
        history table when it is long, or when the run stops running (waits or ends), so a
        waiting run's snapshot stays small.
        """
        if self._events:
            events, self._events = [*self._events, *events], []
        if self._consumed:
            consumed, self._consumed = (*self._consumed, *consumed), []
        if status is None:
            status = RunStatus.WAITING if self._waits and not self._running_steps() else RunStatus.RUNNING
        tail = self.record.tail
        if events:
            tail = (*tail, *events)
        seq = self.record.history_seq
        flush: list[AnyEvent] = []
        if tail and (len(tail) >= TAIL_MAX or status is not RunStatus.RUNNING):
            flush, tail = list(tail), ()
            seq += 1
        snapshot = self._snapshot(status, seq, tail, **changes)
        if self._tel is not None:
            self._tel.checkpointed(events, snapshot)
        done = (
            self.rt.store.checkpoint(snapshot, flush, consumed)
            if consumed
            else self.rt.store.checkpoint(snapshot, flush)
        )
        self.record = snapshot
        return done

    async def _flush_if_events(self) -> None:
        """Once the body is blocked again, record buffered events (a resume marker) and any
        wait it now blocks on: a timer's due time must be durable before the run sleeps, or
        a restart would compute it afresh."""
        if self._events or self._waits_dirty:
            self._waits_dirty = False
            await self._checkpoint([])

    def _running_steps(self) -> bool:
        return any(p.task is not None and not p.task.done() for p in self._active.values())

    async def _finish_ok(self, output: Any) -> None:
        await self._finish(RunStatus.SUCCEEDED, output, None)

    async def _finish(
        self, status: RunStatus, output: Any, error: ErrorInfo | None, *, reason: str | None = None
    ) -> None:
        now = self.rt.clock.time()
        if self._cancel is not None:
            status, output, error, reason = RunStatus.CANCELLED, None, None, self._cancel[0]
        event: AnyEvent
        if status is RunStatus.SUCCEEDED:
            event = RunSucceeded(ts=now, output=output)
        elif status is RunStatus.CANCELLED:
            event = RunCancelled(ts=now, reason=reason)
            error = ErrorInfo("Cancelled", reason)
        else:
            assert error is not None
            event = RunFailed(ts=now, error=error.error, cause=error.cause)
        self._waits.clear()
        self._drop_callbacks()
        try:
            await self._checkpoint([event], status, output=output, error=error, ended_at=now)
        except PayloadError as exc:
            error = ErrorInfo("PayloadError", f"the workflow's return value cannot be stored: {exc}")
            await self._checkpoint(
                [RunFailed(ts=now, error=error.error, cause=error.cause)], RunStatus.FAILED, error=error, ended_at=now
            )
        self._finished = True
        self._coro.close()
        self.rt._run_finished(self.run_id, self.record)
        self.stop()
