"""`step_info()`: what an activity can learn about the step attempt it is running as."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step attempt the current activity runs as.

    Attributes:
        run_id: the run.
        step: the step's name.
        index: the step's position in the run's journal.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        workflow: the name of the run's workflow.
    """

    run_id: str
    step: str
    index: int
    attempt: int
    workflow: str = ""

    @property
    def idempotency_key(self) -> str:
        """``run_id:index:attempt``: the same if this attempt runs again after a crash.

        An attempt interrupted by a crash is run again with the same attempt number, so a
        payment provider given this key charges once. Use `step_key` instead to deduplicate
        across retries too.
        """
        return f"{self.run_id}:{self.index}:{self.attempt}"

    @property
    def step_key(self) -> str:
        """``run_id:index``: the same for every attempt of this step."""
        return f"{self.run_id}:{self.index}"


_current: ContextVar[StepInfo | None] = ContextVar("wayline_step", default=None)


def step_info() -> StepInfo:
    """The `StepInfo` of the step attempt running now; call it inside an activity.

    Raises:
        LookupError: not called from inside an activity run by wayline.
    """
    info = _current.get()
    if info is None:
        raise LookupError("step_info() is only available inside an activity run by ctx.run / ctx.gather / ctx.map")
    return info
