"""`decide`: a run's state machine. Given its state and one message, it changes the state and
says what to do; it performs nothing (sans-I/O, in the style of h11).

The actor that owns the run performs the effects in order and reports their outcomes back as
messages: a step attempt's as `StepDone`, a body step's as `Yielded`/`Returned`/`Raised`, a
refused checkpoint's as `Unstorable`. So the whole life of a run, replay, retries, waits,
cancellation and its end, can be driven and checked with no event loop at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..._errors import Cancelled, ContinueAsNew, NonDeterminismError, PayloadError
from ...persistence import (
    CallbackMessage,
    CancelMessage,
    CancelRequest,
    ChildDone,
    ContinuedAsNew,
    Custom,
    ErrorInfo,
    RunCancelled,
    RunFailed,
    RunRecord,
    RunStatus,
    RunSucceeded,
    SignalMessage,
    StartMessage,
    UpdateMessage,
    encode,
)
from .._commands import (
    AwaitCallback,
    AwaitChild,
    CloseCallback,
    Gather,
    MessageChild,
    OpenCallback,
    ReplyUpdate,
    Sleep,
    StartChild,
    Step,
    WaitSignal,
    WaitUpdate,
)
from . import _callbacks as callbacks, _children as children, _signals as signals, _steps as steps, _updates as updates
from ._effects import (
    CancelChildren,
    Checkpoint,
    Continue,
    Effect,
    Finished,
    Interrupt,
    Passivated,
    Reply,
    Resume,
    StartBody,
)
from ._messages import (
    AslCheckpoint,
    AslChildTaken,
    AslNewToken,
    AslTokenTaken,
    AslWaitChild,
    AslWaitToken,
    CallbackDue,
    ChildMessageDone,
    ChildStartDone,
    Inbound,
    Passivate,
    Raised,
    Returned,
    RunMessage,
    Start,
    StepDone,
    TimerFired,
    Unstorable,
    Yielded,
)
from ._state import Outcome, RunState, failure
from ._steps import resume
from ._values import plain


def decide(s: RunState, message: RunMessage) -> tuple[RunState, list[Effect]]:
    """Apply ``message`` to the run ``s`` (changed in place); returns it with the effects to
    perform, in order. ``s.now`` must be the message's time."""
    out: list[Effect] = []
    if s.finished:
        return s, out
    match message:
        case Yielded(command=cmd):
            _yielded(s, out, cmd)
        case StepDone():
            resume(out, steps.step_done(s, out, message))
        case Returned(value=value):
            finish(s, out, RunStatus.SUCCEEDED, value, None)
        case Raised(error=error):
            _raised(s, out, error)
        case Inbound(seq=seq, message=inbound):
            _inbound(s, out, seq, inbound)
        case TimerFired():
            resume(out, steps.timer_fired(s, out, message))
        case CallbackDue():
            resume(out, callbacks.due(s, out, message))
        case Start():
            _start(s, out)
        case ChildStartDone():
            resume(out, children.started(s, out, message))
        case ChildMessageDone():
            resume(out, children.messaged(s, out, message))
        case Passivate():
            if s.only_waiting():
                # Everything it waits for is in its checkpoint (waits with due times, the inbox):
                # drop it from memory; a due timer or a message brings it back.
                out.append(Passivated())
        case Unstorable(error=error, checkpoint=refused):
            _unstorable(s, out, error, refused)
        case AslCheckpoint(state=state, events=events):
            converted: list[Any] = [Custom(ts=s.now, name=str(e.get("type", "Event")), details=e) for e in events]
            s.checkpoint(out, converted, state=state)
            out.append(Reply())
        case AslNewToken(step=step):
            callbacks.new_task_token(s, out, step)
        case AslWaitToken():
            callbacks.wait_task_token(s, out, message)
        case AslTokenTaken(index=index):
            callbacks.task_token_taken(s, out, index)
        case AslWaitChild():
            children.task_wait(s, out, message)
        case AslChildTaken():
            children.task_taken(s, out, message)
    return s, out


def interrupts(s: RunState, message: RunMessage) -> bool:
    """Whether ``message``, just arrived, must stop the attempt running inline in the run's own
    task now (a cancel), rather than wait its turn in the mailbox, which is not read until that
    attempt ends. Compensation steps of a run already cancelled are not stopped. (A state
    machine's interpreter runs beside the mailbox: its cancel is decided in turn.)"""
    return (
        type(message) is Inbound
        and type(message.message) is CancelMessage
        and s.cancel is None
        and not s.finished
        and s.inline_index >= 0
    )


def _start(s: RunState, out: list[Effect]) -> None:
    if not s.direct:
        out.append(Resume())
    elif s.cancel_requested:
        # Accepted before a restart (or before the start): the body need not run to end.
        _end_direct_cancelled(s, out)
    else:
        out.append(StartBody())


