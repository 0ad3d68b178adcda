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
"""

from __future__ import annotations

from typing import Any

from ..._errors import Cancelled
from ...persistence import ChildDone, ChildEnded, ChildMessaged, ChildStarted, ChildWait
from .._commands import AwaitChild, MessageChild, StartChild
from ._asl import PARENT_KEY
from ._effects import CloseChildren, Effect, MessageChildRun, StartChildRun, WatchChild
from ._journal import ChildMessageEntry, ChildResultEntry, ChildStartEntry, check_wait, child_outcome, describe, outcome
from ._messages import ChildMessageDone, ChildStartDone
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
    check_wait(s.run_id, s.restored_waits.pop(index, None), describe(requested))
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
            child.ended = True
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
    if child.ended:
        # Awaited before, at another position: the same end (the journal has it there).
        return None, ValueError(f"the end of child run {run_id!r} was already taken by an earlier child.result()")
    f.child_waiters[run_id] = index
    s.waits[index] = ChildWait(step=index, run_id=run_id, workflow=child.workflow)
    s.waits_dirty = True
    s.flush_if_events(out)
    out.append(WatchChild(run_id))  # after the wait is durable: an end already recorded is sent again
    return None


def _take(s: RunState, index: int, seq: int, msg: ChildDone, child: Child | None) -> Outcome:
    """Position ``index`` takes the child's end ``msg`` (inbox message ``seq``): recorded,
    and the message deleted, by the run's next checkpoint."""
    if child is not None:
        child.ended = True
    error = msg.error
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
    if index is None:
        if (child is not None and child.ended) or run_id in f.child_early:
            s.checkpoint(out, [], consumed=(seq,))  # a second notice: nothing to do but delete it
        else:
            f.child_early[run_id] = (seq, msg)  # kept for a later child.result()
        return None
    s.waits.pop(index, None)
    result = _take(s, index, seq, msg, child)
    s.checkpoint(out, [])
    return result


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
        if not child.ended and child.close != "abandon" and run_id not in f.child_early
    )
    if going:
        out.append(CloseChildren(going, f"its parent run {s.run_id!r} {why}"))


def child_metadata(parent: str) -> dict[str, Any]:
    """The metadata a code workflow's child run starts with."""
    return {PARENT_KEY: parent, NOTIFY_KEY: True}
