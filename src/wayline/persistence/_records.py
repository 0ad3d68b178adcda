"""Stored records: the run snapshot and the history events.

Everything stored is a frozen msgspec Struct (no pickle anywhere): a tampered database can
hold wrong data but cannot run code. The structs are ``gc=False``: they never form reference
cycles, and leaving them out of the cyclic GC matters with 100,000 live runs, whose full
collections otherwise walk every snapshot and event. New fields always get defaults so older encodings keep
decoding; ``FORMAT`` is bumped when a change needs a migration.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import msgspec

#: Version of the encoded snapshot/event format written by this release. 2: waits, inbox
#: messages and the applied cancel are tagged unions and fields (1 had ``Wait.kind`` strings,
#: ``InboxMessage.kind`` with ``payload["op"]`` and ``metadata["cancel"]``); `_legacy`
#: decodes the old form.
FORMAT = 2


class RunStatus(enum.StrEnum):
    """Where a run is in its life. The first three are "unfinished" and get recovered."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    #: Held back by its workflow's flow control (a concurrency limit): it starts when a slot
    #: frees, in priority then arrival order. Not "unfinished" in the recovery sense: the
    #: queue, not a restart, starts it.
    QUEUED = "QUEUED"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
UNFINISHED: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)
#: The statuses of runs that accept messages (and may be claimed): the unfinished ones, and
#: QUEUED runs, which take their messages in when their queue admits them.
ACCEPTING: tuple[RunStatus, ...] = (*UNFINISHED, RunStatus.QUEUED)