def _yielded(s: RunState, out: list[Effect], cmd: Any) -> None:
    """The body is blocked on ``cmd``: open it, and resume the body at once if it is settled."""
    index = s.next_index
    if type(cmd) is Step and steps.fresh(s, index):
        # The common command: a new step the body awaits alone.
        s.next_index = index + 1
        steps.start_inline(s, out, index, cmd, s.journal.attempts(index))
        return
    result: Outcome | None
    try:
        result = _open(s, out, cmd)
    except NonDeterminismError as exc:
        finish(s, out, RunStatus.FAILED, None, ErrorInfo("NonDeterminismError", str(exc)))
        return
    resume(out, result)


def _open(s: RunState, out: list[Effect], cmd: Any) -> Outcome | None:
    """Open any command but a fresh step: the outcome if it is already settled, or None while
    the body stays blocked on it."""
    kind = type(cmd)
    if kind is WaitSignal:
        return signals.open_wait(s, out, cmd)
    if kind is OpenCallback or kind is AwaitCallback or kind is CloseCallback:
        return callbacks.command(s, out, cmd)
    if kind is Step:
        return steps.open_step(s, out, cmd)
    if kind is StartChild:
        return children.open_start(s, out, cmd)
    if kind is AwaitChild:
        return children.open_await(s, out, cmd)
    if kind is MessageChild:
        return children.open_message(s, out, cmd)
    if kind is WaitUpdate:
        return updates.open_wait(s, out, cmd)
    if kind is ReplyUpdate:
        return updates.open_reply(s, out, cmd)
    if isinstance(cmd, Gather):
        group = steps.open_group(s, out, cmd)
    elif isinstance(cmd, Sleep):
        group = steps.open_sleep(s, out, cmd)
    elif cmd is None or isinstance(cmd, asyncio.Future):
        return None, TypeError(
            "a workflow body can only await ctx.run / ctx.gather / ctx.map / ctx.sleep "
            "(and other ctx.* waits); do other I/O inside an @activity"
        )
    else:
        return None, TypeError(f"a workflow body awaited an unknown object {cmd!r}")
    cancel = s.cancel
    if cancel is not None and group.indices and group.indices[0] == cancel.index:
        # Replaying a cancelled run: the cancellation was delivered at this await.
        steps.abandon(s, out, group)
        return None, Cancelled(cancel.reason)
    if group.remaining:
        s.group = group
        s.flush_if_events(out)
        return None
    return steps.group_outcome(group)


def _raised(s: RunState, out: list[Effect], error: BaseException) -> None:
    if s.direct and s.cancel_requested and isinstance(error, asyncio.CancelledError):
        _end_direct_cancelled(s, out)  # the interpreter stopped for the cancel
    elif isinstance(error, ContinueAsNew) and s.cancel is None:
        _continue_as_new(s, out, error.input, error.version)
    elif isinstance(error, Cancelled | ContinueAsNew):
        # A cancelled run that asks to go on (from its clean-up) ends cancelled all the same.
        finish(s, out, RunStatus.CANCELLED, None, None, reason=getattr(error, "reason", None))
    else:
        finish(s, out, RunStatus.FAILED, None, failure(error))


def _inbound(s: RunState, out: list[Effect], seq: int, msg: Any) -> None:
    """A message from outside: applied once, whichever way (and however often) it came."""
    seen = s.seen
    if seen is None:
        seen = s.seen = set()
    elif seq in seen:
        return
    seen.add(seq)
    if isinstance(msg, CallbackMessage):
        resume(out, callbacks.arrived(s, out, seq, msg))
    elif type(msg) is SignalMessage:
        resume(out, signals.delivered(s, out, seq, msg))
    elif type(msg) is CancelMessage:
        _cancel(s, out, msg.reason, seq, terminate=msg.terminate)
    elif type(msg) is ChildDone:
        resume(out, children.ended(s, out, seq, msg))
    elif type(msg) is UpdateMessage:
        resume(out, updates.delivered(s, out, seq, msg))
    elif type(msg) is StartMessage:
        s.consumed.append(seq)  # it brought the run to a worker: deleted by the next checkpoint


def _cancel(s: RunState, out: list[Effect], reason: str | None, seq: int, *, terminate: bool = False) -> None:
    if s.cancel is not None:
        # A second request: the run is already cancelling; just consume the message.
        s.checkpoint(out, [], consumed=(seq,))
        return
    if s.direct:
        s.cancel_requested, s.cancel_reason = True, reason
        out.append(Interrupt("cancel"))  # the interpreter ends; the run then ends cancelled
        return
    if s.inline_index >= 0:
        # The step running inline is stopped first; its StepDone comes back before the body
        # is given the cancellation, here, at the await of that step.
        s.cancel_requested, s.cancel_reason = True, reason
        out.append(Interrupt("cancel"))
        s.inline_index, s.inline_step = -1, None
    group = s.group
    if group is not None:
        first = group.indices[0] if group.indices else s.next_index
        steps.abandon(s, out, group)
        s.group = None
    else:
        # The body is blocked on a single step: running inline (interrupted above) or in a
        # retry backoff. It is the most recently allocated position.
        first = s.next_index - 1
        for index in [i for i in s.active if i >= first]:
            steps.drop(s, out, index)
    s.cancel = CancelRequest(reason, first)
    # From here the body may run compensation steps: they must run, not be interrupted.
    s.cancel_requested = False
    s.signal_waiters.clear()
    children.drop_waits(s)
    updates.drop_waits(s)
    if terminate:
        # Terminated (a parent's close policy): the body does not get to clean up.
        s.consumed.append(seq)
        finish(s, out, RunStatus.CANCELLED, None, None, reason=reason)
        return
    s.checkpoint(out, [], consumed=(seq,))
    out.append(Resume(None, Cancelled(reason)))


