"""What callers hold of a run: `RunHandle` (its outcome, later) and `RunInfo` (a description)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .._errors import RunCancelled, RunFailed
from ..persistence import AnyWait, ErrorInfo, RetryWait, RunRecord, RunStatus, StoreHealth, TimerWait
from ._telemetry import trace_id

T = TypeVar("T")


class _Runtime(Protocol):
    """What a handle needs of the runtime that made it."""

    async def describe(self, run_id: str) -> RunInfo: ...

    async def cancel(self, run_id: str, reason: str | None = None) -> None: ...

    async def _wait_finished(self, run_id: str) -> RunRecord: ...


@dataclass(frozen=True, slots=True)
class StepAttemptInfo:
    """A step attempt running now (`RunInfo.running`).

    Attributes:
        step: the step's name; ``index`` its position in the run's journal. For a state
            machine's Task: its step id (the state's name with the Map item or Parallel
            branch leading to it, as `step_info()` gives it), and ``index`` -1.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        since: when the attempt started (epoch seconds, the runtime's clock).
    """

    step: str
    index: int
    attempt: int
    since: float


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as ``rt.describe`` and ``rt.list_runs`` report it."""

    run_id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any
    vars: dict[str, Any]
    output: Any
    error: str | None
    cause: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    steps: int
    waiting_for: tuple[str, ...]
    #: The run's metadata: the entries given to ``rt.start``, inherited or set with
    #: ``ctx.metadata``, and what the runtime records (``parent_run_id`` for a child run of a
    #: state machine, ``redrives``, ``schedule_id``...).
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The run's tags (``rt.start(..., tags=[...])``, inherited by the runs it starts).
    tags: tuple[str, ...] = ()
    #: ``rt.describe`` only: whether the runtime's store can write now (``status`` ``"ok"``,
    #: or ``"degraded"`` / ``"failed"`` with ``cause``, ``reason`` and ``since``). While it
    #: cannot, runs wait where they are instead of failing. None in listings.
    store_health: StoreHealth | None = None
    #: The run's OpenTelemetry trace id (32 hex digits), kept with it since ``rt.start``; None
    #: if it never ran with an OpenTelemetry SDK configured. ``wayline runs trace`` prints it.
    trace_id: str | None = None
    #: ``rt.describe`` only: the step attempts running now, oldest first. Known to the
    #: runtime that runs the run (from its memory: an attempt is stored only once it ends),
    #: so empty when ``live`` is False.
    running: tuple[StepAttemptInfo, ...] = ()
    #: ``rt.describe`` only: this runtime runs the run now, so ``running`` and ``vars`` are
    #: current. False for a run another process runs: then all of it is as of the run's last
    #: checkpoint (``updated_at``), and a step it may be running is not shown.
    live: bool = False

    @classmethod
    def from_record(cls, rec: RunRecord, vars: dict[str, Any] | None = None) -> RunInfo:
        return cls(
            run_id=rec.run_id,
            workflow=rec.workflow,
            version=rec.version,
            status=rec.status,
            input=rec.input,
            vars=dict(rec.vars if vars is None else vars),
            output=rec.output,
            error=rec.error.error if rec.error else None,
            cause=rec.error.cause if rec.error else None,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
            ended_at=rec.ended_at,
            steps=rec.steps,
            waiting_for=tuple(_waiting_for(w) for w in rec.waits),
            metadata=dict(rec.metadata),
            tags=rec.tags,
            trace_id=trace_id(rec.trace) if rec.trace else None,
        )


def _waiting_for(wait: AnyWait) -> str:
    """How ``waiting_for`` names a wait: ``<kind>:<what>`` (a sleep by its journal position)."""
    if type(wait) is TimerWait:
        return f"timer:sleep:{wait.step}"
    if type(wait) is RetryWait:
        return f"retry:{wait.activity}#{wait.step}"
    return f"{wait.kind}:{wait.name}"


class RunHandle(Generic[T]):
    """A reference to one run; ``await handle.result()`` waits for its outcome."""

    __slots__ = ("_rt", "run_id")

    def __init__(self, rt: _Runtime, run_id: str) -> None:
        self._rt = rt
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"

    async def result(self) -> T:
        """The run's output once it ends.

        Raises:
            RunFailed: the run failed (``error`` and ``cause`` say why).
            RunCancelled: the run was cancelled.
        """
        rec = await self._rt._wait_finished(self.run_id)
        if rec.status is RunStatus.SUCCEEDED:
            out: T = rec.output
            return out
        err = rec.error or ErrorInfo("Unknown")
        if rec.status is RunStatus.CANCELLED:
            raise RunCancelled(self.run_id, err.cause)
        raise RunFailed(self.run_id, err.error, err.cause)

    async def describe(self) -> RunInfo:
        return await self._rt.describe(self.run_id)

    async def cancel(self, reason: str | None = None) -> None:
        await self._rt.cancel(self.run_id, reason)
