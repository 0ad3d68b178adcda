"""Child runs of a code workflow, as the run's state machine keeps them (pure, like the rest).

``ctx.start_workflow`` is journal position #index: the actor starts the child (starting is
idempotent on the child's run id), then `ChildStarted` is checkpointed, so a replay finds the
same child and starts nothing. ``child.result()`` is a position of its own: a durable
`ChildWait` until the child's end arrives as a `ChildDone` message in this run's inbox (the
one route in), which the checkpoint that records `ChildEnded` deletes. A child's end that
arrives before the body awaits it is kept, as an early signal is. ``child.signal`` and
``child.cancel`` are positions too (`ChildMessaged`), sent at least once, like a step.

When the run ends, every child it started whose end it has not seen gets its close policy:
"terminate", "request_cancel" or "abandon".

A state machine's Task that waits for a child run (``.sync``, a distributed Map's item) takes
the same route: its interpreter asks (`AslWaitChild`), the child's end arrives as a
`ChildDone` in the inbox, wakes the Task (`WakeTask`), and is taken (`AslChildTaken`); the
interpreter's next checkpoint, the one that records what the Task did with it, deletes the
message. A crash before that leaves the message in the inbox for the restarted Task.
"""

from __future__ import annotations

from typing import Any

from ..._errors import Cancelled
from ...persistence import ChildDone, ChildEnded, ChildMessaged, ChildStarted, ChildWait
from .._commands import AwaitChild, MessageChild, StartChild
from ._asl import DETACHED_KEY, PARENT_KEY
from ._effects import CloseChildren, Effect, MessageChildRun, Reply, StartChildRun, WakeTask, WatchChild
from ._journal import ChildMessageEntry, ChildResultEntry, ChildStartEntry, check_wait, child_outcome, describe, outcome
from ._messages import AslChildTaken, AslWaitChild, ChildMessageDone, ChildStartDone
from ._state import Child, Outcome, RunState, family

#: Metadata key of a child started by a code workflow: its end is sent to the parent's inbox.
NOTIFY_KEY = "notify_parent"


def _position(s: RunState, requested: Any) -> tuple[int, Any, Outcome | None]:
    """Take the next position for ``requested``: (index, journal entry or None, an outcome
    that settles it now: a cancellation replayed there). Raises `NonDeterminismError`."""
    index = s.next_index
    s.next_index += 1
    entry = s.journal.take(index, requested)
    if entry is not None:
        return index, entry, None
    cancel = s.cancel
    if cancel is not None and index == cancel.index:
        return index, None, (None, Cancelled(cancel.reason))
    check_wait(s.run_id, s.take_restored(index), describe(requested))
    return index, None, None


def open_start(s: RunState, out: list[Effect], cmd: StartChild) -> Outcome | None:
    index, entry, settled = _position(s, ChildStartEntry(cmd.workflow))
    if entry is not None:
        family(s).children.setdefault(entry.run_id, Child(cmd.workflow, cmd.close))
        return (index, entry.run_id), None
    if settled is not None:
        return settled
    if s.cancel_requested:
        return None  # the cancel on its way is given to the body here
    run_id = cmd.run_id or f"{s.run_id}/{index}"
    out.append(StartChildRun(index, cmd.workflow, cmd.input, run_id, cmd.close))
    return None


def started(s: RunState, out: list[Effect], msg: ChildStartDone) -> Outcome:
    """The actor started the child (or found it), or could not."""
    if msg.error is not None:
        return None, msg.error
    family(s).children[msg.run_id] = Child(msg.workflow, msg.close)
    s.steps += 1
    event = ChildStarted(ts=s.now, index=msg.index, workflow=msg.workflow, run_id=msg.run_id, close=msg.close)
    s.checkpoint(out, [event])  # before the body holds the handle: a replay finds this child
    return (msg.index, msg.run_id), None


