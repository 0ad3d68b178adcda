"""The state of one live run: everything its state machine decides from, and nothing else.

No event loop, task, timer or store in here: the actor that owns a `RunState` performs the
effects `decide` returns and keeps the I/O handles (tasks, timers) itself. The state is
mutated in place by `decide` rather than copied per message: a run takes tens of thousands of
messages in a benchmark, and a copy of its dicts per step would be garbage-collector work for
nothing, since only its own actor ever holds it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..._errors import ActivityError
from ..._tokens import new_token
from ...persistence import (
    AnyEvent,
    AnyWait,
    CallbackWait,
    CancelRequest,
    ErrorInfo,
    RunRecord,
    RunStatus,
)
from .._commands import Step
from .._context import RunContext
from .._vars import plain
from ..asl import StatesError
from ._effects import Checkpoint, Effect
from ._journal import CallbackEntry, Journal
from ._tables import EMPTY

#: Events kept in the snapshot before they move to the history table (see `checkpoint`).
TAIL_MAX = 32


#: What the body resumes with: a value to send in, or an exception to throw in.
Outcome = tuple[Any, BaseException | None]


class Group:
    """What the body is blocked on: one step, a gather/map, a sleep, a signal or callback wait."""

    __slots__ = (
        "failures",
        "indices",
        "max_concurrency",
        "queued",
        "remaining",
        "results",
        "running",
        "single",
        "tolerated",
    )

    def __init__(
        self,
        indices: list[int],
        *,
        single: bool,
        tolerated: int = 0,
        max_concurrency: int | None = None,
        size: int = 1,
        remaining: int = 0,
    ) -> None:
        self.indices = indices
        self.single = single
        self.max_concurrency = max_concurrency
        self.results: list[Any] = [None] * size
        self.failures: list[ActivityError] | None = None  # made at the first
        self.remaining = remaining
        self.queued: deque[int] | None = None  # a gather's steps not started yet (made by it)
        self.running = 0
        self.tolerated = tolerated  # failures allowed before the group fails


class Pending:
    """A step the run has started and not settled: its attempt, where its result goes."""

    __slots__ = ("attempt", "group", "running", "signal", "slot", "started_at", "step")

    def __init__(
        self, step: Step[Any] | None, group: Group | None, slot: int, attempt: int = 1, signal: str | None = None
    ) -> None:
        self.step = step  # None for a sleep or a signal wait
        self.group = group  # None for a single step the body awaits alone
        self.slot = slot  # position in the group's results
        self.attempt = attempt
        self.signal = signal  # a wait_signal: the signal's name
        self.started_at = 0.0
        self.running = False  # an attempt runs as a task of its own


class Callback:
    """A callback wait: the tokens that complete it, its deadlines, its outcome once known."""

    __slots__ = ("awaiting", "beat_deadline", "deadline", "digests", "heartbeat", "index", "outcome", "step")

    def __init__(
        self,
        index: int,
        step: str,
        digests: list[str],
        deadline: float | None = None,
        heartbeat: float | None = None,
        beat_deadline: float | None = None,
    ) -> None:
        self.index = index
        self.step = step
        self.digests = digests  # every token digest that completes it; the newest last
        self.deadline = deadline
        self.heartbeat = heartbeat
        self.beat_deadline = beat_deadline
        #: An outcome that arrived, and how to record it: (value, error, event, inbox seq).
        self.outcome: tuple[Any, BaseException | None, AnyEvent, int | None] | None = None
        self.awaiting = False  # the body is blocked on it (code) / a task waits on it (ASL)

    def due(self) -> float | None:
        deadline, beat = self.deadline, self.beat_deadline
        if deadline is None:
            return beat
        return deadline if beat is None else min(deadline, beat)

    def wait(self) -> CallbackWait:
        return CallbackWait(
            step=self.index,
            due=self.due(),
            label=self.step,
            digests=tuple(self.digests),
            deadline=self.deadline,
            heartbeat=self.heartbeat,
        )


class Child:
    """A child run the body started: its workflow, close policy, and whether its end has
    been taken by a ``child.result()``."""

    __slots__ = ("close", "ended", "workflow")

    def __init__(self, workflow: str, close: str) -> None:
        self.workflow = workflow
        self.close = close
        #: Its end once a ``child.result()`` took it: (status, output, error, cause).
        self.ended: tuple[str, Any, str | None, str | None] | None = None


class Family:
    """What a run keeps of its child runs and of the updates sent to it."""

    __slots__ = ("child_early", "child_waiters", "children", "taken_updates", "update_waiters", "updates")

    def __init__(self) -> None:
        #: Child runs the body started, by run id.
        self.children: dict[str, Child] = {}
        self.child_waiters: dict[str, int] = {}  # child run id -> position awaiting its end
        self.child_early: dict[str, tuple[int, Any]] = {}  # a child's end not awaited yet: (seq, ChildDone)
        self.updates: dict[str, deque[tuple[int, Any]]] = {}  # delivered updates not taken yet, by name
        self.update_waiters: dict[str, int] = {}  # update name -> position waiting on it
        self.taken_updates: set[str] = set()  # ids of the updates taken since the run loaded


def family(s: RunState) -> Family:
    """The run's `Family`, made if it has none yet."""
    f = s.family
    if f is None:
        f = s.family = Family()
    return f


