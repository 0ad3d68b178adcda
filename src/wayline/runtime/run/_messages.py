"""What a run's state machine is told: its mailbox messages and what its body did.

Messages from outside the run (signals, callback answers, cancel requests) all arrive as one
kind, `Inbound`, carrying the message committed to the run's durable inbox and its sequence
number there: one route in, so a message is applied once however often it is delivered.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...persistence import InboxMessage


class Start(msgspec.Struct, gc=False):
    """Begin (or, after a restart, begin again) driving the body."""


#: The one `Start` every run is sent (it carries nothing, so one object serves them all).
START = Start()


class Inbound(msgspec.Struct, gc=False):
    """A message from outside, committed to the run's inbox as ``seq``."""

    seq: int
    message: InboxMessage


class StepDone(msgspec.Struct):
    """Attempt ``attempt`` of step ``index`` returned ``result`` or raised ``error``.

    ``reason`` says why an attempt that raised was stopped by the run itself: "timeout"
    (its timeout expired) or "cancel" (the run is being cancelled).
    """

    index: int
    attempt: int
    result: Any = None
    error: BaseException | None = None
    reason: str | None = None


class TimerFired(msgspec.Struct, gc=False):
    """The timer of step ``index`` (a sleep, a retry backoff, an attempt's timeout, a signal
    wait's timeout) armed for attempt ``attempt`` is due."""

    index: int
    attempt: int


class CallbackDue(msgspec.Struct, gc=False):
    """The deadline (or heartbeat deadline) of callback wait ``index`` may have passed."""

    index: int


class Passivate(msgspec.Struct, gc=False):
    """The run has waited ``passivate_after`` seconds: leave memory if it only waits."""


#: The one `Passivate` message (it carries nothing).
PASSIVATE = Passivate()


class Yielded(msgspec.Struct):
    """The body is blocked on ``command`` (a `wayline.runtime._commands.Command`, or
    whatever else it awaited)."""

    command: Any


class Returned(msgspec.Struct):
    """The body returned ``value``."""

    value: Any


class Raised(msgspec.Struct):
    """The body raised ``error`` (a `Cancelled` it let through, or any other failure)."""

    error: BaseException


class Unstorable(msgspec.Struct):
    """The store refused ``checkpoint`` (a `Checkpoint` effect): something in it cannot be
    encoded. The effects planned after it are dropped."""

    error: Exception
    checkpoint: Any


class ChildStartDone(msgspec.Struct):
    """The child run of the start at ``index`` exists now (``error``: it could not be started)."""

    index: int
    workflow: str
    run_id: str
    close: str
    error: BaseException | None = None


class ChildMessageDone(msgspec.Struct):
    """The signal or cancel for a child at ``index`` is in its inbox (``error``: it is not)."""

    index: int
    run_id: str
    kind: str
    name: str | None
    error: BaseException | None = None


# --- a state machine run (its interpreter runs beside the mailbox and asks for these) --------


class AslCheckpoint(msgspec.Struct):
    """The interpreter's snapshot (encoded) and its new history events, to checkpoint."""

    state: msgspec.Raw
    events: list[dict[str, Any]]


class AslNewToken(msgspec.Struct, gc=False):
    """A ``.waitForTaskToken`` task at ``step`` needs a token to hand out."""

    step: str


class AslWaitToken(msgspec.Struct, gc=False):
    """A task waits for the token whose digest is ``digest``."""

    digest: str
    timeout: float | None
    heartbeat: float | None


class AslTokenTaken(msgspec.Struct, gc=False):
    """The task that waited on callback ``index`` took its outcome."""

    index: int


class AslWaitChild(msgspec.Struct, gc=False):
    """A Task waits for the end of its child run ``run_id`` (of ``workflow``), which comes
    through this run's inbox as a code workflow's child's end does."""

    run_id: str
    workflow: str


class AslChildTaken(msgspec.Struct, gc=False):
    """The Task that waited for child run ``run_id`` takes its end (replied with the
    `ChildDone`); ``drop``: it stops waiting (its deadline passed), replied with the end only
    if it has come meanwhile."""

    run_id: str
    drop: bool = False


RunMessage = (
    Start
    | Inbound
    | StepDone
    | TimerFired
    | CallbackDue
    | Passivate
    | Yielded
    | Returned
    | Raised
    | Unstorable
    | ChildStartDone
    | ChildMessageDone
    | AslCheckpoint
    | AslNewToken
    | AslWaitToken
    | AslTokenTaken
    | AslWaitChild
    | AslChildTaken
)
