"""`ChildHandle`: a child run as the workflow body that started it sees it."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._commands import AwaitChild, MessageChild

T = TypeVar("T")


class ChildHandle(Generic[T]):
    """A child run started with ``ctx.start_workflow``.

    Every method returns something to ``await`` in the parent's body, and each is journaled
    like a step: after a restart the parent gets the same answers and sends nothing twice
    that it had recorded as sent.

    Attributes:
        run_id: the child run's id (also a run of its own: ``rt.describe(run_id)``).
        workflow: the child's workflow name.
    """

    __slots__ = ("run_id", "workflow")

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id = run_id
        self.workflow = workflow

    def result(self) -> AwaitChild[T]:
        """The child's output once it ends (a durable wait; the parent may leave memory).

        Raises:
            RunFailed: the child failed (its ``error`` and ``cause``).
            RunCancelled: the child was cancelled.
        """
        return AwaitChild(self.run_id)

    def signal(self, name: str, payload: Any = None) -> MessageChild:
        """Send the child signal ``name`` (as ``rt.signal`` does). Like a step it is sent at
        least once: a crash right after sending and before the parent's next checkpoint sends
        it again on restart.

        Raises:
            RunAlreadyFinishedError: the child has ended.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"child.signal needs a signal name (a non-empty string), got {name!r}")
        return MessageChild(self.run_id, "signal", name, payload)

    def cancel(self, reason: str | None = None) -> MessageChild:
        """Cancel the child (as ``rt.cancel`` does: its body gets `Cancelled`); nothing if it
        has ended. Awaiting ``result()`` afterwards raises `RunCancelled`."""
        return MessageChild(self.run_id, "cancel", reason, None)

    def __repr__(self) -> str:
        return f"<ChildHandle {self.workflow!r} run {self.run_id!r}>"
