"""Stored records: the run snapshot and the history events.

Everything stored is a frozen msgspec Struct (no pickle anywhere): a tampered database can
hold wrong data but cannot run code. The structs are ``gc=False``: they never form reference
cycles, and leaving them out of the cyclic GC matters with 100,000 live runs, whose full
collections otherwise walk every snapshot and event. New fields always get defaults so older encodings keep
decoding; ``FORMAT`` is bumped when a change needs a migration.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

#: Version of the encoded snapshot/event format written by this release.
FORMAT = 1


class RunStatus(enum.StrEnum):
    """Where a run is in its life. The first three are "unfinished" and get recovered."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
UNFINISHED: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)


class ErrorInfo(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A failure as stored: an error name and a readable cause."""

    error: str
    cause: str | None = None


class Wait(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """Something a run is blocked on: a timer, a signal or a callback token."""

    kind: str  # "timer" | "signal" | "callback" | "retry"
    key: str  # timer id, signal name or token hash (hex)
    step: int = -1  # journal position of the waiting step
    due: float | None = None  # epoch seconds at which it times out or fires
    # Callback waits only: more token hashes that complete it (tokens handed out before a
    # restart sent a new one), the overall deadline, and the heartbeat interval (seconds).
    keys: tuple[str, ...] = ()
    deadline: float | None = None
    heartbeat: float | None = None
    label: str = ""  # callback waits: the step that waits (an activity name, an ASL state)


# --- history events -----------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, omit_defaults=True):
    """Base of every history event; ``ts`` is epoch seconds from the runtime's clock."""

    ts: float


class RunStarted(Event, tag="RunStarted", frozen=True):
    workflow: str
    version: str
    input: Any = None


class RunResumed(Event, tag="RunResumed", frozen=True):
    """A segment of the run begins again after a restart, a crash or passivation."""

    reason: str


class StepStarted(Event, tag="StepStarted", frozen=True):
    step: str
    index: int
    attempt: int


class StepSucceeded(Event, tag="StepSucceeded", frozen=True):
    step: str
    index: int
    attempt: int
    result: Any = None


class StepFailed(Event, tag="StepFailed", frozen=True):
    """One attempt failed; ``final`` means no retry follows and the workflow sees the error."""

    step: str
    index: int
    attempt: int
    error: str
    cause: str | None = None
    final: bool = False


class StepRetrying(Event, tag="StepRetrying", frozen=True):
    step: str
    index: int
    attempt: int  # the attempt about to be made
    delay: float


class RunCrashed(Event, tag="RunCrashed", frozen=True):
    """The run's actor raised (a bug, not a step failure); the supervisor decides what next."""

    error: str
    cause: str | None = None


class RunSucceeded(Event, tag="RunSucceeded", frozen=True):
    output: Any = None


class RunFailed(Event, tag="RunFailed", frozen=True):
    error: str
    cause: str | None = None


class RunCancelled(Event, tag="RunCancelled", frozen=True):
    reason: str | None = None


class SignalReceived(Event, tag="SignalReceived", frozen=True):
    """``ctx.wait_signal`` at journal position ``index`` consumed a signal."""

    index: int
    name: str
    payload: Any = None


class SignalTimedOut(Event, tag="SignalTimedOut", frozen=True):
    """``ctx.wait_signal`` at journal position ``index`` timed out."""

    index: int
    name: str


class CallbackWaiting(Event, tag="CallbackWaiting", frozen=True):
    """``ctx.wait_for_callback`` at journal position ``index`` handed out a token (by hash)."""

    index: int
    step: str
    token_hash: str
    timeout: float | None = None
    heartbeat: float | None = None


class CallbackHeartbeat(Event, tag="CallbackHeartbeat", frozen=True):
    index: int
    token_hash: str


class CallbackCompleted(Event, tag="CallbackCompleted", frozen=True):
    """The callback at ``index`` was completed (``rt.complete_callback``) with ``result``."""

    index: int
    step: str
    token_hash: str
    result: Any = None


class CallbackFailed(Event, tag="CallbackFailed", frozen=True):
    """The callback at ``index`` failed: ``rt.fail_callback``, or its timeout (``States.Timeout``,
    ``States.HeartbeatTimeout``)."""

    index: int
    step: str
    token_hash: str
    error: str
    cause: str | None = None


class Custom(Event, tag="Custom", frozen=True):
    """An event of a workflow kind the core does not model (ASL state events, signals...)."""

    name: str
    details: dict[str, Any] = {}


AnyEvent = (
    RunStarted
    | RunResumed
    | StepStarted
    | StepSucceeded
    | StepFailed
    | StepRetrying
    | RunCrashed
    | RunSucceeded
    | RunFailed
    | RunCancelled
    | SignalReceived
    | SignalTimedOut
    | CallbackWaiting
    | CallbackHeartbeat
    | CallbackCompleted
    | CallbackFailed
    | Custom
)


class InboxMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A message for a run from outside it, committed to the inbox before delivery."""

    kind: str  # "signal" | "cancel" | "callback"
    name: str = ""  # the signal's name; for a callback, the token's hash
    # The signal's payload, the cancel reason, or for a callback {"op": "complete", "output": ...},
    # {"op": "fail", "error": ..., "cause": ...} or {"op": "heartbeat"}.
    payload: Any = None
    ts: float = 0.0


class RunRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """The checkpointed snapshot of one run: everything needed to resume it.

    The step journal itself is the run's history (StepSucceeded/StepFailed events). The
    most recent events ride in ``tail``, inside the snapshot, and move to the history table
    in chunks (when the tail is long, and when the run waits or ends): a checkpoint then
    writes one row, not two, and still commits snapshot and events atomically.
    """

    run_id: str
    workflow: str
    version: str = "1"
    status: RunStatus = RunStatus.PENDING
    input: Any = None
    vars: dict[str, Any] = {}
    output: Any = None
    error: ErrorInfo | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    ended_at: float | None = None
    history_seq: int = 0  # number of history rows written so far
    steps: int = 0  # number of journaled steps
    waits: tuple[Wait, ...] = ()
    inbox_seq: int = 0  # highest inbox message consumed
    trace: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    state: Any = None  # workflow-kind specific state (the ASL interpreter's snapshot)
    tail: tuple[AnyEvent, ...] = ()  # events not yet moved to the history table
    # No default to omit: every snapshot stores the format it was written in (0 would mean
    # one written before the field existed).
    format: int = 0

    def __post_init__(self) -> None:
        if self.format == 0:
            msgspec.structs.force_setattr(self, "format", FORMAT)

    @property
    def wake_at(self) -> float | None:
        """The earliest due time among the run's waits, if any."""
        dues = [w.due for w in self.waits if w.due is not None]
        return min(dues) if dues else None