def open_await(s: RunState, out: list[Effect], cmd: AwaitChild[Any]) -> Outcome | None:
    run_id = cmd.run_id
    index, entry, settled = _position(s, ChildResultEntry(run_id))
    f = family(s)
    child = f.children.get(run_id)
    if entry is not None:
        if child is not None:
            child.ended = (entry.status, entry.output, entry.error, entry.cause)
        early = f.child_early.pop(run_id, None)
        if early is not None:
            s.consumed.append(early[0])  # a second notice of an end already recorded
        return outcome(entry, s.run_id)
    if settled is not None:
        return settled
    if child is None:
        return None, ValueError(
            f"run {s.run_id!r} did not start a child run {run_id!r} (use the handle ctx.start_workflow returned)"
        )
    early = f.child_early.pop(run_id, None)
    if early is not None:
        return _take(s, index, early[0], early[1], child)
    if child.ended is not None:
        # Awaited before, at another position (journaled there): the same end again.
        return child_outcome(run_id, *child.ended)
    f.child_waiters[run_id] = index
    s.waits[index] = ChildWait(step=index, run_id=run_id, workflow=child.workflow)
    s.waits_dirty = True
    s.flush_if_events(out)
    out.append(WatchChild(run_id))  # after the wait is durable: an end already recorded is sent again
    return None


def _take(s: RunState, index: int, seq: int, msg: ChildDone, child: Child | None) -> Outcome:
    """Position ``index`` takes the child's end ``msg`` (inbox message ``seq``): recorded,
    and the message deleted, by the run's next checkpoint."""
    error = msg.error
    if child is not None:
        child.ended = (msg.status, msg.output, error.error if error else None, error.cause if error else None)
    s.steps += 1
    s.events.append(
        ChildEnded(
            ts=s.now,
            index=index,
            run_id=msg.run_id,
            status=msg.status,
            output=msg.output,
            error=error.error if error is not None else None,
            cause=error.cause if error is not None else None,
        )
    )
    s.consumed.append(seq)
    return child_outcome(
        msg.run_id, msg.status, msg.output, error.error if error else None, error.cause if error else None
    )


def ended(s: RunState, out: list[Effect], seq: int, msg: ChildDone) -> Outcome | None:
    """A child's end arrived: the outcome for the body if it waits for that child."""
    run_id = msg.run_id
    f = family(s)
    child = f.children.get(run_id)
    index = f.child_waiters.pop(run_id, None)
    if s.direct:
        _task_ended(s, out, seq, msg, index)
        return None
    if index is None:
        if (child is not None and child.ended is not None) or run_id in f.child_early:
            s.checkpoint(out, [], consumed=(seq,))  # a second notice: nothing to do but delete it
        else:
            f.child_early[run_id] = (seq, msg)  # kept for a later child.result()
        return None
    s.waits.pop(index, None)
    result = _take(s, index, seq, msg, child)
    s.checkpoint(out, [])
    return result


def task_wait(s: RunState, out: list[Effect], msg: AslWaitChild) -> None:
    """A state machine's Task waits for child run ``msg.run_id``: replied with its end if that
    has come, or with the position to wait on (`Reply.pending`) until `WakeTask` names it."""
    run_id = msg.run_id
    f = family(s)
    # "abandon": the close policies are a code workflow's; a state machine stops the children
    # it waits for itself (a cancelled run, a failed Map, a Task's deadline).
    f.children.setdefault(run_id, Child(msg.workflow, "abandon"))
    if run_id in f.child_early:
        out.append(_task_take(s, run_id))
        return
    index = s.next_direct
    s.next_direct -= 1
    f.child_waiters[run_id] = index
    # Shown by `describe` from the interpreter's next checkpoint: no commit of its own, or a
    # distributed Map's thousand items would wait for a thousand commits one after another.
    s.waits[index] = ChildWait(step=index, run_id=run_id, workflow=msg.workflow)
    out.append(Reply(pending=index))
    out.append(WatchChild(run_id))  # an end already recorded (its notice lost to a crash) is sent again


