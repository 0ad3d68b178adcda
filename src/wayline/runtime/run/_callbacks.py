"""Callback waits, as the run's state machine keeps them: ``ctx.wait_for_callback`` and a
state machine's ``.waitForTaskToken`` tasks. Pure, like the rest of the state machine.

A callback wait is a `CallbackWait` in the run's snapshot, keyed by the digests of its
tokens, with its deadline and heartbeat interval. Completions, failures and heartbeats are
inbox messages: committed by the runtime, delivered as `Inbound`, and deleted from the inbox
by the checkpoint that applies them. A heartbeat counts from when it was accepted (its
message's timestamp), however long it waited in the mailbox.

Code workflows open the wait (journal position #index), run the sender step, then await it;
the outcome is journaled (CallbackCompleted / CallbackFailed) like a step's. A state
machine's task asks for a token and then waits; its interpreter's own snapshot says which
task waits on which token digest.
"""

from __future__ import annotations

from typing import Any

from ..._errors import CallbackError, Cancelled, NonDeterminismError
from ..._tokens import digest_token
from ...persistence import (
    AnyEvent,
    CallbackBeat,
    CallbackCompleted,
    CallbackCompletion,
    CallbackFailed,
    CallbackFailure,
    CallbackHeartbeat,
    CallbackMessage,
    CallbackWait,
    CallbackWaiting,
)
from .._commands import AwaitCallback, CloseCallback, OpenCallback
from ..asl import StatesError
from ._effects import CancelTimer, Effect, Reply, SetTimer, WakeTask
from ._journal import CallbackEntry, outcome
from ._messages import AslWaitToken, CallbackDue, Inbound
from ._state import Callback, Group, Outcome, RunState
from ._tables import own

TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"


def refusal(s: RunState, digest: str, now: float, queued: list[Any]) -> str | None:
    """None if the run accepts a message for token ``digest`` at ``now``, else why it does not.

    ``queued`` are the messages waiting in the run's mailbox: an answer there has been
    accepted already, and a deadline that has passed is a timeout whose message is on its way
    (heartbeats queued before it still move it).
    """
    for message in queued:
        if type(message) is Inbound and isinstance(message.message, CallbackMessage):
            answer = message.message
            if answer.digest == digest and type(answer) is not CallbackBeat:
                return "this token's callback has already been completed (the run has not applied it yet)"
    index = s.callback_digests.get(digest)
    if index is not None:
        cb = s.callbacks[index]
        if cb.outcome is not None:
            return "this token's callback has already been completed or timed out"
        beat = cb.beat_deadline
        if cb.heartbeat is not None:
            for message in queued:
                beats = type(message) is Inbound and type(message.message) is CallbackBeat
                if beats and message.message.digest in cb.digests:
                    beat = max(beat or 0.0, message.message.ts + cb.heartbeat)
        dues = [d for d in (cb.deadline, beat) if d is not None]
        if dues and min(dues) <= now:
            return "this token's callback has already been completed or timed out"
        return None
    early = s.callback_early.get(digest)
    if early and any(type(msg) is not CallbackBeat for _, msg in early):
        return "this token's callback has already been completed (the run has not applied it yet)"
    if early or any(type(w) is CallbackWait and digest in w.digests for w in s.restored_waits.values()):
        return None
    return f"run {s.run_id!r} is not waiting on this token (it was never issued, or it was already used)"


def arrived(s: RunState, out: list[Effect], seq: int, msg: CallbackMessage) -> Outcome | None:
    """Apply inbox message ``seq`` for the token ``msg.digest``; the outcome for the body if
    it unblocks it."""
    if s.finished:
        return None
    index = s.callback_digests.get(msg.digest)
    if index is None:
        s.callback_early = early = own(s.callback_early)
        early.setdefault(msg.digest, []).append((seq, msg))  # for a wait not reopened yet
        return None
    cb = s.callbacks[index]
    apply(s, out, cb, seq, msg)
    return ready(s, out, cb)


