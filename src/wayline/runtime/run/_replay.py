"""A stored run's body replayed against its code with no effect performed (``wayline replay``).

The body is driven by the run's own state machine (`decide`), fed from the stored history
exactly as a restart feeds it, and the effects are skipped: no activity runs, no timer is
set, nothing is written. The replay ends where the journal ends: at the first step that would
be new work, at a wait, or when the body returns or raises.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..._errors import NonDeterminismError
from ...actors import SystemClock
from ...persistence import AnyEvent, RunRecord
from .._commands import SLEEP_STEP
from .._context import RunContext
from .._definitions import WorkflowDef
from .._metadata import RunMetadata, replayed_metadata
from .._vars import typed_vars
from . import _code as code
from ._decide import decide
from ._effects import Effect, Finished, Resume
from ._journal import wait_name
from ._restore import restore
from ._state import RunState
from ._values import as_replayed, shaped

#: Body steps a replay may take before it is stopped: a body that loops forever on journaled
#: values must not hang the tool.
MAX_STEPS = 1_000_000


def replay_body(
    record: RunRecord, history: list[AnyEvent], workflow: WorkflowDef[Any, Any]
) -> tuple[RunRecord | None, int, str | None]:
    """Replay run ``record`` against ``workflow``'s code. Returns the record it would end
    with, if the replay ends it (None while it is blocked at the end of its journal); how many
    journal positions the code took; and, for a replay that blocks, how it departs from what
    the run was waiting on (a `NonDeterminismError` message), if it does."""
    ctx = RunContext(record.run_id, record.workflow, record.version, SystemClock())
    ctx.started_at = record.created_at
    state, first = restore(
        record, history, [], ctx, reason="replay", direct=False, passivate=False, now=record.updated_at
    )
    ctx.metadata = RunMetadata(replayed_metadata(record, history), record.run_id)
    ctx.tags = record.tags
    check = typed_vars(ctx, workflow.vars_schema, record.run_id)
    body = workflow.body(ctx, shaped(as_replayed(record.input), workflow.input_type))
    ended: RunRecord | None = None
    todo: deque[Effect] = deque()
    for message in first:
        todo.extend(decide(state, message)[1])
    steps = 0
    try:
        # As `RunActor.receive`, minus the I/O: only the body's steps are performed, and what
        # the body did is decided at once, before the effects left.
        while todo and steps < MAX_STEPS:
            effect = todo.popleft()
            if type(effect) is Resume:
                steps += 1
                todo.extendleft(reversed(decide(state, code.step(body, effect.value, effect.error, check))[1]))
            elif type(effect) is Finished:
                ended = effect.record
    finally:
        body.close()
    return ended, state.next_index, None if ended is not None else _departure(state, record)


def _requested(state: RunState, index: int) -> str | None:
    """What the replayed body awaits at ``index``, named as `wait_name` names a wait."""
    if state.inline_index == index and state.inline_step is not None:
        return state.inline_step.activity.name  # a step the body awaits alone
    pending = state.active.get(index)
    if pending is not None:
        if pending.step is not None:
            return pending.step.activity.name
        return f"signal:{pending.signal}" if pending.signal is not None else SLEEP_STEP
    callback = state.callbacks.get(index)
    if callback is not None:
        return f"callback:{callback.step}"
    wait = state.waits.get(index)  # a child's end, an update
    return wait_name(wait) if wait is not None else None


def _departure(state: RunState, record: RunRecord) -> str | None:
    """The first wait of the stored run that the replayed body does not await the same way.

    Replay compares what the body asks for with the journal of settled positions; a position
    the run was still waiting on has no journal entry yet, so a body that now does something
    else there (a new step before the wait, another signal) is only seen here.
    """
    for wait in sorted(record.waits, key=lambda w: w.step):
        if wait.step < 0:
            continue  # a state machine's callback: not a body position
        recorded, requested = wait_name(wait), _requested(state, wait.step)
        if requested != recorded:
            now = requested if requested is not None else f"nothing (the code stops at #{state.next_index})"
            return str(NonDeterminismError(record.run_id, wait.step, recorded, now))
    return None
