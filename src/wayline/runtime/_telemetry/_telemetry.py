"""`Telemetry`: what one runtime reports to OpenTelemetry (traces and metrics).

Cost: whether the tracer and meter providers are real (an SDK) is decided once per runtime.
With neither, `Telemetry.open_segment` returns no segment and the run actor does no
telemetry work per step; the API's no-op objects are never called on the hot path.
"""

from __future__ import annotations

from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider

from ..._otel import resolve_meter_provider
from ...actors import Clock, SystemClock
from ...persistence import RunRecord
from ._exceptions import exception_attributes
from ._metrics import Metrics, StatisticsSource, metrics_for
from ._names import (
    PASSIVATED_SPAN,
    RECOVERED,
    RESTARTED,
    RESUME_REASON,
    RUN_ID,
    SEGMENT,
    SEGMENT_START_KEY,
    SEGMENTS_KEY,
    STATUS,
    VERSION,
    WOKEN,
    WORKFLOW,
)
from ._recovery import Recovery
from ._segment import Segment
from ._tracing import EMPTY, carrier, in_context, ns, parent, resolve_tracer, span_context, trace_id


class Telemetry:
    """The tracer and metrics of one runtime, and the roots rt.start opens."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        *,
        clock: Clock | None = None,
        passivate_after: float | None = None,
    ) -> None:
        self.tracer = resolve_tracer(tracer_provider)
        provider = resolve_meter_provider(meter_provider)
        self.metrics: Metrics | None = metrics_for(provider) if provider is not None else None
        self.enabled = self.tracer is not None or self.metrics is not None
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.passivate_after = passivate_after
        # The trace of a run whose segment crashed, for the restarted one: the crashed
        # segment may have ended before its context reached a checkpoint.
        self._crashed: dict[str, dict[str, str]] = {}
        self._source: StatisticsSource | None = None

    def watch(self, source: StatisticsSource) -> None:
        """Report ``source``'s statistics in the gauges, until `close`."""
        if self.metrics is not None:
            self._source = source
            self.metrics.sources.add(source)

    # --- rt.start ------------------------------------------------------------------------

    def start_run(self, workflow: str, version: str, run_id: str) -> tuple[Span | None, dict[str, str]]:
        """Open the run's root span, a child of the caller's active span, and return it with
        the trace context to store in the new run's record.

        Opened here rather than by the actor so that the trace id is durable with the run
        from its creation: a crash before the first checkpoint cannot start a second trace.
        """
        if self.tracer is None:
            return None, {}
        root = self.tracer.start_span(
            f"run {workflow}",
            kind=SpanKind.PRODUCER,
            attributes={RUN_ID: run_id, WORKFLOW: workflow, VERSION: version},
            start_time=ns(self.clock.time()),
        )
        return root, carrier(root)

    def run_created(self, root: Span | None, run_id: str, workflow: str, existing: RunRecord | None) -> None:
        """rt.start committed a new run (``existing`` is None): its root ends now, so it is
        exported within the exporter's batch delay whatever happens next. Or the run existed:
        this call is a ``start <workflow>`` span, in the caller's trace and linked to the
        run's root if a span is active, else in the run's own trace."""
        if self.metrics is not None and existing is None:
            self.metrics.runs_started.add(1, {WORKFLOW: workflow})
        if root is None or self.tracer is None:
            return
        now = ns(self.clock.time())
        if existing is None:
            root.end(end_time=now)
            return
        # The root opened for it is never ended, so never exported: the run has its own.
        attributes: dict[str, Any] = {RUN_ID: run_id, WORKFLOW: workflow, "wayline.existing": True}
        stored = existing.trace
        caller = trace.get_current_span()
        links = None
        if caller.get_span_context().is_valid:
            context = None
            if trace_id(stored) is not None:
                links = [Link(span_context(stored), {"wayline.link": "the run"})]
        else:
            context = parent(stored)
        span = self.tracer.start_span(
            f"start {workflow}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes=attributes,
            links=links,
            start_time=now,
        )
        span.end(end_time=now)

    def close(self) -> None:
        """The runtime closes: stop reporting."""
        if self.metrics is not None and self._source is not None:
            self.metrics.sources.discard(self._source)
            self._source = None

    def start_failed(self, root: Span | None, exc: BaseException) -> None:
        if root is not None:
            root.add_event("exception", exception_attributes(exc, type(exc).__name__, str(exc)))
            root.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            root.end()

    def passivated_found(self, count: int) -> None:
        """Recovery left ``count`` waiting runs passivated in the store (passivated by an
        earlier process): they count as passivated until a message or timer reloads them."""
        if self.metrics is not None and count:
            self.metrics.passivated.add(count)

    def run_finished(self, record: RunRecord) -> None:
        self._crashed.pop(record.run_id, None)
        if self.metrics is not None:
            self.metrics.runs_finished.add(1, {WORKFLOW: record.workflow, STATUS: record.status.value})

    # --- segments ------------------------------------------------------------------------

    def open_segment(self, record: RunRecord, reason: str | None) -> tuple[Segment | None, RunRecord]:
        """A run actor starts: its segment (None when nothing is configured) and its record,
        whose trace context now counts the new segment (stored with its next checkpoint)."""
        if not self.enabled:
            return None, record
        woken = reason is not None and reason.startswith(WOKEN)
        if self.metrics is not None and woken:
            self.metrics.passivated.add(-1)
        clock = self.clock
        tracer = self.tracer
        if tracer is None:
            return Segment(None, self.metrics, clock, record, None, EMPTY, self._crashed), record
        now = clock.time()
        run_id = record.run_id
        previous: tuple[int, float] | None = None
        ran = False  # a segment of this run has begun before (with tracing)
        if reason is None and trace_id(record.trace) is not None and SEGMENT_START_KEY not in record.trace:
            # A new run: rt.start made its root, and this dict, the run's own.
            root = parent(record.trace)
            number = 1
            record.trace[SEGMENT_START_KEY] = repr(now)
        else:
            stored = dict(self._crashed.pop(run_id, record.trace))
            if trace_id(stored) is not None:
                root = parent(stored)
                started = stored.get(SEGMENT_START_KEY)
                ran = started is not None
                last = int(stored.get(SEGMENTS_KEY, "1")) if ran else 0  # none ran: created by a client
                if reason == RECOVERED and started is not None:
                    previous = (last, float(started))
                number = last + 1
                if number > 1:
                    stored[SEGMENTS_KEY] = str(number)
            else:
                # Started while tracing was off (or before this release): its root is made
                # now, at its creation time, and stored with its next checkpoint.
                made = tracer.start_span(
                    f"run {record.workflow}",
                    context=EMPTY,
                    kind=SpanKind.PRODUCER,
                    attributes={RUN_ID: run_id, WORKFLOW: record.workflow, VERSION: record.version},
                    start_time=ns(record.created_at),
                )
                made.end(end_time=ns(record.created_at))
                stored.update(carrier(made))
                root = in_context(made)
                number = 1
                ran = True  # untraced segments ran: what they left in flight is worth naming
            stored[SEGMENT_START_KEY] = repr(now)
            record = msgspec.structs.replace(record, trace=stored)
        attributes: dict[str, Any] = {
            RUN_ID: run_id,
            WORKFLOW: record.workflow,
            VERSION: record.version,
            SEGMENT: number,
        }
        if reason is not None:
            attributes[RESUME_REASON] = reason
        # Named apart from the root, so that a resumption does not read as a nested run.
        name = f"{'execute' if number == 1 and not ran else 'resume'} {record.workflow}"
        parent_context = trace.get_current_span(root).get_span_context()
        span: Span
        if parent_context.is_valid and not parent_context.trace_flags.sampled:
            # The sampler dropped the run's root: with the usual parent-based sampling it
            # would drop this too, after the cost of asking it.
            span = trace.NonRecordingSpan(parent_context)
        else:
            span = tracer.start_span(
                name, context=root, kind=SpanKind.CONSUMER, attributes=attributes, start_time=ns(now)
            )
        passivation = self.passivate_after is not None
        segment = Segment(tracer, self.metrics, clock, record, span, root, self._crashed, passivation=passivation)
        if reason is not None and span.is_recording():
            if woken:
                self._passivated(tracer, root, record, reason, now)
            elif (reason == RECOVERED and ran) or reason.startswith(RESTARTED):
                segment.resumed(Recovery(record.updated_at, now, reason, previous))
        return segment, record

    def _passivated(self, tracer: Any, root: Context, record: RunRecord, reason: str, now: float) -> None:
        """The time a woken run spent out of memory: from when it left (its last checkpoint
        plus the passivation delay, after which an idle waiting run leaves) to now."""
        left = record.updated_at + (self.passivate_after or 0.0)
        left = min(max(left, record.updated_at), now)
        span = tracer.start_span(
            PASSIVATED_SPAN,
            context=root,
            attributes={RUN_ID: record.run_id, RESUME_REASON: reason},
            start_time=ns(left),
        )
        span.end(end_time=ns(now))