def apply(s: RunState, out: list[Effect], cb: Callback, seq: int, msg: CallbackMessage) -> None:
    """Apply message ``seq`` that came with one of ``cb``'s tokens."""
    if cb.outcome is not None:
        s.consumed.append(seq)  # too late: the wait already has its outcome
        return
    ts = msg.ts
    if type(msg) is CallbackBeat:
        s.consumed.append(seq)
        if cb.heartbeat is not None:
            cb.beat_deadline = max(cb.beat_deadline or 0.0, ts + cb.heartbeat)
            rearm(s, out, cb)
        if not s.direct:  # a state machine run's history has Step Functions' events only
            s.events.append(CallbackHeartbeat(ts=ts, index=cb.index, token_hash=msg.digest))
        s.waits_dirty = True
        return
    event: AnyEvent
    if type(msg) is CallbackCompletion:
        event = CallbackCompleted(ts=ts, index=cb.index, step=cb.step, token_hash=msg.digest, result=msg.output)
        resolve(s, out, cb, msg.output, None, event, seq)
    else:
        assert type(msg) is CallbackFailure
        error, cause = msg.error, msg.cause
        event = CallbackFailed(ts=ts, index=cb.index, step=cb.step, token_hash=msg.digest, error=error, cause=cause)
        resolve(s, out, cb, None, _error(s, cb, error, cause), event, seq)


def _error(s: RunState, cb: Callback, error: str, cause: str | None) -> BaseException:
    return StatesError(error, cause) if s.direct else CallbackError(cb.step, error, cause)


def resolve(
    s: RunState,
    out: list[Effect],
    cb: Callback,
    value: Any,
    error: BaseException | None,
    event: AnyEvent,
    seq: int | None,
) -> None:
    out.append(CancelTimer(("cb", cb.index)))
    cb.outcome = (value, error, event, seq)
    if s.direct and cb.awaiting:
        out.append(WakeTask(cb.index))


def ready(s: RunState, out: list[Effect], cb: Callback) -> Outcome | None:
    """After a message for ``cb`` (a code workflow's wait): the outcome for the body if the
    body is blocked on it and it has one."""
    if s.direct or s.finished:
        return None
    if cb.outcome is None:
        # A heartbeat: make it durable now, so a run that only waits can passivate.
        if cb.awaiting and (s.waits_dirty or s.events or s.consumed):
            s.waits_dirty = False
            s.checkpoint(out, [])
        return None
    if not cb.awaiting:
        return None  # the body takes the outcome when it reaches the await
    s.group = None
    return take(s, out, cb)


def rearm(s: RunState, out: list[Effect], cb: Callback) -> None:
    out.append(CancelTimer(("cb", cb.index)))
    due = cb.due()
    if due is None or cb.outcome is not None:
        return
    s.waits[cb.index] = cb.wait()
    out.append(SetTimer(("cb", cb.index), due, CallbackDue(cb.index)))


def due(s: RunState, out: list[Effect], msg: CallbackDue) -> Outcome | None:
    """The timer of callback wait ``msg.index``: it timed out, unless a heartbeat moved it."""
    cb = s.callbacks.get(msg.index)
    if cb is None or cb.outcome is not None or s.finished:
        return None
    now = s.now
    when = cb.due()
    if when is not None and when > now:  # extended by a heartbeat meanwhile
        rearm(s, out, cb)
        return None
    if cb.deadline is not None and cb.deadline <= now:
        error, cause = TIMEOUT, "the callback was not completed within its timeout"
    else:
        error, cause = HEARTBEAT_TIMEOUT, "no heartbeat arrived within the heartbeat timeout"
    event = CallbackFailed(ts=now, index=cb.index, step=cb.step, token_hash=cb.digests[-1], error=error, cause=cause)
    resolve(s, out, cb, None, _error(s, cb, error, cause), event, None)
    return ready(s, out, cb)


