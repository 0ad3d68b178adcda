"""The journal of a code-first run: what each position of its history settled, for replay.

A workflow body is re-entered from the top after a restart; every await it makes takes the
next journal position, and a position that the history already settled returns that outcome
instead of running again. The entries are typed by what the body awaited there (a step, a
sleep, a signal, a callback), so replay checks the kind and the name of each await, and a
body that changed shape fails with `NonDeterminismError` naming both.
"""

from __future__ import annotations

import msgspec

from ..._errors import ActivityError, CallbackError, NonDeterminismError, RunCancelled, RunFailed, SignalTimeoutError
from ...persistence import (
    AnyEvent,
    AnyWait,
    CallbackCompleted,
    CallbackFailed,
    CallbackWait,
    ChildEnded,
    ChildMessaged,
    ChildStarted,
    ChildWait,
    ErrorInfo,
    Patched,
    RetryWait,
    SignalReceived,
    SignalTimedOut,
    SignalWait,
    StepFailed,
    StepSucceeded,
    TimerWait,
    UpdateAccepted,
    UpdateAnswered,
    UpdateWait,
)
from .._commands import SLEEP_STEP
from ._tables import EMPTY, own

_NO_PATCHES: frozenset[str] = frozenset()


class StepEntry(msgspec.Struct, gc=False):
    """A step that ended: its result, or the error it failed with for good."""

    name: str
    result: object = None
    error: ErrorInfo | None = None
    attempts: int = 1


class SleepEntry(msgspec.Struct, gc=False):
    """A durable sleep that is over."""


class SignalEntry(msgspec.Struct, gc=False):
    """A ``wait_signal`` that took a signal's payload, or timed out."""

    name: str
    payload: object = None
    timed_out: bool = False


class CallbackEntry(msgspec.Struct, gc=False):
    """A callback wait that was completed (its output) or failed (the error)."""

    step: str
    result: object = None
    error: ErrorInfo | None = None


class ChildStartEntry(msgspec.Struct, gc=False):
    """``ctx.start_workflow`` started child run ``run_id`` of ``workflow``."""

    workflow: str
    run_id: str = ""


class ChildResultEntry(msgspec.Struct, gc=False):
    """``child.result()`` took the end of child run ``run_id``."""

    run_id: str
    status: str = ""
    output: object = None
    error: str | None = None
    cause: str | None = None


class ChildMessageEntry(msgspec.Struct, gc=False):
    """``child.signal`` / ``child.cancel`` reached child run ``run_id``."""

    run_id: str
    kind: str
    name: str | None = None


class UpdateEntry(msgspec.Struct, gc=False):
    """``ctx.wait_update`` took update ``update_id`` with ``payload``."""

    name: str
    update_id: str = ""
    payload: object = None


class UpdateReplyEntry(msgspec.Struct, gc=False):
    """``upd.reply`` / ``upd.reject`` answered update ``update_id``."""

    update_id: str


Entry = (
    StepEntry
    | SleepEntry
    | SignalEntry
    | CallbackEntry
    | ChildStartEntry
    | ChildResultEntry
    | ChildMessageEntry
    | UpdateEntry
    | UpdateReplyEntry
)


def describe(entry: Entry) -> str:
    """How an await is named in a `NonDeterminismError`: the step name, ``signal:<name>``..."""
    match entry:
        case StepEntry(name=name):
            return name
        case SleepEntry():
            return SLEEP_STEP
        case SignalEntry(name=name):
            return f"signal:{name}"
        case CallbackEntry(step=step):
            return f"callback:{step}"
        case ChildStartEntry(workflow=workflow):
            return f"start_workflow:{workflow}"
        case ChildResultEntry(run_id=run_id):
            return f"child:{run_id}"
        case ChildMessageEntry(run_id=run_id, kind="signal", name=name):
            return f"signal {name} to child:{run_id}"
        case ChildMessageEntry(run_id=run_id, kind=kind):
            return f"{kind} child:{run_id}"
        case UpdateEntry(name=name):
            return f"update:{name}"
        case UpdateReplyEntry(update_id=update_id):
            return f"reply:{update_id}"
    raise AssertionError(entry)


def wait_name(wait: AnyWait) -> str:
    """A stored wait, named as `describe` names what a body awaits there."""
    match wait:
        case TimerWait():
            return SLEEP_STEP
        case RetryWait(activity=activity):
            return activity
        case SignalWait(signal=signal):
            return f"signal:{signal}"
        case CallbackWait(label=label):
            return f"callback:{label}"
        case ChildWait(run_id=run_id):
            return f"child:{run_id}"
        case UpdateWait(update=update):
            return f"update:{update}"
    raise AssertionError(wait)


def check_wait(run_id: str, wait: AnyWait | None, requested: str) -> None:
    """Check that the body awaits at a position what the run was waiting on there before it
    left memory (a restart, passivation), if it was waiting there.

    A position the run was still waiting on has no journal entry, so `Journal.take` cannot
    see a body that now does something else there (a new step before the wait, another
    signal); without this the run would drop the wait it had and go on with the new code
    as if it had never waited, which ``wayline replay`` reports as a departure too.

    Raises:
        NonDeterminismError: it awaits something else there.
    """
    if wait is not None:
        recorded = wait_name(wait)
        if recorded != requested:
            raise NonDeterminismError(run_id, wait.step, recorded, requested)


