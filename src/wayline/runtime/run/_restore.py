"""`restore`: a run's state rebuilt from what the store holds (pure, like `decide`)."""

from __future__ import annotations

from ...persistence import AnyEvent, CancelMessage, InboxMessage, RunRecord, RunResumed
from .._context import RunContext
from ._decide import decide
from ._journal import Journal
from ._messages import START, Inbound, RunMessage
from ._patches import PatchCheck
from ._state import RunState


def restore(
    record: RunRecord,
    history: list[AnyEvent],
    inbox: list[tuple[int, InboxMessage]],
    ctx: RunContext,
    *,
    reason: str | None,
    direct: bool,
    passivate: bool,
    now: float,
) -> tuple[RunState, list[RunMessage]]:
    """The state of a run loaded from its snapshot, ``history`` and unconsumed ``inbox``,
    and the messages its actor starts with (``reason``: why it resumes, None if it is new).

    Signals and callback answers in the inbox are applied at once (kept for the waits the body
    will reopen as it replays). A cancel accepted before a crash is applied once the body has
    replayed to where it blocks: its message follows `START`, and meanwhile no new attempt starts.
    """
    s = RunState(record, ctx, Journal(record.run_id, history), direct=direct, passivate=passivate)
    s.now = now
    ctx._patched = PatchCheck(s)
    if reason is not None:
        s.events.append(RunResumed(ts=now, reason=reason))
    first: list[RunMessage] = [START]
    for seq, msg in inbox:
        if type(msg) is CancelMessage:
            if record.cancel is None:
                s.cancel_requested, s.cancel_reason = True, msg.reason
                first.append(Inbound(seq, msg))
        else:
            decide(s, Inbound(seq, msg))
    return s, first
