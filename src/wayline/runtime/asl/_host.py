"""The host protocol: every effect the interpreter needs, behind one small interface.

The interpreter is pure apart from these calls, so a durable runtime implements them with
its store, timers and activity workers, and tests implement them in memory
(:class:`~wayline.runtime.asl.LocalHost`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._machine import StateMachine

__all__ = ("AslHost",)


class AslHost(Protocol):
    """What :func:`~wayline.runtime.asl.execute` needs from its environment.

    Failures are reported by raising :class:`~wayline.runtime.asl.StatesError` with the
    ASL error name (``States.Timeout``, ``States.HeartbeatTimeout``, ``States.TaskFailed``
    or a resource's own error name); Retry and Catch match on it.
    """

    def now(self) -> float:
        """Return the current time as epoch seconds (virtual in tests)."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Wait until epoch time ``when``: a durable timer (Wait states, retry backoff)."""
        ...

    async def invoke(
        self,
        resource: str,
        payload: Any,
        *,
        state: str,
        step: str,
        attempt: int,
        timeout_seconds: float | None,
        heartbeat_seconds: float | None,
    ) -> Any:
        """Call a Task resource and return its result.

        ``state`` is the state's name; ``step`` identifies this execution of it uniquely and
        deterministically within the run (it includes the Map item or Parallel branch and
        the visit, and survives a restart). ``(run id, step, attempt)``, with ``attempt``
        counting from 0, is the idempotency key.
        For a ``.waitForTaskToken`` resource, the payload already contains the token; the
        result of this call is ignored and :meth:`wait_task_token` supplies the result.
        Enforce ``timeout_seconds`` (``States.Timeout``) and ``heartbeat_seconds``
        (``States.HeartbeatTimeout``) as you can.
        """
        ...

    async def new_task_token(self, *, state: str, step: str) -> str:
        """Create an unguessable callback token for a ``.waitForTaskToken`` task."""
        ...

    async def wait_task_token(
        self, token: str, *, timeout_seconds: float | None, heartbeat_seconds: float | None
    ) -> Any:
        """Wait until the token whose digest (``digest_token``) is ``token`` is completed,
        and return its output. Only the digest is kept in snapshots, so that is what a
        resumed task has.

        Raise ``StatesError`` with the error given to the failure call, or
        ``States.Timeout`` / ``States.HeartbeatTimeout`` when the deadline passes.
        """
        ...

    async def start_child(
        self, machine: str | StateMachine, input: Any, *, name: str, wait: bool = True, deadline: float | None = None
    ) -> Any:
        """Run a child execution to completion and return its output.

        ``machine`` is a registered machine's name or ARN (``states:startExecution.sync``),
        or a :class:`StateMachine` compiled from a distributed Map's ItemProcessor. ``name``
        is deterministic for a given parent run, state and item (and durable before this is
        called), so a host can deduplicate after a restart. Raise ``StatesError`` if the
        child fails. With ``wait=False`` (``states:startExecution``) only start it: return
        at once, or, for a host that cannot run it apart, run it without raising its failure.
        With ``deadline`` (host time, a ``.sync`` Task's TimeoutSeconds) raise
        ``States.Timeout`` if the child has not ended by then, and stop it.
        """
        ...

    async def stop_children(self, names: list[str], reason: str) -> None:
        """Stop the child executions ``names`` that are still running (a distributed Map
        failed: its other items are abandoned). Names never started are ignored."""
        ...

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """Persist ``snapshot`` (pass it as ``resume=`` to continue) and new history events.

        The snapshot is a live structure the interpreter keeps mutating: encode (or copy)
        it before the first ``await``; the run goes on only after this call returns, so
        return once it is durable. Events are new since the previous call, in order. Calls
        never overlap for one run: concurrent Map items share one checkpoint.
        """
        ...
