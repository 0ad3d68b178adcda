"""What a stopped process left behind, as the segment that resumes the run sees it.

A run resumed after its process stopped (killed, or shut down) or its actor crashed starts
from its last checkpoint. Nothing was written when the process stopped, so the checkpoint
is all there is to go on, and it is enough: it says when the run was last known to be
alive (its time), and the journal says where the body stood. Every attempt the resumed
segment starts before its first checkpoint (or, for a step the body awaits alone, the first
one) is one the stopped process had in flight: the body replays to exactly where it was, and
asks for those steps again. So re-executions are known without a write per step.

The resumed segment reports two spans, in its first checkpoint:

- the segment that stopped, whose span its process never ended (a killed process ends
  nothing; a process shutting down leaves it to this report too, so that each segment is
  reported once): from its start, kept in the trace context, to the last checkpoint;
- ``interrupted``, from the last checkpoint to the resumption: the gap, with an event per
  step attempt that was lost (it runs again as the next attempt, with the same idempotency
  key), and an error status when one was.

They go out with the first checkpoint, which also stores this segment's own number and
start: if this process dies before that, the next one reports the same stop, once.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from ._names import (
    ATTEMPT,
    INTERRUPTED_SPAN,
    RESUME_REASON,
    RUN_ID,
    SEGMENT,
    STEP,
    STEP_ID,
    STEP_INDEX,
    VERSION,
    WORKFLOW,
)
from ._tracing import ns


class Recovery:
    """A segment's view of the stop it resumes from, until its first checkpoint."""

    __slots__ = ("counting", "lost", "previous", "reason", "since", "until")

    def __init__(self, since: float, until: float, reason: str, previous: tuple[int, float] | None) -> None:
        self.since = since  # the last checkpoint: the run was alive then
        self.until = until  # the resumption
        self.reason = reason
        #: The segment that stopped without ending its span: its number and start (None when
        #: it ended its span itself: an actor that crashed in this process).
        self.previous = previous
        #: Attempts in flight at the stop: (step name, position or id, attempt as numbered then).
        self.lost: list[tuple[str, int | str, int]] = []
        self.counting = True  # attempts that start now are re-executions

    def emit(self, tracer: Tracer, root: Context, run: tuple[str, str, str]) -> None:
        run_id, workflow, version = run
        since = ns(self.since)
        previous = self.previous
        if previous is not None:
            number, start = previous
            name = f"{'execute' if number == 1 else 'resume'} {workflow}"
            attributes: dict[str, Any] = {
                RUN_ID: run_id,
                WORKFLOW: workflow,
                VERSION: version,
                SEGMENT: number,
                "wayline.segment.end": "stopped",  # killed or shut down: its process cannot say
            }
            segment = tracer.start_span(
                name, context=root, kind=SpanKind.CONSUMER, attributes=attributes, start_time=ns(min(start, self.since))
            )
            segment.end(end_time=since)
        gap = max(0.0, self.until - self.since)
        attributes = {
            RUN_ID: run_id,
            RESUME_REASON: self.reason,
            "wayline.interrupted.gap_s": round(gap, 6),
            "wayline.interrupted.last_checkpoint": self.since,
        }
        if self.lost:
            attributes["wayline.interrupted.steps"] = [name for name, _, _ in self.lost]
        span = tracer.start_span(INTERRUPTED_SPAN, context=root, attributes=attributes, start_time=since)
        for step, position, attempt in self.lost:
            where = STEP_INDEX if isinstance(position, int) else STEP_ID
            span.add_event("wayline.lost_attempt", {STEP: step, where: position, ATTEMPT: attempt}, since)
        if self.lost:
            steps = ", ".join(f"{step} (attempt {attempt})" for step, _, attempt in self.lost)
            status = f"the run stopped with {len(self.lost)} step attempt(s) in flight: {steps}; they run again"
            span.set_status(Status(StatusCode.ERROR, status))
        span.end(end_time=ns(max(self.until, self.since)))
