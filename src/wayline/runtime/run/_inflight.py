"""The step attempts a live run has in flight, read from its state in memory.

A step's ``StepStarted`` is journaled with its outcome, in the same checkpoint: writing it
when the attempt starts would cost every step a second commit. So while an attempt runs the
store does not know of it; the run's actor does, and this is what it tells ``rt.describe``
and ``rt.history``.
"""

from __future__ import annotations

from ...persistence import StepStarted
from ._state import RunState


def in_flight(state: RunState) -> list[StepStarted]:
    """The attempts running now, oldest first, as the ``StepStarted`` events their
    checkpoint will journal (so a history read now ends where the stored one will go on)."""
    found: list[StepStarted] = []
    step = state.inline_step
    if state.inline_index >= 0 and step is not None:
        found.append(
            StepStarted(
                ts=state.inline_started, step=step.activity.name, index=state.inline_index, attempt=state.inline_attempt
            )
        )
    for index, pending in state.active.items():
        if pending.running and pending.step is not None:
            found.append(
                StepStarted(
                    ts=pending.started_at, step=pending.step.activity.name, index=index, attempt=pending.attempt
                )
            )
    found.sort(key=lambda e: (e.ts, e.index))
    return found
