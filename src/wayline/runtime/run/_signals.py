"""Signal waits, as the run's state machine keeps them (pure, like the rest of it).

``ctx.wait_signal`` is journal position #index: resolved from the journal on replay, from a
signal kept since it arrived early, or a durable wait (with an optional timeout) until one is
delivered. Signals are inbox messages, delivered as `Inbound` and deleted from the inbox by
the checkpoint that records their consumption.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..._errors import Cancelled, NonDeterminismError
from ...persistence import SignalMessage, SignalReceived, SignalWait
from .._commands import WaitSignal
from ._effects import CancelTimer, Effect, SetTimer
from ._journal import SignalEntry, check_wait, outcome
from ._messages import TimerFired
from ._state import Group, Outcome, Pending, RunState
from ._tables import own


def keep(s: RunState, seq: int, msg: SignalMessage) -> None:
    """Keep a delivered signal until a wait_signal consumes it."""
    signals = s.signals = own(s.signals)
    signals.setdefault(msg.name, deque()).append((seq, msg.payload))


def open_wait(s: RunState, out: list[Effect], cmd: WaitSignal) -> Outcome | None:
    """Resolve a wait_signal from the journal or a kept signal, else block (None)."""
    index = s.next_index
    s.next_index += 1
    try:
        entry = s.journal.take(index, SignalEntry(cmd.name))
    except NonDeterminismError as exc:
        return None, exc
    if entry is not None:
        return outcome(entry, s.run_id)
    cancel = s.cancel
    if cancel is not None and index == cancel.index:
        return None, Cancelled(cancel.reason)
    # NonDeterminismError (the caller fails the run): it waited on something else here.
    check_wait(s.run_id, s.restored_waits.get(index), f"signal:{cmd.name}")
    kept = s.signals.get(cmd.name)
    if kept:
        seq, payload = kept.popleft()
        consume(s, index, cmd.name, seq, payload)
        return payload, None
    restored = s.take_restored(index)
    if restored is not None:
        due = restored.due  # the deadline of the wait before a restart stays
    elif cmd.timeout is not None:
        due = s.now + cmd.timeout
    else:
        due = None
    group = Group([index], single=True, remaining=1)
    pending = Pending(None, group, 0, signal=cmd.name)
    s.active[index] = pending
    s.signal_waiters[cmd.name] = index
    s.waits[index] = SignalWait(step=index, due=due, signal=cmd.name)
    s.waits_dirty = True
    if due is not None:
        out.append(SetTimer(("step", index), due, TimerFired(index, pending.attempt)))
    s.group = group
    s.flush_if_events(out)
    return None


def consume(s: RunState, index: int, name: str, seq: int, payload: Any) -> None:
    """Record that wait_signal #index took message ``seq``, in the run's next checkpoint.

    No checkpoint of its own: whatever the body does next (a step, a wait, its end)
    checkpoints before any effect leaves the process, and until then the message stays in
    the inbox, so a replay after a crash takes the same message again (it is still first in
    line). One fsync fewer per signal.
    """
    s.steps += 1
    s.events.append(SignalReceived(ts=s.now, index=index, name=name, payload=payload))
    s.consumed.append(seq)


def delivered(s: RunState, out: list[Effect], seq: int, msg: SignalMessage) -> Outcome | None:
    """A signal arrived: the outcome for the body if it waits for that signal."""
    keep(s, seq, msg)
    index = s.signal_waiters.get(msg.name)
    if index is None or s.direct:
        return None  # kept for a later wait_signal
    s.active.pop(index)
    del s.signal_waiters[msg.name]
    s.waits.pop(index, None)
    out.append(CancelTimer(("step", index)))
    kept_seq, payload = s.signals[msg.name].popleft()
    consume(s, index, msg.name, kept_seq, payload)
    s.group = None
    return payload, None
