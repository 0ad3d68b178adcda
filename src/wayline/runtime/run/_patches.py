"""``ctx.patched(change)``: which branch of a code change a run takes, decided once and journaled.

New code can change a workflow while runs are in flight by asking ``if ctx.patched("x"):``
around the new steps. A run that reaches that point for the first time takes the new branch,
and a `Patched` event says so from its next checkpoint on; a run that had already passed that
point (it is replaying a journal that goes beyond it, with no such event) takes the old branch,
exactly as the code it ran then did. The answer is kept for the rest of the run, so a change
asked again later answers the same.
"""

from __future__ import annotations

from ...persistence import Patched
from ._state import RunState


def patched(s: RunState, change: str) -> bool:
    """Whether the run ``s`` takes the new branch of ``change`` (the body is at ``s.next_index``)."""
    answers = s.patches
    if answers is None:
        answers = s.patches = {}
    taken = answers.get(change)
    if taken is not None:
        return taken
    journal = s.journal
    if change in journal.patches:
        taken = True
    else:
        here = s.next_index
        # Anything journaled, started or waited on at or after this position means the run
        # went past it before, without the call: the old branch is the one it took.
        passed = here < journal.frontier or any(index >= here for index in s.restored_waits)
        taken = not passed
        if taken:
            s.events.append(Patched(ts=s.now, change=change, index=here))
    answers[change] = taken
    return taken


class PatchCheck:
    """``ctx.patched`` of one run: `patched` on its state. A slotted object rather than a
    ``partial`` (which brings an argument tuple and an empty keyword dict): every run in
    memory holds one."""

    __slots__ = ("state",)

    def __init__(self, state: RunState) -> None:
        self.state = state

    def __call__(self, change: str) -> bool:
        return patched(self.state, change)