def fresh_token(run_id: str) -> str:
    """A new unguessable callback token for ``run_id``."""
    return new_token(run_id)[0]


class RunState:
    """One run as its state machine sees it. Built by `restore`; changed only by `decide`.

    Attributes:
        now: the time of the message being decided (epoch seconds); set by the caller of
            `decide` before each call, so the state machine never reads a clock.
    """

    __slots__ = (
        "active",
        "callback_digests",
        "callback_early",
        "callback_journal",
        "callbacks",
        "cancel",
        "cancel_reason",
        "cancel_requested",
        "consumed",
        "ctx",
        "direct",
        "events",
        "family",
        "finished",
        "group",
        "inline_attempt",
        "inline_index",
        "inline_started",
        "inline_step",
        "journal",
        "next_direct",
        "next_index",
        "now",
        "passivate",
        "patches",
        "record",
        "restored_waits",
        "run_id",
        "seen",
        "signal_waiters",
        "signals",
        "steps",
        "tokens",
        "waits",
        "waits_dirty",
    )

    def __init__(self, record: RunRecord, ctx: RunContext, journal: Journal, *, direct: bool, passivate: bool) -> None:
        self.run_id = record.run_id
        self.record = record  # the last snapshot handed to the store
        self.ctx = ctx  # the body's context: its vars go into every snapshot
        self.direct = direct  # a state machine: its interpreter runs itself, nothing is replayed
        self.passivate = passivate  # waiting runs may leave memory
        self.journal = journal
        # The snapshot's waits, until the body reopens each (it replays up to them).
        self.restored_waits: dict[int, AnyWait] = {w.step: w for w in record.waits} if record.waits else EMPTY
        self.next_index = 0
        self.steps = record.steps
        self.active: dict[int, Pending] = {}
        self.waits: dict[int, AnyWait] = {}
        self.events: list[AnyEvent] = []  # recorded with the next checkpoint
        self.consumed: list[int] = []  # inbox messages deleted by the next checkpoint
        self.waits_dirty = False  # a wait changed that no checkpoint has recorded yet
        self.group: Group | None = None
        self.cancel: CancelRequest | None = record.cancel  # applied: the body got it
        self.cancel_requested = False  # accepted, not applied yet: start no new attempt
        self.cancel_reason: str | None = None
        self.signals: dict[str, deque[tuple[int, Any]]] = EMPTY  # delivered, not yet consumed
        self.signal_waiters: dict[str, int] = {}  # signal name -> position waiting on it
        # Inbox messages already applied (restarts redeliver); made at the first one.
        self.seen: set[int] | None = None
        # Callback waits (most runs have none; written through `own`).
        self.callbacks: dict[int, Callback] = EMPTY
        self.callback_digests: dict[str, int] = EMPTY
        self.callback_early: dict[str, list[tuple[int, Any]]] = EMPTY  # for a wait not reopened yet
        self.callback_journal: dict[int, CallbackEntry] = EMPTY
        self.next_direct = -2  # a state machine's callbacks take negative positions
        # ctx.patched answers given to the body so far; made at the first (few runs ask).
        self.patches: dict[str, bool] | None = None
        #: Child runs and updates: made by the first that the run meets (most runs never do,
        #: and their containers would cost every run in memory half a kilobyte).
        self.family: Family | None = None
        self.finished = False
        self.inline_index = -1  # the step attempt running in the run's own task, if any
        self.inline_step: Step[Any] | None = None
        self.inline_attempt = 0
        self.inline_started = 0.0
        self.now = 0.0
        #: Makes a fresh callback token for a run id: randomness is an input, like time.
        self.tokens: Callable[[str], str] = fresh_token

    def take_restored(self, index: int) -> AnyWait | None:
        """Take the snapshot's wait at ``index`` out of `restored_waits` (None if none)."""
        waits = self.restored_waits
        wait = waits.pop(index, None)
        if wait is not None and not waits:
            self.restored_waits = EMPTY
        return wait

    def running_steps(self) -> bool:
        """An attempt runs as a task of its own."""
        return any(p.running for p in self.active.values())

    def only_waiting(self) -> bool:
        """Blocked on durable waits alone, with nothing running and nothing unrecorded: the
        run may leave memory."""
        return (
            not self.finished
            and not self.direct
            and self.inline_index < 0
            and bool(self.waits or self.signal_waiters)
            and not self.running_steps()
            and not self.events
            and not self.consumed
            and not self.waits_dirty
        )

    def snapshot(self, status: RunStatus, seq: int, tail: tuple[AnyEvent, ...], **changes: Any) -> RunRecord:
        rec = self.record
        return RunRecord(
            run_id=rec.run_id,
            workflow=rec.workflow,
            version=rec.version,
            status=status,
            input=rec.input,
            vars=plain(self.ctx.vars),
            created_at=rec.created_at,
            updated_at=self.now,
            history_seq=seq,
            steps=self.steps,
            state=changes.pop("state", rec.state),
            waits=tuple(self.waits.values()),
            tail=tail,
            trace=rec.trace,
            metadata=self.ctx.metadata.data,
            tags=rec.tags,
            cancel=self.cancel,
            segment=rec.segment,
            **changes,
        )

    def checkpoint(
        self,
        out: list[Effect],
        events: list[AnyEvent],
        status: RunStatus | None = None,
        consumed: tuple[int, ...] = (),
        **changes: Any,
    ) -> None:
        """Checkpoint the run as it is now, plus ``events``.

        Events join the snapshot's tail; the tail moves to the history table when it is long,
        or when the run stops running (waits or ends), so a waiting run's snapshot stays small.
        """
        if self.events:
            events, self.events = [*self.events, *events], []
        if self.consumed:
            consumed, self.consumed = (*self.consumed, *consumed), []
        if status is None:
            status = RunStatus.WAITING if self.waits and not self.running_steps() else RunStatus.RUNNING
        previous = record = self.record
        tail = record.tail
        if events:
            tail = (*tail, *events)
        seq = record.history_seq
        flush: list[AnyEvent] = []
        if tail and (len(tail) >= TAIL_MAX or status is not RunStatus.RUNNING):
            flush, tail = list(tail), ()
            seq += 1
        self.record = self.snapshot(status, seq, tail, **changes)
        out.append(Checkpoint(self.record, previous, flush, consumed, events))

    def flush_if_events(self, out: list[Effect]) -> None:
        """Once the body is blocked again, record buffered events (a resume marker, a consumed
        signal) and any wait it now blocks on: a timer's due time must be durable before the
        run sleeps, or a restart would compute it afresh."""
        if self.events or self.waits_dirty:
            self.waits_dirty = False
            self.checkpoint(out, [])


def failure(exc: BaseException) -> ErrorInfo:
    """How an exception that ended a workflow body is recorded."""
    if isinstance(exc, ActivityError):
        return ErrorInfo(exc.error, exc.cause)
    if isinstance(exc, StatesError):
        return ErrorInfo(exc.error, exc.cause)  # None stays None, as AWS reports it
    return ErrorInfo(type(exc).__name__, str(exc))