def register(s: RunState, out: list[Effect], cb: Callback) -> None:
    """Track ``cb``: its wait in the snapshot, its timer, messages that came early."""
    s.callbacks = own(s.callbacks)
    s.callbacks[cb.index] = cb
    s.callback_digests = own(s.callback_digests)
    for digest in cb.digests:
        s.callback_digests[digest] = cb.index
    s.waits[cb.index] = cb.wait()
    s.waits_dirty = True
    for digest in list(cb.digests):
        for seq, msg in s.callback_early.pop(digest, ()):
            apply(s, out, cb, seq, msg)
    rearm(s, out, cb)


def forget(s: RunState, out: list[Effect], cb: Callback) -> None:
    out.append(CancelTimer(("cb", cb.index)))
    s.callbacks.pop(cb.index, None)
    for digest in cb.digests:
        s.callback_digests.pop(digest, None)
    if s.waits.pop(cb.index, None) is not None:
        s.waits_dirty = True


def take(s: RunState, out: list[Effect], cb: Callback) -> Outcome:
    """Record ``cb``'s outcome (with the run's next checkpoint) and hand it over."""
    assert cb.outcome is not None
    value, error, event, seq = cb.outcome
    forget(s, out, cb)
    s.events.append(event)
    if seq is not None:
        s.consumed.append(seq)
    return value, error


def drop_all(s: RunState, out: list[Effect]) -> None:
    """The run ends: no callback timer may fire any more."""
    for index in s.callbacks:
        out.append(CancelTimer(("cb", index)))


def abandon_callback(s: RunState, out: list[Effect], index: int) -> None:
    cb = s.callbacks.get(index)
    if cb is not None:
        forget(s, out, cb)


# --- code workflows ---------------------------------------------------------------------------


def command(s: RunState, out: list[Effect], cmd: OpenCallback | AwaitCallback | CloseCallback) -> Outcome | None:
    """Perform one of ``ctx.wait_for_callback``'s commands: the outcome for the body, or None
    if the body is now blocked."""
    if type(cmd) is OpenCallback:
        return _open(s, out, cmd)
    if type(cmd) is CloseCallback:
        cb = s.callbacks.get(cmd.index)
        if cb is not None:
            forget(s, out, cb)
        return None, None
    assert type(cmd) is AwaitCallback
    index = cmd.index
    entry = s.callback_journal.pop(index, None)
    if entry is not None:
        return outcome(entry, s.run_id)
    cancel = s.cancel
    if cancel is not None and index == cancel.index:
        return None, Cancelled(cancel.reason)
    cb = s.callbacks.get(index)
    if cb is None:
        return None, RuntimeError(f"run {s.run_id!r}: callback #{index} is not open")
    if cb.outcome is not None:
        return take(s, out, cb)
    cb.awaiting = True
    s.group = Group([index], single=True, remaining=1)
    s.flush_if_events(out)
    return None


def _open(s: RunState, out: list[Effect], cmd: OpenCallback) -> Outcome:
    index = s.next_index
    s.next_index += 1
    try:
        entry = s.journal.take(index, CallbackEntry(cmd.step))
    except NonDeterminismError as exc:
        return None, exc
    if isinstance(entry, CallbackEntry):  # resolved in an earlier life: the await returns it again
        s.callback_journal = own(s.callback_journal)
        s.callback_journal[index] = entry
        return (index, None), None
    sent = index + 1 in s.journal  # the sender step ran to its end before a restart
    restored = s.take_restored(index)
    now = s.now
    if type(restored) is CallbackWait:
        cb = Callback(index, cmd.step, list(restored.digests), restored.deadline, restored.heartbeat)
        if cb.heartbeat is not None:  # the stored due is the earlier of the two deadlines
            cb.beat_deadline = restored.due if restored.due is not None else now + cb.heartbeat
    else:
        cb = Callback(index, cmd.step, [])
        cb.deadline = None if cmd.timeout is None else now + cmd.timeout
        cb.heartbeat = cmd.heartbeat
        cb.beat_deadline = None if cmd.heartbeat is None else now + cmd.heartbeat
    token: str | None = None
    if not sent:
        # The sender runs (again): give it a fresh token. Tokens handed out before a
        # restart stay valid, since the sender may have delivered them already.
        token = s.tokens(s.run_id)
        digest = digest_token(token)
        cb.digests.append(digest)
        s.events.append(
            CallbackWaiting(
                ts=now, index=index, step=cmd.step, token_hash=digest, timeout=cmd.timeout, heartbeat=cmd.heartbeat
            )
        )
    if not cb.digests:
        return None, RuntimeError(f"run {s.run_id!r}: callback #{index} has no token to wait on")
    register(s, out, cb)
    if token is not None:
        # Durable before the sender runs: whoever gets the token may complete it at once,
        # from another process, which checks the token against the stored wait.
        s.flush_if_events(out)
    return (index, token), None