def _continue_as_new(s: RunState, out: list[Effect], input: Any, version: str | None = None) -> None:
    """End this segment of the run and start the next: the same run id, ``input``, empty
    vars, a fresh journal and history (`ContinuedAsNew` is its first event), on ``version``
    (None: the run's own; see `_segments` for which one the body asked for).

    What carries over: the messages in the run's inbox it has not consumed (signals sent for a
    later ``wait_signal``, and whatever else comes in through the inbox: the hook for events
    once they arrive that way). Steps in flight, timers and callback tokens are dropped; the
    children it started get their close policy, as when a run ends.
    """
    now = s.now
    if not plain(input):
        try:
            encode(input, what="the input of ctx.continue_as_new", run_id=s.run_id)
        except PayloadError as exc:
            error = ErrorInfo("PayloadError", f"the input of ctx.continue_as_new cannot be stored: {exc}")
            finish(s, out, RunStatus.FAILED, None, error)
            return
    for index in list(s.active):
        steps.drop(s, out, index)
    s.waits.clear()
    callbacks.drop_all(s, out)
    children.close(s, out, "continued as new")
    rec = s.record
    segment = rec.segment + 1
    version = version or rec.version
    event = ContinuedAsNew(ts=now, segment=segment, input=input, version=version)
    record = RunRecord(
        run_id=rec.run_id,
        workflow=rec.workflow,
        version=version,
        status=RunStatus.RUNNING,
        input=input,
        created_at=rec.created_at,
        updated_at=now,
        trace=rec.trace,
        metadata=rec.metadata,
        tail=(event,),
        segment=segment,
    )
    # history_seq 0: the rows of the segment that ends are no longer the run's history.
    consumed, s.consumed = tuple(s.consumed), []
    s.events.clear()
    s.finished = True  # this state is done with: the actor loads the next segment
    out.append(Checkpoint(record, rec, [], consumed, [event]))
    s.record = record
    out.append(Continue(record))


def _end_direct_cancelled(s: RunState, out: list[Effect]) -> None:
    s.cancel = CancelRequest(s.cancel_reason, -1)
    # The child runs it waits for first: a crash in between repeats both on restart.
    out.append(CancelChildren(s.cancel_reason))
    finish(s, out, RunStatus.CANCELLED, None, None)


def finish(
    s: RunState,
    out: list[Effect],
    status: RunStatus,
    output: Any,
    error: ErrorInfo | None,
    *,
    reason: str | None = None,
) -> None:
    """End the run: its final checkpoint, then the runtime is told."""
    now = s.now
    if s.cancel is not None:
        status, output, error, reason = RunStatus.CANCELLED, None, None, s.cancel.reason
    elif status is RunStatus.SUCCEEDED and not plain(output):
        try:
            encode(output, what="the workflow's return value", run_id=s.run_id)
        except PayloadError as exc:
            status, output = RunStatus.FAILED, None
            error = ErrorInfo("PayloadError", f"the workflow's return value cannot be stored: {exc}")
    event: Any
    if status is RunStatus.SUCCEEDED:
        event = RunSucceeded(ts=now, output=output)
    elif status is RunStatus.CANCELLED:
        event = RunCancelled(ts=now, reason=reason)
        error = ErrorInfo("Cancelled", reason)
    else:
        assert error is not None
        event = RunFailed(ts=now, error=error.error, cause=error.cause)
    for index in list(s.active):
        steps.drop(s, out, index)
    s.waits.clear()
    callbacks.drop_all(s, out)
    children.close(s, out, f"ended ({status.value})")
    s.finished = True
    s.checkpoint(out, [event], status, output=output, error=error, ended_at=now)
    out.append(Finished(s.record))


def _unstorable(s: RunState, out: list[Effect], error: Exception, refused: Checkpoint) -> None:
    """The store refused checkpoint ``refused``. Step results and the body's return value are
    checked before they are checkpointed (`_steps.succeeded`, `finish`), so what is left to
    refuse is the run's own state: its vars, or a state machine's snapshot."""
    s.record = refused.previous
    if s.direct:
        out.append(Reply(error=error))  # the interpreter sees it, as from any checkpoint
        return
    # No retry or restart can fix that: the run fails now, with the last vars that stored.
    s.finished = False
    for index in list(s.active):
        steps.drop(s, out, index)
    s.events.clear()
    s.ctx.vars = dict(s.record.vars)
    finish(s, out, RunStatus.FAILED, None, ErrorInfo("PayloadError", f"the run's ctx.vars cannot be stored: {error}"))