def task_taken(s: RunState, out: list[Effect], msg: AslChildTaken) -> None:
    """The Task takes child run ``msg.run_id``'s end (or, ``drop``, stops waiting for it)."""
    f = family(s)
    index = f.child_waiters.pop(msg.run_id, None)
    if index is not None:
        s.waits.pop(index, None)
    if msg.run_id in f.child_early:
        out.append(_task_take(s, msg.run_id))
    elif msg.drop:
        out.append(Reply())
    else:
        out.append(Reply(error=RuntimeError(f"run {s.run_id!r}: child run {msg.run_id!r} has not ended")))


def _task_ended(s: RunState, out: list[Effect], seq: int, msg: ChildDone, index: int | None) -> None:
    """A state machine's child ended: kept for the Task that waits (woken) or will wait for it."""
    run_id = msg.run_id
    f = family(s)
    child = f.children.get(run_id)
    if run_id in f.child_early or (child is not None and child.ended is not None):
        s.checkpoint(out, [], consumed=(seq,))  # a second notice: nothing to do but delete it
        return
    f.child_early[run_id] = (seq, msg)
    if index is not None:
        s.waits.pop(index, None)
        out.append(WakeTask(index))


def _task_take(s: RunState, run_id: str) -> Reply:
    """The reply that hands child ``run_id``'s end to its Task; its inbox message is deleted
    by the next checkpoint, which records what the Task made of it."""
    seq, msg = family(s).child_early.pop(run_id)
    child = s.family.children.get(run_id) if s.family is not None else None
    if child is not None:
        error = msg.error
        child.ended = (msg.status, msg.output, error.error if error else None, error.cause if error else None)
    s.consumed.append(seq)
    return Reply(msg)


def drop_waits(s: RunState) -> None:
    """The body is being cancelled: it no longer waits for any child's end."""
    f = s.family
    if f is not None:
        for index in f.child_waiters.values():
            s.waits.pop(index, None)
        f.child_waiters.clear()


def open_message(s: RunState, out: list[Effect], cmd: MessageChild) -> Outcome | None:
    index, entry, settled = _position(s, ChildMessageEntry(cmd.run_id, cmd.kind, cmd.name))
    if entry is not None:
        return None, None
    if settled is not None:
        return settled
    if s.cancel_requested:
        return None
    out.append(MessageChildRun(index, cmd.run_id, cmd.kind, cmd.name, cmd.payload))
    return None


def messaged(s: RunState, out: list[Effect], msg: ChildMessageDone) -> Outcome:
    if msg.error is not None:
        return None, msg.error
    s.steps += 1
    s.checkpoint(out, [ChildMessaged(ts=s.now, index=msg.index, run_id=msg.run_id, kind=msg.kind, name=msg.name)])
    return None, None


def close(s: RunState, out: list[Effect], why: str) -> None:
    """The run is ending: apply the close policy of each child whose end it has not seen.

    Before the final checkpoint: a crash in between repeats both on restart (a child already
    ended or cancelled is left alone)."""
    f = s.family
    if f is None:
        return
    going = tuple(
        (run_id, child.close)
        for run_id, child in f.children.items()
        if child.ended is None and child.close != "abandon" and run_id not in f.child_early
    )
    if going:
        out.append(CloseChildren(going, f"its parent run {s.run_id!r} {why}"))


def child_metadata(parent: str) -> dict[str, Any]:
    """The metadata a code workflow's child run starts with."""
    return {PARENT_KEY: parent, NOTIFY_KEY: True}


def notifies_parent(metadata: dict[str, Any]) -> bool:
    """Whether a run's end is sent to its parent's inbox: a code workflow's child, and a
    state machine's child that its parent waits for (not a detached ``startExecution``, whose
    parent has gone on). Such a state machine child started before the inbox route existed
    carries no `NOTIFY_KEY`, and is covered too."""
    return isinstance(metadata.get(PARENT_KEY), str) and (
        bool(metadata.get(NOTIFY_KEY)) or not metadata.get(DETACHED_KEY)
    )