class ErrorInfo(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A failure as stored: an error name and a readable cause.

    ``error`` is None only where the failure has no name: a state machine's Fail state that
    sets no ``Error`` (AWS reports null there, not an empty string). Snapshots written before
    it could be None hold a string, which still decodes.
    """

    error: str | None
    cause: str | None = None


class Wait(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, omit_defaults=True):
    """Something a run is blocked on, stored in its snapshot (one of the subclasses).

    Attributes:
        step: the journal position of the waiting step (negative for an ASL task's callback).
        due: epoch seconds at which it fires or times out, if ever.
    """

    #: What the wait is, for people and telemetry ("timer", "retry", "signal", "callback").
    kind: ClassVar[str] = ""

    step: int = -1
    due: float | None = None

    @property
    def name(self) -> str:
        """What the run waits for: the signal or step name (the sleep's journal name)."""
        return ""


class TimerWait(Wait, tag="timer", frozen=True):
    """A durable sleep (``ctx.sleep``) due at ``due``."""

    kind: ClassVar[str] = "timer"

    @property
    def name(self) -> str:
        return "wayline.sleep"


class RetryWait(Wait, tag="retry", frozen=True):
    """The backoff before the next attempt of step ``activity``, over at ``due``."""

    kind: ClassVar[str] = "retry"
    activity: str

    @property
    def name(self) -> str:
        return self.activity


class SignalWait(Wait, tag="signal", frozen=True):
    """``ctx.wait_signal(signal)``; ``due`` is its timeout, if it has one."""

    kind: ClassVar[str] = "signal"
    signal: str

    @property
    def name(self) -> str:
        return self.signal


class CallbackWait(Wait, tag="callback", frozen=True):
    """A callback token the run handed out and waits on (``ctx.wait_for_callback``, an ASL
    ``.waitForTaskToken`` task); ``due`` is the earlier of its deadline and heartbeat deadline.

    Attributes:
        label: the step that waits (an activity name, an ASL step id).
        digests: SHA-256 digests of every token that completes it, the newest last (a sender
            that ran again after a restart handed out a new one; the old ones stay valid).
        deadline: when the whole wait times out (``States.Timeout``).
        heartbeat: seconds allowed between heartbeats (``States.HeartbeatTimeout``).
    """

    kind: ClassVar[str] = "callback"
    label: str
    digests: tuple[str, ...]
    deadline: float | None = None
    heartbeat: float | None = None

    @property
    def name(self) -> str:
        return self.label


class ChildWait(Wait, tag="child", frozen=True):
    """A code workflow awaits the end of its child run ``run_id`` (``child.result()``)."""

    kind: ClassVar[str] = "child"
    run_id: str
    workflow: str = ""

    @property
    def name(self) -> str:
        return self.run_id


class UpdateWait(Wait, tag="update", frozen=True):
    """``ctx.wait_update(update)``: the run waits for an ``rt.update`` named ``update``."""

    kind: ClassVar[str] = "update"
    update: str

    @property
    def name(self) -> str:
        return self.update


AnyWait = TimerWait | RetryWait | SignalWait | CallbackWait | ChildWait | UpdateWait


class CancelRequest(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A cancel the run has applied: the body got it at journal position ``index`` (-1: the
    run is not replayed, as for a state machine), with ``reason``."""

    reason: str | None = None
    index: int = -1


# --- history events -----------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, omit_defaults=True):
    """Base of every history event; ``ts`` is epoch seconds from the runtime's clock."""

    ts: float


class RunStarted(Event, tag="RunStarted", frozen=True):
    """The run was created; ``metadata`` is what it started with (a replay of its body
    begins from it: ``ctx.metadata`` then reads as it did the first time)."""

    workflow: str
    version: str
    input: Any = None
    metadata: dict[str, Any] = {}


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
    """The run ended FAILED; ``error`` is None for a failure with no name (see `ErrorInfo`)."""

    error: str | None = None
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


class Patched(Event, tag="Patched", frozen=True):
    """``ctx.patched(change)`` took the new branch, first asked at journal position ``index``.

    A run that had already passed that point when the code gained the call takes the old
    branch instead, and records nothing: on every later replay, its journal beyond the point
    says so again.
    """

    change: str
    index: int


class ChildStarted(Event, tag="ChildStarted", frozen=True):
    """``ctx.start_workflow`` at journal position ``index`` started (or found) child run
    ``run_id`` of ``workflow``; ``close`` is what happens to it if the parent ends first."""

    index: int
    workflow: str
    run_id: str
    close: str = "terminate"


class ChildEnded(Event, tag="ChildEnded", frozen=True):
    """``child.result()`` at journal position ``index`` took the end of child run ``run_id``:
    its ``status`` (SUCCEEDED, FAILED, CANCELLED), ``output`` or ``error``/``cause``."""

    index: int
    run_id: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


class ChildMessaged(Event, tag="ChildMessaged", frozen=True):
    """``child.signal`` (``kind`` "signal", ``name`` the signal) or ``child.cancel`` (``kind``
    "cancel") at journal position ``index`` reached child run ``run_id``'s inbox."""

    index: int
    run_id: str
    kind: str
    name: str | None = None


class UpdateAccepted(Event, tag="UpdateAccepted", frozen=True):
    """``ctx.wait_update`` at journal position ``index`` took update ``update_id`` named
    ``name`` with ``payload``."""

    index: int
    update_id: str
    name: str
    payload: Any = None


class UpdateAnswered(Event, tag="UpdateAnswered", frozen=True):
    """``upd.reply`` (``result``) or ``upd.reject`` (``error``, ``cause``) at journal position
    ``index`` answered update ``update_id``: what ``rt.update`` returns or raises, and returns
    again to a caller that retries with the same update id."""

    index: int
    update_id: str
    name: str
    result: Any = None
    error: str | None = None
    cause: str | None = None


class ContinuedAsNew(Event, tag="ContinuedAsNew", frozen=True):
    """The first event of a segment of a run that continued as new (``ctx.continue_as_new``):
    segment number ``segment`` (1 for the first continuation), started with ``input``, on
    ``version`` ("" in segments stored before the version could change here: the run's own)."""

    segment: int
    input: Any = None
    version: str = ""


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
    | Patched
    | ChildStarted
    | ChildEnded
    | ChildMessaged
    | ContinuedAsNew
    | UpdateAccepted
    | UpdateAnswered
    | Custom
)


# --- inbox messages -------------------------------------------------------------------------


class InboxMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, omit_defaults=True):
    """A message for a run from outside it, committed to its inbox before delivery (one of
    the subclasses); ``ts`` is when it was accepted (epoch seconds, the runtime's clock)."""

    ts: float = 0.0


class SignalMessage(InboxMessage, tag="signal", frozen=True):
    """``rt.signal(run_id, name, payload)``."""

    name: str
    payload: Any = None


class CancelMessage(InboxMessage, tag="cancel", frozen=True):
    """``rt.cancel(run_id, reason)``; ``terminate``: end the run cancelled at once, without
    giving its body the cancellation to clean up (a parent's ``terminate`` close policy)."""

    reason: str | None = None
    terminate: bool = False


class CallbackMessage(InboxMessage, frozen=True):
    """A message for the callback wait holding the token whose SHA-256 digest is ``digest``."""

    digest: str


class CallbackCompletion(CallbackMessage, tag="callback.complete", frozen=True):
    """``rt.complete_callback(token, output)``."""

    output: Any = None


class CallbackFailure(CallbackMessage, tag="callback.fail", frozen=True):
    """``rt.fail_callback(token, error, cause)``."""

    error: str
    cause: str | None = None


class CallbackBeat(CallbackMessage, tag="callback.heartbeat", frozen=True):
    """``rt.heartbeat(token)``: the wait's heartbeat timeout starts again from ``ts``."""


class ChildDone(InboxMessage, tag="child.done", frozen=True):
    """Child run ``run_id`` (started with ``ctx.start_workflow``) ended: its final
    ``status``, ``output`` or ``error``. Sent to its parent's inbox."""

    run_id: str
    status: str
    output: Any = None
    error: ErrorInfo | None = None


class UpdateMessage(InboxMessage, tag="update", frozen=True):
    """``rt.update(run_id, name, payload, update_id=...)``: a request the run answers."""

    update_id: str
    name: str
    payload: Any = None


class StartMessage(InboxMessage, tag="start", frozen=True):
    """A run was created by a client (``open_runtime(..., worker=False)``), which runs
    nothing: committed with the run, it tells the workers to load it (the inbox is what they
    watch). The run consumes it and nothing else changes."""


AnyInboxMessage = (
    SignalMessage
    | CancelMessage
    | CallbackCompletion
    | CallbackFailure
    | CallbackBeat
    | ChildDone
    | UpdateMessage
    | StartMessage
)


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
    waits: tuple[AnyWait, ...] = ()
    inbox_seq: int = 0  # highest inbox message consumed
    trace: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    tags: tuple[str, ...] = ()  # labels a listing can filter on (``rt.list_runs(tag=...)``)
    state: Any = None  # workflow-kind specific state (the ASL interpreter's snapshot)
    tail: tuple[AnyEvent, ...] = ()  # events not yet moved to the history table
    cancel: CancelRequest | None = None  # the cancel the run applied, if it was cancelled
    segment: int = 0  # how many times the run has continued as new (ctx.continue_as_new)
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
