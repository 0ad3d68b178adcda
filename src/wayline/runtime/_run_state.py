"""What a run actor works with: its mailbox messages, its bookkeeping, and pure helpers."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._errors import ActivityError, CallbackError, PayloadError, SignalTimeoutError
from ..actors import TimerHandle
from ..persistence import ErrorInfo, decode_any, encode
from ._commands import Step
from .asl import StatesError

#: The journal name of a durable sleep.
SLEEP_STEP = "wayline.sleep"
#: Events kept in the snapshot before they move to the history table (see `_checkpoint`).
TAIL_MAX = 32


class RunCancelledError(BaseException):
    """Thrown into a workflow body when its run is cancelled.

    A `BaseException`, so ``except Exception`` in workflow code cannot swallow it; catch it
    explicitly (or use ``finally``) to run compensation steps, then let it propagate.
    """

    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        super().__init__(reason or "run cancelled")


# --- mailbox messages ---------------------------------------------------------------------


@dataclass(slots=True)
class Kick:
    """Start (or restart) driving the body."""


#: The one `Kick` every run is sent (it carries nothing, so one object serves them all).
KICK = Kick()


@dataclass(slots=True)
class StepDone:
    index: int
    attempt: int
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class TimerFired:
    index: int
    attempt: int


@dataclass(slots=True)
class Cancel:
    reason: str | None = None
    seq: int | None = None  # the inbox message carrying it, consumed when it is applied


@dataclass(slots=True)
class Deliver:
    """A signal committed to the run's inbox as message ``seq``."""

    seq: int
    name: str
    payload: Any = None


@dataclass(slots=True)
class Passivate:
    """The run has waited ``passivate_after`` seconds: leave memory if still only waiting."""


@dataclass(slots=True)
class CallbackReady:
    """Callback wait ``index`` has an outcome, or a heartbeat to record."""

    index: int


#: What the body resumes with: a value to send in, or an exception to throw in.
Outcome = tuple[Any, BaseException | None]

RunMessage = Kick | StepDone | TimerFired | Cancel | Deliver | Passivate | CallbackReady


# --- bookkeeping for what the body waits on -----------------------------------------------


@dataclass(slots=True, eq=False)
class _Group:
    """What the body is blocked on: one step, a gather/map, or a sleep."""

    indices: list[int]
    single: bool
    tolerated: int = 0
    max_concurrency: int | None = None
    results: list[Any] = field(default_factory=list)
    failures: list[ActivityError] = field(default_factory=list)
    remaining: int = 0
    queued: deque[int] = field(default_factory=deque)
    running: int = 0


@dataclass(slots=True, eq=False)
class _Pending:
    step: Step[Any] | None  # None for a sleep
    group: _Group | None  # None for a single step awaited inline
    slot: int  # position in the group's results
    attempt: int = 1
    signal: str | None = None  # for a wait_signal: the signal's name
    started_at: float = 0.0
    task: asyncio.Task[None] | None = None
    timer: TimerHandle | None = None


@dataclass(slots=True)
class _Journaled:
    name: str
    result: Any = None
    error: ErrorInfo | None = None
    attempts: int = 1


def _journaled_outcome(entry: _Journaled, run_id: str = "") -> tuple[Any, BaseException | None]:
    if entry.error is None:
        return entry.result, None
    if entry.name.startswith("signal:"):
        return None, SignalTimeoutError(run_id, entry.name[len("signal:") :], None)
    if entry.name.startswith("callback:"):
        return None, CallbackError(entry.name[len("callback:") :], entry.error.error, entry.error.cause)
    return None, ActivityError(entry.name, entry.error.error, entry.error.cause, entry.attempts)


def _storable(value: Any) -> bool:
    try:
        encode(value)
    except PayloadError:
        return False
    return True


def _failure(exc: Exception) -> ErrorInfo:
    """How an exception that ended a workflow body is recorded."""
    if isinstance(exc, ActivityError):
        return ErrorInfo(exc.error, exc.cause)
    if isinstance(exc, StatesError):
        return ErrorInfo(exc.error or "", exc.cause)
    return ErrorInfo(type(exc).__name__, str(exc))


_PLAIN = (int, float, str, bool, bytes, type(None))


def _shaped(value: Any, type_: Any) -> Any:
    """A stored value as the code declared it: ``value`` converted into ``type_`` (a Struct, a
    tuple, a dataclass...), or as plain decoded data where nothing is declared."""
    if type_ is Any:
        return value
    try:
        return msgspec.convert(value, type_, strict=False)
    except (msgspec.ValidationError, TypeError):
        return value  # the annotation does not describe what was stored: give the data as is


def _as_replayed(value: Any) -> Any:
    """The value as a replay will give it back: what the journal decodes to.

    Results are stored as msgspec data, so a Struct or a tuple comes back from the journal as a
    dict or a list; handing the body the same shape on the first run keeps live runs and
    replays alike. Plain scalars are returned as they are (the common, cheap case).
    """
    if type(value) in _PLAIN:
        return value
    return decode_any(encode(value))
