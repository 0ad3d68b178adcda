"""What a code workflow's actor does for its child runs (the I/O the `_children` decisions ask
for): start one, send one a signal or a cancel. Each outcome goes back to `decide` as a message."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context

from ..._errors import (
    PayloadError,
    RunAlreadyFinishedError,
    RunConflictError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from .._port import RunPort
from .._telemetry import Segment
from ._children import child_metadata
from ._effects import MessageChildRun, StartChildRun
from ._messages import ChildMessageDone, ChildStartDone


async def start_child(
    port: RunPort,
    parent: str,
    segment: Segment | None,
    effect: StartChildRun,
    inherited: tuple[dict[str, Any], tuple[str, ...]] = ({}, ()),
) -> ChildStartDone:
    """Start the child run (nothing if it exists: a replay after a crash finds it).

    ``inherited`` is the parent's metadata and tags as the child takes them over (a
    correlation id carries down the family); the child's own parent entry is added here.
    """
    done = ChildStartDone(effect.index, effect.workflow, effect.run_id, effect.close)
    # The child's root is a child of the parent's root: the family is one trace.
    joined = otel_context.attach(segment.root) if segment is not None else None
    try:
        metadata = {**inherited[0], **child_metadata(parent)}
        await port.start_child(
            effect.workflow, effect.input, run_id=effect.run_id, metadata=metadata, tags=inherited[1]
        )
    except (RunConflictError, WorkflowNotFoundError, PayloadError) as exc:
        done.error = exc
    finally:
        if joined is not None:
            otel_context.detach(joined)
    return done


async def message_child(port: RunPort, effect: MessageChildRun) -> ChildMessageDone:
    """Send the child its signal, or its cancel (nothing if it has ended)."""
    done = ChildMessageDone(effect.index, effect.run_id, effect.kind, effect.name)
    try:
        if effect.kind == "signal":
            assert effect.name is not None
            await port.signal_run(effect.run_id, effect.name, effect.payload)
        else:
            try:
                await port.cancel_run(effect.run_id, effect.name)
            except RunAlreadyFinishedError:
                pass  # nothing left to cancel
    except (RunAlreadyFinishedError, RunNotFoundError) as exc:
        done.error = exc
    return done