# --- a state machine's tasks ----------------------------------------------------------------


def new_task_token(s: RunState, out: list[Effect], step: str) -> None:
    """A token for a state machine task (replied with); its wait is durable before the reply."""
    index = s.next_direct
    s.next_direct -= 1
    token = s.tokens(s.run_id)
    cb = Callback(index, step, [digest_token(token)])
    for key, wait in list(s.restored_waits.items()):
        if type(wait) is CallbackWait and wait.label == step:
            # The task is invoked again after a restart: tokens it handed out before stay valid.
            s.take_restored(key)
            cb.digests[:0] = wait.digests
            cb.deadline, cb.heartbeat, cb.beat_deadline = wait.deadline, wait.heartbeat, wait.due
    register(s, out, cb)
    s.flush_if_events(out)  # register left the new wait to record
    out.append(Reply(token))


def wait_task_token(s: RunState, out: list[Effect], msg: AslWaitToken) -> None:
    """A state machine task waits for the token ``msg.digest``: replied with its outcome, or
    with the position to wait on (`Reply.pending`) until `WakeTask` says it has one."""
    digest = msg.digest
    index = s.callback_digests.get(digest)
    now = s.now
    if index is None:
        # Resumed after a restart: the snapshot's wait has the deadlines.
        restored = next(
            (w for w in s.restored_waits.values() if type(w) is CallbackWait and w.digests[-1] == digest), None
        )
        index = s.next_direct
        s.next_direct -= 1
        cb = Callback(index, "", [digest])
        if restored is not None:
            cb.step, cb.digests = restored.label, list(restored.digests)
            s.take_restored(restored.step)
            cb.deadline, cb.heartbeat, cb.beat_deadline = restored.deadline, restored.heartbeat, restored.due
        register(s, out, cb)
    cb = s.callbacks[index]
    if cb.deadline is None and msg.timeout is not None:
        cb.deadline = now + msg.timeout
    if cb.heartbeat is None and msg.heartbeat is not None:
        cb.heartbeat = msg.heartbeat
        cb.beat_deadline = now + msg.heartbeat
    if cb.outcome is not None:
        out.append(_taken(s, out, cb))
        return
    rearm(s, out, cb)
    s.waits[index] = cb.wait()
    cb.awaiting = True
    s.checkpoint(out, [])  # the deadlines are durable before the task sleeps
    out.append(Reply(pending=index))


def task_token_taken(s: RunState, out: list[Effect], index: int) -> None:
    """The waiting task takes the outcome of callback ``index`` (replied with it)."""
    cb = s.callbacks.get(index)
    if cb is None or cb.outcome is None:
        out.append(Reply(error=RuntimeError(f"run {s.run_id!r}: callback #{index} has no outcome")))
        return
    out.append(_taken(s, out, cb))


def _taken(s: RunState, out: list[Effect], cb: Callback) -> Reply:
    assert cb.outcome is not None
    value, error, _event, seq = cb.outcome
    forget(s, out, cb)
    if seq is not None:
        s.consumed.append(seq)
    return Reply(value, error)
