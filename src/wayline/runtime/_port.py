"""`RunPort`: what a run may ask of the runtime that runs it, and all it may ask.

A run's actor talks to its owner through this interface, never through the owner's private
members (as httpcore's connections report to their pool through callbacks): its store and
clock, the limit on activities running at once, its workflow definition, notifications of
its life (stopped, finished, passivated), and the child runs it starts, waits for, signals
and stops.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any, Protocol

from ..actors import ActorRef, Clock
from ..persistence import RunRecord, StepStarted, Store, UpdateAnswered
from ._flow_waiting import SlotGate
from ._telemetry import Telemetry
from ._workflows import Workflow


class LiveRun(Protocol):
    """A run in memory, as the runtime sees it (its actor's current incarnation)."""

    @property
    def run_id(self) -> str: ...

    @property
    def ref(self) -> ActorRef[Any]: ...

    @property
    def loaded(self) -> bool:
        """Its snapshot is loaded (it may be asked `live_vars` and `callback_refusal`)."""
        ...

    def live_vars(self) -> dict[str, Any] | None:
        """The body's vars as they are now (None before it has loaded)."""
        ...

    def in_flight(self) -> list[StepStarted]:
        """The step attempts running now, as the ``StepStarted`` events their checkpoint will
        journal (empty before it has loaded)."""
        ...

    def callback_refusal(self, digest: str) -> str | None:
        """Why the run does not accept a message for the token with this digest (None: it
        does); counting answers still in its mailbox."""
        ...


class RunPort(Protocol):
    """The runtime, as one of its runs sees it."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def limiter(self) -> asyncio.Semaphore | None:
        """Held while an activity attempt runs (``max_concurrent_activities``), if set."""
        ...

    @property
    def threads(self) -> Executor:
        """The worker threads that run sync (``def``) activities."""
        ...

    @property
    def passivate_after(self) -> float | None:
        """Seconds a run may only wait before it leaves memory (None: it stays)."""
        ...

    @property
    def telemetry(self) -> Telemetry: ...

    def workflow(self, name: str, run_id: str | None, version: str | None = None) -> Workflow:
        """The registered workflow ``name``, in ``version`` if that is registered, else the
        newest (``WorkflowNotFoundError`` if none is). With no ``run_id`` (not for a run that
        resumes), a ``version`` that is not registered raises ``VersionNotFoundError``."""
        ...

    def slot_gate(self, record: RunRecord) -> SlotGate | None:
        """The slot the run gives back while it waits (``Concurrency(count_waiting=False)``);
        None for every other run."""
        ...

    def run_stopped(self, run: LiveRun) -> None:
        """``run`` has stopped (finished, passivated, crashed or shut down)."""
        ...

    def run_finished(self, record: RunRecord) -> None:
        """The run ended; ``record`` is its final, durable snapshot."""
        ...

    def run_dropped(self, run_id: str, error: BaseException) -> None:
        """A checkpoint of the run was refused (`LeaseLostError`): another worker owns it now."""
        ...

    def run_passivated(self, run_id: str, wake_at: float | None, seen: frozenset[int]) -> None:
        """The run left memory while waiting, having taken in inbox seqs ``seen``: wake it at
        ``wake_at``, or at once if a message newer than all of them arrived meanwhile."""
        ...

    async def start_child(
        self, workflow: str, input: Any, *, run_id: str, metadata: dict[str, Any], tags: tuple[str, ...] = ()
    ) -> None:
        """Start run ``run_id`` of ``workflow`` with ``metadata`` and ``tags`` (nothing if it
        exists). A child run inherits its parent's: see `wayline.runtime._metadata.child_metadata`."""
        ...

    async def cancel_run(self, run_id: str, reason: str | None, *, terminate: bool = False) -> None:
        """Cancel run ``run_id`` (through its inbox, as ``rt.cancel`` does); ``terminate``:
        it ends at once, its body not given the cancellation."""
        ...

    def update_answered(self, run_id: str, event: UpdateAnswered) -> None:
        """The run checkpointed the answer ``event`` to an update: hand it to the caller."""
        ...

    async def signal_run(self, run_id: str, name: str, payload: Any) -> None:
        """Signal run ``run_id`` (through its inbox, as ``rt.signal`` does)."""
        ...

    async def watch_child(self, run_id: str, parent: str) -> None:
        """Run ``parent`` waits for child run ``run_id``: if it has already ended, send its
        end to the parent's inbox again (the notice may have been lost to a crash); if it is
        another run's child, send its end to ``parent`` as well once it ends."""
        ...

    async def notify_parent(self, child: RunRecord) -> None:
        """``child`` (a code workflow's child run) has ended: send its end to its parent's inbox."""
        ...

    async def close_children(self, children: tuple[tuple[str, str], ...], reason: str) -> None:
        """Apply a parent's close policy to each ``(child run id, policy)`` still going."""
        ...

    async def cancel_children(self, parent: RunRecord, reason: str | None) -> None:
        """Cancel the unfinished child runs ``parent`` waits for."""
        ...
