"""The run actor: one per live run. It owns the run's state, takes its mailbox one message at
a time, asks `decide` what to do and does it.

Everything with I/O lives here and nowhere in the state machine: the store's reads and
commits, timers, step attempts (inline in this actor's task when the body awaits one step
alone, as tasks of their own for a gather or map), the workflow body's coroutine, a state
machine's interpreter task, telemetry. Each effect's outcome goes back to `decide` as a
message. A crash anywhere loses at most the step in flight, which runs again (at least once,
with the same idempotency key) when the supervisor restarts the run from its checkpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from functools import partial
from typing import Any

from ..._errors import Cancelled, ContinueAsNew, LeaseLostError, PayloadError
from ...actors import Actor, ActorStoppedError, TimerHandle
from ...persistence import CancelMessage, RunRecord, RunStatus, StepStarted
from .._commands import Step
from .._context import RunContext
from .._flow_waiting import SlotGate
from .._metadata import RunMetadata, child_metadata as inherit, replayed_metadata
from .._port import RunPort
from .._stepinfo import StepInfo, _current as _current_step
from .._telemetry import Segment
from .._vars import VarsGuard, plain, typed_vars
from .._workflows import AslWorkflow
from . import _code as code, _timers as timers
from ._asl import AslHost
from ._callbacks import refusal
from ._children import notifies_parent
from ._decide import decide, interrupts
from ._effects import (
    AnswerUpdate,
    CancelChildren,
    CancelTimer,
    Checkpoint,
    CloseChildren,
    Continue,
    Effect,
    Finished,
    Interrupt,
    MessageChildRun,
    Passivated,
    Reply,
    Resume,
    RunAttempt,
    SetTimer,
    StartBody,
    StartChildRun,
    StopAttempt,
    WakeTask,
    WatchChild,
)
from ._family import message_child, start_child
from ._inflight import in_flight
from ._messages import (
    PASSIVATE,
    CallbackDue,
    Inbound,
    Raised,
    Returned,
    RunMessage,
    StepDone,
    TimerFired,
    Unstorable,
)
from ._restore import restore
from ._segments import next_segment
from ._state import RunState
from ._tables import EMPTY, own
from ._timers import Fire
from ._values import as_replayed, shaped


class RunActor(Actor[RunMessage]):
    """One incarnation of a live run. Built by the runtime's supervisor, again after a crash.

    It parks (`Actor.parks`): a run holds a task only while it has work (a message to take, a
    step running inline, a commit to wait for). A run that waits on a timer, a signal or a
    callback is its state and an empty mailbox, and its next message gives it a task again.
    """

    parks = True

    def __init__(self, port: RunPort, run_id: str, record: RunRecord | None, reason: str | None) -> None:
        self.port = port
        self.run_id = run_id
        self._initial = record
        self._reason = reason
        self.state: RunState | None = None  # set once the snapshot is loaded
        self._body: Coroutine[Any, Any, Any] | None = None  # a code workflow's body
        self._host: AslHost | None = None  # a state machine's host
        self._vars_guard: VarsGuard | None = None  # typed vars: checked before each checkpoint
        self._interpreter: asyncio.Task[Any] | None = None
        self._input: Any = None
        self._segment: Segment | None = None
        self._task: asyncio.Task[Any] | None = None  # the task running an inline attempt
        self._inline = False  # an attempt runs inline in this task right now
        self._interrupted: str | None = None
        # Tables most runs never fill start as the shared empty one (written through `own`).
        self._timers: list[Fire] | None = None  # its timers set and not fired (a few at most)
        self._attempts: dict[int, asyncio.Task[None]] = EMPTY  # attempts running as tasks
        self._woken: dict[int, asyncio.Future[None]] = EMPTY  # interpreter tasks waiting on callbacks
        self._passivate_timer: TimerHandle | None = None
        self._passivated = False
        self._dropped = False
        self._finished = False
        self._stopping = False
        self._busy = False  # a message is being performed
        # ``Concurrency(count_waiting=False)`` only (else None): the slot given back while the
        # run waits, and whether it holds it now (see `_flow_waiting`).
        self._gate: SlotGate | None = None

    # --- what the runtime may ask of a live run (`LiveRun`) ------------------------------

    @property
    def loaded(self) -> bool:
        return self.state is not None

    def only_waiting(self) -> bool:
        """Loaded, idle in its mailbox, and blocked on durable waits alone (everything it waits
        for is committed: see `RunState.only_waiting`)."""
        state = self.state
        return state is not None and not self._busy and state.only_waiting() and not self.ref.mailbox_depth

    @property
    def holds_slot(self) -> bool:
        """It gives its slot back while waiting, and holds it now (recovery keeps that slot)."""
        return self._gate is not None and self._gate.held

    def live_vars(self) -> dict[str, Any] | None:
        state = self.state
        return None if state is None or state.finished else plain(state.ctx.vars)

    def in_flight(self) -> list[StepStarted]:
        """The step attempts running now (see `_inflight`)."""
        state = self.state
        if state is None or state.finished:
            return []
        host = self._host
        if host is not None:  # a state machine: its Task attempts, from the interpreter's host
            return sorted(host.running.values(), key=lambda e: (e.ts, e.step))
        return in_flight(state)

    def callback_refusal(self, digest: str) -> str | None:
        state = self.state
        assert state is not None, "callback_refusal needs a loaded run"
        return refusal(state, digest, self.port.clock.time(), self.ref.queued())

    # --- lifecycle -----------------------------------------------------------------------

    async def on_start(self) -> None:
        port = self.port
        store = port.store
        # The port's context (every task of a run starts in a copy of it) has WAIT_FOR_STORE
        # set: this run's writes wait out an outage of the store, as the run does.
        record = self._initial or await store.get_run(self.run_id)
        self._initial = None
        if record is None:  # deleted under us: nothing to run
            self.stop()
            return
        await self._load(record, self._reason, self._reason is not None)
        self.ref.set_mail_hook(self._on_mail)

    async def _load(
        self, record: RunRecord, reason: str | None, read_inbox: bool, applied: set[int] | None = None
    ) -> None:
        """Build the run's state and its body (or interpreter host) from ``record``, and send
        the run the messages it starts with."""
        port = self.port
        store = port.store
        self._segment, record = port.telemetry.open_segment(record, reason)
        wf = port.workflow(record.workflow, self.run_id, record.version)  # the version it started with
        history = await store.get_history(self.run_id) if record.history_seq else list(record.tail)
        # A fresh run's messages all come through its mailbox (its ref exists before rt.start
        # returns); only a recovered or restarted run can have messages waiting in the store.
        inbox = await store.get_inbox(self.run_id) if read_inbox else []
        clock = port.clock
        ctx = RunContext(self.run_id, record.workflow, record.version, clock)
        ctx.started_at = record.created_at
        ctx._events = getattr(store, "events", None)
        ctx.saved_state = record.state
        ctx.metadata = RunMetadata(replayed_metadata(record, history), self.run_id)
        ctx.tags = record.tags
        direct = isinstance(wf, AslWorkflow)
        state, first = restore(
            record,
            history,
            inbox,
            ctx,
            reason=reason,
            direct=direct,
            passivate=port.passivate_after is not None,
            now=clock.time(),
        )
        # The body sees its input as stored data, shaped by its annotation, whether this is
        # the first run (the caller's object) or a restart (decoded from the store).
        if isinstance(wf, AslWorkflow):
            self._host = AslHost(wf, ctx, port, self._ask, self._wait_woken, self._segment)
            self._input = as_replayed(record.input)
        else:
            self._vars_guard = typed_vars(ctx, wf.vars_schema, self.run_id)
            self._body = wf.body(ctx, shaped(as_replayed(record.input), wf.input_type))
        if applied:
            # The messages the last segment applied and consumed (gone from the inbox): one
            # of them delivered again (the poller read it before its consume committed) must
            # not be applied a second time by this segment.
            state.seen = applied - {seq for seq, _ in inbox}
        self.state = state
        self._gate = port.slot_gate(record)
        if self._gate is not None:
            self._gate.loaded(record.status is RunStatus.WAITING)
        for message in first:
            self.ref.tell(message)

    async def _continue(self, record: RunRecord) -> None:
        """The run continued as new (``record`` is durable): drop the segment that ended,
        body, timers and all, and load the next one in this same actor."""
        timers.cancel_all(self._timers)
        self._timers = None
        for task in self._attempts.values():
            task.cancel()
        self._attempts.clear()
        if self._segment is not None:
            self._segment.close(None, False)
        if self._body is not None:
            self._body.close()
        self._body = self._host = None
        applied = None
        if self.state is not None:
            self.state.ctx._patched = None  # the cycle of the segment that ended (see on_stop)
            applied = self.state.seen
        # Its inbox is read again: what the last segment left unconsumed carries over (the
        # messages it had applied but not consumed are applied afresh by the next).
        await self._load(record, None, True, applied)

    async def on_stop(self, error: BaseException | None) -> None:
        self._stopping = True
        self.ref.set_mail_hook(None)
        self.port.run_stopped(self)
        if self._passivate_timer is not None:
            self._passivate_timer.cancel()
        timers.cancel_all(self._timers)
        self._timers = None
        for task in self._attempts.values():
            task.cancel()
        self._attempts.clear()
        for fut in self._woken.values():
            fut.cancel()
        interpreter = self._interpreter
        if interpreter is not None and not interpreter.done():
            interpreter.cancel()
            await asyncio.wait({interpreter})
        state = self.state
        if self._passivated and state is not None:
            self.port.run_passivated(self.run_id, state.record.wake_at, frozenset(state.seen or ()))
        if self._segment is not None:
            # A dropped run goes on on another worker: its trace segment ends as a passivated
            # one does, not as the run's end.
            self._segment.close(error, self._passivated or self._dropped)
        if self._body is not None:
            self._body.close()
        # An ended run is freed by reference counting, not left as cyclic garbage: the body,
        # the interpreter and the tasks hold this actor through their frames and callbacks,
        # and the body's context holds the state (its patch check) that holds the context.
        self._body = self._host = self._interpreter = self._task = None
        if state is not None:
            state.ctx._patched = None

    # --- the mailbox ---------------------------------------------------------------------

    def _on_mail(self, message: Any) -> None:
        """A message just arrived. The mailbox is read one message at a time, but a cancel
        must not wait for the step running inline to end: that step is stopped now."""
        state = self.state
        if state is not None and interrupts(state, message):
            self._interrupt("cancel")
        gate = self._gate
        if gate is not None and type(message) is Inbound and type(message.message) is CancelMessage:
            gate.stop_waiting()  # a cancel does not wait for a slot

    async def _ask(self, message: RunMessage) -> Reply:
        """A request of the interpreter, answered once the actor has applied it."""
        reply = await self.ref.ask(message)
        assert isinstance(reply, Reply)
        return reply

    # --- performing effects ----------------------------------------------------------------

    async def receive(self, message: RunMessage) -> Reply | None:
        """Decide ``message``, then perform the effects in order. What the body, an inline
        attempt or a refused checkpoint leads to is decided at once and performed before the
        rest. (One coroutine for both: a frame fewer for every run in memory.)"""
        state = self.state
        if state is None:
            return None
        if type(message) is Raised and not isinstance(message.error, Exception | Cancelled):
            error = message.error
            if not isinstance(error, asyncio.CancelledError):
                raise error  # the interpreter died of something no run should survive
            if not (state.direct and state.cancel_requested):
                # Cancelled by something else than this run's cancel (a library): a crash,
                # and the supervisor restarts the run from its checkpoint.
                raise RuntimeError("a state machine's interpreter was cancelled, but not by its run")
        port = self.port
        state.now = port.clock.time()
        # What is left to perform, last first (a list popped from its end is cheaper than a
        # deque, which is 760 bytes even empty, made for every message).
        todo = decide(state, message)[1]
        todo.reverse()
        reply: Reply | None = None
        effect: Effect | None
        follow: RunMessage | None
        self._busy = True
        try:
            gate = self._gate
            if gate is not None and not gate.held and _wakes(message, todo):
                # Woken, with its slot given back: nothing is performed before it holds one
                # (or a cancel stopped the wait: its next step is not run, as a cancel stops a
                # step running inline, and the cancel, next in the mailbox, ends it).
                await gate.woken()
            while todo:
                effect = todo.pop()
                kind = type(effect)
                follow = None
                if kind is Checkpoint:
                    assert isinstance(effect, Checkpoint)
                    if self._segment is not None:
                        self._segment.checkpointed(effect.events, effect.record)
                    try:
                        done = (
                            port.store.checkpoint(effect.record, effect.flush, effect.consumed)
                            if effect.consumed
                            else port.store.checkpoint(effect.record, effect.flush)
                        )
                    except PayloadError as exc:
                        todo.clear()  # planned on this checkpoint: decided again below
                        follow = Unstorable(exc, effect)
                    else:
                        try:
                            await done  # nothing after a checkpoint happens before it is durable
                            if self._gate is not None and effect.record.status is RunStatus.WAITING:
                                await self._gate.released()
                        except LeaseLostError as exc:
                            # Another worker owns the run now and goes on from its last
                            # commit: this incarnation stops here, without a restart.
                            todo.clear()
                            self._dropped = True
                            port.run_dropped(self.run_id, exc)
                            self.stop()
                elif kind is Resume:
                    assert isinstance(effect, Resume) and self._body is not None
                    follow = code.step(self._body, effect.value, effect.error, self._vars_guard)
                    if type(follow) is Raised and type(follow.error) is ContinueAsNew:
                        follow = next_segment(port, state.record, follow.error)
                elif kind is RunAttempt:
                    assert isinstance(effect, RunAttempt)
                    if effect.inline and self._gate is not None and self._gate.skip_step:
                        self._gate.skip_step = False
                        follow = StepDone(effect.index, effect.attempt, error=asyncio.CancelledError(), reason="cancel")
                    elif effect.inline:
                        follow = await self._attempt_inline(effect.index, effect.step, effect.attempt)
                        if follow.error is not None and follow.reason is None and self._segment is not None:
                            self._segment.attempt_raised(follow.index, follow.error)
                    else:
                        self._start_attempt(effect.index, effect.step, effect.attempt)
                elif kind is SetTimer:
                    assert isinstance(effect, SetTimer)
                    self._set_timer(effect.key, effect.due, effect.message)
                elif kind is CancelTimer:
                    assert isinstance(effect, CancelTimer)
                    timers.cancel(self._timers, effect.key)
                elif kind is StopAttempt:
                    assert isinstance(effect, StopAttempt)
                    task = self._attempts.pop(effect.index, None)
                    if task is not None:
                        task.cancel()
                elif kind is Reply:
                    assert isinstance(effect, Reply)
                    reply = effect
                    if effect.pending is not None:
                        self._woken = own(self._woken)
                        self._woken.setdefault(effect.pending, asyncio.get_running_loop().create_future())
                elif kind is WakeTask:
                    assert isinstance(effect, WakeTask)
                    fut = self._woken.get(effect.index)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind is Interrupt:
                    assert isinstance(effect, Interrupt)
                    self._interrupt(effect.reason)
                elif kind is StartBody:
                    self._start_interpreter()
                elif kind is CancelChildren:
                    assert isinstance(effect, CancelChildren)
                    await port.cancel_children(state.record, effect.reason)
                elif kind is StartChildRun:
                    assert isinstance(effect, StartChildRun)
                    follow = await start_child(port, self.run_id, self._segment, effect, self._inherited())
                elif kind is MessageChildRun:
                    assert isinstance(effect, MessageChildRun)
                    follow = await message_child(port, effect)
                elif kind is WatchChild:
                    assert isinstance(effect, WatchChild)
                    await port.watch_child(effect.run_id, self.run_id)
                elif kind is CloseChildren:
                    assert isinstance(effect, CloseChildren)
                    await port.close_children(effect.children, effect.reason)
                elif kind is AnswerUpdate:
                    assert isinstance(effect, AnswerUpdate)
                    port.update_answered(self.run_id, effect.event)
                elif kind is Continue:
                    assert isinstance(effect, Continue)
                    todo.clear()
                    await self._continue(effect.record)
                elif kind is Finished:
                    assert isinstance(effect, Finished)
                    self._finished = True
                    port.run_finished(effect.record)
                    if notifies_parent(effect.record.metadata):
                        # Its end is durable: now its parent's inbox (a crash in between is
                        # made up for by the parent, which looks again when it waits).
                        await port.notify_parent(effect.record)
                    self.stop()
                elif kind is Passivated:
                    self._passivated = True
                    self.stop()
                if follow is not None:
                    state.now = port.clock.time()
                    todo.extend(reversed(decide(state, follow)[1]))
                # An error the body or an attempt raised holds this frame through its traceback
                # (the frame it was caught in links back here): dropped now, the run is freed by
                # reference counting once it ends, not left as cyclic garbage.
                effect = follow = None
        finally:
            self._busy = False
        if state.passivate:
            self._arm_passivation(state)
        return reply

    def _set_timer(self, key: tuple[str, int], due: float, message: RunMessage) -> None:
        self._timers = timers.replace(self._timers, self.port.clock, due, Fire(self, key, message))

    def _fire(self, fire: Fire) -> None:
        timers.forget(self._timers, fire)
        try:
            self.ref.tell(fire.message)
        except ActorStoppedError:
            pass  # stopping: the snapshot keeps the wait for the next incarnation

    def _arm_passivation(self, state: RunState) -> None:
        if self._passivate_timer is not None:
            self._passivate_timer.cancel()
            self._passivate_timer = None
        delay = self.port.passivate_after
        if delay is None or not state.only_waiting() or self.ref.mailbox_depth:
            return
        clock = self.port.clock
        self._passivate_timer = clock.call_at(clock.time() + delay, Fire(self, timers.PASSIVATE_KEY, PASSIVATE))

    # --- step attempts -----------------------------------------------------------------------

    def _interrupt(self, reason: str) -> None:
        """Stop the attempt running inline (its timeout expired, or the run is cancelled), or
        a state machine's interpreter.

        The attempt runs in the actor's own task, so this cancels that task and
        `_attempt_inline` takes the cancellation back (``uncancel``): the same mechanism as
        ``asyncio.timeout``, without building a timeout object for every step.
        """
        if self._interpreter is not None:
            if not self._interpreter.done():
                self._interrupted = reason
                self._interpreter.cancel()
            return
        task = self._task
        if self._inline and task is not None and self._interrupted is None:
            self._interrupted = reason
            task.cancel()

    async def _attempt_inline(self, index: int, step: Step[Any], attempt: int) -> StepDone:
        """Run one attempt of ``step`` in the actor's own task; its outcome."""
        act = step.activity
        port = self.port
        clock = port.clock
        limiter = port.limiter
        timer = None
        # A parking run gets a new task after each park: the one to interrupt is this one.
        task = self._task = asyncio.current_task()
        state = self.state
        assert state is not None
        self._interrupted = None
        self._inline = True
        token = _current_step.set(StepInfo(self.run_id, act.name, index, attempt, state.record.workflow))
        otel = self._segment.attempt_started(index, act.name, attempt) if self._segment is not None else None
        try:
            if limiter is not None:
                await self._acquire(limiter, index)  # time queued here does not count against the timeout
            try:
                if act.timeout is not None:
                    timer = clock.call_at(clock.time() + act.timeout, partial(self._interrupt, "timeout"))
                result = await act.start(port.threads, step.args, step.kwargs)
            finally:
                if limiter is not None:
                    limiter.release()
        except asyncio.CancelledError as exc:
            reason = self._interrupted
            if reason is None and task is not None and not task.cancelling():
                # Raised by the activity itself (it awaited something a library cancelled),
                # not a cancellation of this task: the attempt failed.
                return StepDone(index, attempt, error=exc)
            # Not ours, or a shutdown cancellation arrived as well: let it through.
            if reason is None or (task is not None and task.uncancel() > 0):
                raise
            return StepDone(index, attempt, error=exc, reason=reason)
        except Exception as exc:
            return StepDone(index, attempt, error=exc)
        finally:
            _current_step.reset(token)
            if otel is not None:
                Segment.detach(otel)
            self._inline = False
            if timer is not None:
                timer.cancel()
        return StepDone(index, attempt, result=result)

    async def _acquire(self, limiter: asyncio.Semaphore, index: int) -> None:
        """A place under ``max_concurrent_activities`` for step ``index``; the time it waits
        for one is a ``queued`` span in its trace."""
        segment = self._segment
        if segment is None or not limiter.locked():
            await limiter.acquire()
            return
        since = self.port.clock.time()
        await limiter.acquire()
        segment.queued(index, since)

    def _start_attempt(self, index: int, step: Step[Any], attempt: int) -> None:
        state = self.state
        assert state is not None
        # The new task copies the current context, so set the step info just around creation.
        info = StepInfo(self.run_id, step.activity.name, index, attempt, state.record.workflow)
        token = _current_step.set(info)
        segment = self._segment
        otel = segment.attempt_started(index, step.activity.name, attempt, False) if segment is not None else None
        try:
            task = asyncio.get_running_loop().create_task(
                self._run_attempt(index, attempt, step), name=f"{self.run_id}:{step.activity.name}#{index}"
            )
        finally:
            _current_step.reset(token)
            if otel is not None:
                Segment.detach(otel)
        self._attempts = own(self._attempts)
        self._attempts[index] = task

    async def _run_attempt(self, index: int, attempt: int, step: Step[Any]) -> None:
        port = self.port
        limiter = port.limiter
        message: StepDone
        try:
            if limiter is not None:
                await self._acquire(limiter, index)  # time queued here does not count against the timeout
            try:
                timeout = step.activity.timeout
                if timeout is not None:
                    self._set_timer(("step", index), port.clock.time() + timeout, TimerFired(index, attempt))
                result = await step.activity.start(port.threads, step.args, step.kwargs)
            finally:
                if limiter is not None:
                    limiter.release()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                return  # the actor cancelled this attempt (timeout, cancel, shutdown) and knows it
            message = StepDone(index, attempt, error=exc)  # raised by the activity itself: a failure
        except Exception as exc:
            message = StepDone(index, attempt, error=exc)
        else:
            message = StepDone(index, attempt, result=result)
        if self._attempts.get(index) is asyncio.current_task():
            del self._attempts[index]
        if message.error is not None and self._segment is not None:
            self._segment.attempt_raised(index, message.error)
        try:
            self.ref.tell(message)
        except ActorStoppedError:
            pass

    def _inherited(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The metadata and tags a child run takes over from this run (its correlation id)."""
        state = self.state
        assert state is not None
        return inherit(state.ctx.metadata, state.ctx.tags)

    # --- a state machine's interpreter ---------------------------------------------------------

    def _start_interpreter(self) -> None:
        host = self._host
        assert host is not None
        task = asyncio.get_running_loop().create_task(host.run(self._input), name=f"{self.run_id}:interpreter")
        self._input = None
        self._interpreter = task
        task.add_done_callback(self._interpreter_done)

    def _interpreter_done(self, task: asyncio.Task[Any]) -> None:
        message: RunMessage
        if task.cancelled():
            if self._stopping:
                return  # stopped with its actor: the next incarnation resumes it
            message = Raised(asyncio.CancelledError())
        elif task.exception() is not None:
            message = Raised(task.exception())  # type: ignore[arg-type]
        else:
            message = Returned(task.result())
        try:
            self.ref.tell(message)
        except ActorStoppedError:
            pass

    async def _wait_woken(self, index: int) -> None:
        fut = self._woken.get(index)
        if fut is None:
            return
        try:
            await fut
        finally:
            self._woken.pop(index, None)


def _wakes(message: RunMessage, todo: list[Effect]) -> bool:
    """Whether ``message`` ends a wait and makes the run go on (the body resumes, or a step
    starts): a run that gave its slot back needs one first. A cancel goes on without one."""
    kind = type(message)
    if kind is Inbound:
        assert isinstance(message, Inbound)
        if type(message.message) is CancelMessage:
            return False
    elif kind is not TimerFired and kind is not CallbackDue:
        return False
    return any(type(e) is Resume or type(e) is RunAttempt for e in todo)
