"""Updates, as the run's state machine keeps them (pure, like the rest of it).

An ``rt.update`` is an `UpdateMessage` in the run's inbox. ``ctx.wait_update(name)`` is
journal position #index: it takes the oldest update of that name kept since it arrived (or
waits for one, a durable `UpdateWait`), recorded as `UpdateAccepted`; the message is deleted by
the checkpoint that records it. ``upd.reply`` / ``upd.reject`` is a position of its own: the
answer is checkpointed as `UpdateAnswered`, and only then handed to the caller (`AnswerUpdate`),
so an answer the caller sees is durable, and is the one a retry with the same id finds.

A second delivery of an update the run already took (a caller that retried before the first
was applied) is deleted and ignored: each update id is taken once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ...persistence import UpdateAccepted, UpdateAnswered, UpdateMessage, UpdateWait
from .._commands import ReplyUpdate, WaitUpdate
from ._effects import AnswerUpdate, Effect
from ._journal import UpdateEntry, UpdateReplyEntry, check_wait, describe, outcome
from ._state import Outcome, RunState, family


def _position(s: RunState, requested: Any) -> tuple[int, Any]:
    index = s.next_index
    s.next_index += 1
    entry = s.journal.take(index, requested)  # NonDeterminismError: the caller fails the run
    if entry is None:
        check_wait(s.run_id, s.take_restored(index), describe(requested))
    return index, entry


def open_wait(s: RunState, out: list[Effect], cmd: WaitUpdate) -> Outcome | None:
    index, entry = _position(s, UpdateEntry(cmd.name))
    if entry is not None:
        _drop_kept(s, entry.update_id)
        return outcome(entry, s.run_id)
    cancel = s.cancel
    if cancel is not None and index == cancel.index:
        from ..._errors import Cancelled

        return None, Cancelled(cancel.reason)
    f = family(s)
    kept = f.updates.get(cmd.name)
    if kept:
        seq, msg = kept.popleft()
        return _take(s, index, seq, msg)
    f.update_waiters[cmd.name] = index
    s.waits[index] = UpdateWait(step=index, update=cmd.name)
    s.waits_dirty = True
    s.flush_if_events(out)
    return None


def _drop_kept(s: RunState, update_id: str) -> None:
    """A replay took update ``update_id`` from the journal: a copy of it still in the inbox
    (delivered again) is deleted with the next checkpoint."""
    f = s.family
    if f is None:
        return
    for kept in f.updates.values():
        for item in list(kept):
            if item[1].update_id == update_id:
                kept.remove(item)
                s.consumed.append(item[0])


def _take(s: RunState, index: int, seq: int, msg: UpdateMessage) -> Outcome:
    s.steps += 1
    family(s).taken_updates.add(msg.update_id)
    s.events.append(UpdateAccepted(ts=s.now, index=index, update_id=msg.update_id, name=msg.name, payload=msg.payload))
    s.consumed.append(seq)
    return (msg.update_id, msg.payload), None


def delivered(s: RunState, out: list[Effect], seq: int, msg: UpdateMessage) -> Outcome | None:
    """An update arrived: the outcome for the body if it waits for one of that name."""
    f = family(s)
    if msg.update_id in f.taken_updates or msg.update_id in s.journal.updates:
        s.checkpoint(out, [], consumed=(seq,))  # taken already: a retry's copy
        return None
    kept = f.updates.setdefault(msg.name, deque())
    if any(m.update_id == msg.update_id for _, m in kept):
        s.checkpoint(out, [], consumed=(seq,))
        return None
    index = f.update_waiters.pop(msg.name, None)
    if index is None or s.direct:
        kept.append((seq, msg))
        return None
    s.waits.pop(index, None)
    result = _take(s, index, seq, msg)
    return result


def open_reply(s: RunState, out: list[Effect], cmd: ReplyUpdate) -> Outcome | None:
    index, entry = _position(s, UpdateReplyEntry(cmd.update_id))
    if entry is not None:
        return None, None  # answered before: the caller has it (or finds it in the history)
    s.steps += 1
    event = UpdateAnswered(
        ts=s.now,
        index=index,
        update_id=cmd.update_id,
        name=cmd.name,
        result=cmd.result,
        error=cmd.error,
        cause=cmd.cause,
    )
    s.checkpoint(out, [event])
    out.append(AnswerUpdate(event))  # after the checkpoint: the answer is durable first
    return None, None


def drop_waits(s: RunState) -> None:
    f = s.family
    if f is not None:
        for index in f.update_waiters.values():
            s.waits.pop(index, None)
        f.update_waiters.clear()