def outcome(entry: Entry, run_id: str) -> tuple[object, BaseException | None]:
    """What the body gets back from a settled entry: a value, or an error to raise."""
    match entry:
        case StepEntry(name=name, result=result, error=None):
            return result, None
        case StepEntry(name=name, error=ErrorInfo(error=error, cause=cause), attempts=attempts):
            # A step's failure always has a name (StepFailed.error is a str): `or` only narrows.
            return None, ActivityError(name, error or "", cause, attempts)
        case SleepEntry():
            return None, None
        case SignalEntry(timed_out=True, name=name):
            return None, SignalTimeoutError(run_id, name, None)
        case SignalEntry(payload=payload):
            return payload, None
        case CallbackEntry(result=result, error=None):
            return result, None
        case CallbackEntry(step=step, error=ErrorInfo(error=error, cause=cause)):
            return None, CallbackError(step, error or "", cause)  # as above: always named
        case ChildResultEntry():
            return child_outcome(entry.run_id, entry.status, entry.output, entry.error, entry.cause)
        case UpdateEntry(update_id=update_id, payload=payload):
            return (update_id, payload), None
        case ChildStartEntry() | ChildMessageEntry() | UpdateReplyEntry():
            return None, None
    raise AssertionError(entry)


def child_outcome(
    run_id: str, status: str, output: object, error: str | None, cause: str | None
) -> tuple[object, BaseException | None]:
    """What ``child.result()`` gives back for a child that ended with ``status``."""
    if status == "SUCCEEDED":
        return output, None
    if status == "CANCELLED":
        return None, RunCancelled(run_id, cause)
    return None, RunFailed(run_id, error, cause)


class Journal:
    """The settled positions of one run, loaded from its history, taken as the body replays."""

    __slots__ = ("entries", "failed_attempts", "frontier", "patches", "run_id", "updates")

    def __init__(self, run_id: str, history: list[AnyEvent]) -> None:
        self.run_id = run_id
        self.entries: dict[int, Entry] = {}
        #: Failed attempts of steps that have not ended: the next attempt's number follows them.
        self.failed_attempts: dict[int, int] = EMPTY  # written through `own`
        #: One past the highest position any event names (settled, started or waiting there):
        #: the run had got that far before this replay (`ctx.patched` asks).
        self.frontier = 0
        #: The changes ``ctx.patched`` took the new branch of (`Patched` events).
        self.patches: frozenset[str] | set[str] = _NO_PATCHES  # a set of its own at the first
        #: The ids of the updates the run took (a second delivery of one is ignored).
        self.updates: frozenset[str] | set[str] = _NO_PATCHES
        for ev in history:
            index = getattr(ev, "index", None)
            if index is not None and index >= self.frontier and type(ev) is not Patched:
                self.frontier = index + 1
            if type(ev) is StepSucceeded:
                if ev.step == SLEEP_STEP:
                    self.entries[ev.index] = SleepEntry()
                else:
                    self.entries[ev.index] = StepEntry(ev.step, ev.result, None, ev.attempt)
            elif type(ev) is StepFailed:
                if ev.final:
                    self.entries[ev.index] = StepEntry(ev.step, None, ErrorInfo(ev.error, ev.cause), ev.attempt)
                else:
                    self.failed_attempts = own(self.failed_attempts)
                    self.failed_attempts[ev.index] = ev.attempt
            elif type(ev) is SignalReceived:
                self.entries[ev.index] = SignalEntry(ev.name, ev.payload)
            elif type(ev) is SignalTimedOut:
                self.entries[ev.index] = SignalEntry(ev.name, timed_out=True)
            elif type(ev) is CallbackCompleted:
                self.entries[ev.index] = CallbackEntry(ev.step, ev.result)
            elif type(ev) is CallbackFailed:
                self.entries[ev.index] = CallbackEntry(ev.step, error=ErrorInfo(ev.error, ev.cause))
            elif type(ev) is ChildStarted:
                self.entries[ev.index] = ChildStartEntry(ev.workflow, ev.run_id)
            elif type(ev) is ChildEnded:
                self.entries[ev.index] = ChildResultEntry(ev.run_id, ev.status, ev.output, ev.error, ev.cause)
            elif type(ev) is ChildMessaged:
                self.entries[ev.index] = ChildMessageEntry(ev.run_id, ev.kind, ev.name)
            elif type(ev) is UpdateAccepted:
                self.entries[ev.index] = UpdateEntry(ev.name, ev.update_id, ev.payload)
                updates: set[str] = self.updates if isinstance(self.updates, set) else set()
                updates.add(ev.update_id)
                self.updates = updates
            elif type(ev) is UpdateAnswered:
                self.entries[ev.index] = UpdateReplyEntry(ev.update_id)
            elif type(ev) is Patched:
                # Asked before position `index` was taken: the positions before it were passed.
                patches: set[str] = self.patches if isinstance(self.patches, set) else set()
                patches.add(ev.change)
                self.patches = patches
                self.frontier = max(self.frontier, ev.index)

    def __contains__(self, index: int) -> bool:
        return index in self.entries

    def take(self, index: int, requested: Entry) -> Entry | None:
        """The entry settled at ``index`` (removed: each is replayed once), or None if the
        position is new work. ``requested`` says what the body awaits there now (its name
        fields only are read).

        Raises:
            NonDeterminismError: the journal settled something else at ``index``.
        """
        entry = self.entries.pop(index, None)
        if entry is not None and (type(entry) is not type(requested) or describe(entry) != describe(requested)):
            raise NonDeterminismError(self.run_id, index, describe(entry), describe(requested))
        return entry

    def attempts(self, index: int) -> int:
        """The number of the next attempt of step ``index``."""
        failed = self.failed_attempts
        return failed.get(index, 0) + 1 if failed else 1
