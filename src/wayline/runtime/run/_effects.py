"""What a run's state machine asks its actor to do, in order.

`decide` returns a list of these; the actor performs them one after the other, and an
effect whose outcome the state machine needs (a commit, an attempt, a body step) comes back
to it as a message. A `Checkpoint` is awaited before the next effect: nothing the run does
after it (resuming its body above all) can happen unless the checkpoint is durable.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...persistence import AnyEvent, RunRecord, UpdateAnswered
from .._commands import Step
from ._messages import RunMessage


class Checkpoint(msgspec.Struct):
    """Commit ``record`` with the history row ``flush`` (empty: none) and delete the inbox
    messages ``consumed``; ``events`` are those this checkpoint adds (for telemetry), and
    ``previous`` the snapshot before it (the run's again if the store refuses this one)."""

    record: RunRecord
    previous: RunRecord
    flush: list[AnyEvent]
    consumed: tuple[int, ...]
    events: list[AnyEvent]


class Resume(msgspec.Struct):
    """Step the body: send it ``value``, or throw ``error`` into it."""

    value: Any = None
    error: BaseException | None = None


class RunAttempt(msgspec.Struct):
    """Run attempt ``attempt`` of ``step`` as journal position ``index``; ``inline``: in the
    run's own task (the body waits for this step alone), else as a task of its own."""

    index: int
    step: Step[Any]
    attempt: int
    inline: bool


class StopAttempt(msgspec.Struct, gc=False):
    """Cancel the attempt of step ``index`` running as a task (its outcome is not wanted)."""

    index: int


class Interrupt(msgspec.Struct, gc=False):
    """Stop what the run is doing in its own task: the attempt running inline, or a state
    machine's interpreter (``reason``: "cancel" or "timeout")."""

    reason: str


class SetTimer(msgspec.Struct):
    """At epoch time ``due``, send the run ``message`` (under ``key``: a newer timer with the
    same key replaces this one)."""

    key: tuple[str, int]
    due: float
    message: RunMessage


class CancelTimer(msgspec.Struct, gc=False):
    key: tuple[str, int]


class StartBody(msgspec.Struct, gc=False):
    """Start a state machine's interpreter beside the mailbox."""


class Reply(msgspec.Struct):
    """Answer the interpreter's request with ``value`` (or raise ``error`` there); ``pending``:
    not yet, wait until `WakeTask` names this callback position, then ask again."""

    value: Any = None
    error: BaseException | None = None
    pending: int | None = None


class WakeTask(msgspec.Struct, gc=False):
    """Wake the interpreter task waiting on callback wait ``index``: it has an outcome."""

    index: int


class CancelChildren(msgspec.Struct, gc=False):
    """Cancel the unfinished child runs the run waits for (it ends cancelled)."""

    reason: str | None


class StartChildRun(msgspec.Struct):
    """Start child run ``run_id`` of ``workflow`` (nothing if it exists) for the body's
    ``ctx.start_workflow`` at journal position ``index``; the outcome comes back as
    `ChildStartDone`."""

    index: int
    workflow: str
    input: Any
    run_id: str
    close: str


class MessageChildRun(msgspec.Struct):
    """Send child run ``run_id`` a signal or a cancel (``kind``) for the body's
    ``child.signal`` / ``child.cancel`` at ``index``; the outcome comes back as `ChildMessageDone`."""

    index: int
    run_id: str
    kind: str
    name: str | None
    payload: Any


class WatchChild(msgspec.Struct, gc=False):
    """The body waits for child run ``run_id``: if it has already ended (its notice to this
    run lost to a crash), have the notice sent again."""

    run_id: str


class CloseChildren(msgspec.Struct, gc=False):
    """The run is ending: apply each unfinished child's close policy (``(run id, policy)``)."""

    children: tuple[tuple[str, str], ...]
    reason: str


class AnswerUpdate(msgspec.Struct, gc=False):
    """Hand the answer ``event`` (durable now) to whoever waits on ``rt.update`` for it."""

    event: UpdateAnswered


class Continue(msgspec.Struct, gc=False):
    """The run continued as new: its next segment, ``record`` (durable now), starts afresh."""

    record: RunRecord


class Finished(msgspec.Struct, gc=False):
    """The run has ended (its final checkpoint is durable): tell the runtime, and stop."""

    record: RunRecord


class Passivated(msgspec.Struct, gc=False):
    """The run only waits, and everything it waits for is durable: leave memory."""


class ArmPassivation(msgspec.Struct, gc=False):
    """The run is blocked on durable waits alone: it may leave memory after a while."""


Effect = (
    Checkpoint
    | Resume
    | RunAttempt
    | StopAttempt
    | Interrupt
    | SetTimer
    | CancelTimer
    | StartBody
    | Reply
    | WakeTask
    | CancelChildren
    | StartChildRun
    | MessageChildRun
    | WatchChild
    | CloseChildren
    | AnswerUpdate
    | Continue
    | Finished
    | Passivated
    | ArmPassivation
)
