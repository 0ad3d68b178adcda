"""`Telemetry`: what one runtime reports to OpenTelemetry (traces and metrics).

Cost: whether the tracer and meter providers are real (an SDK) is decided once per runtime.
With neither, `Telemetry.open_segment` returns no segment and the run actor does no
telemetry work per step; the API's no-op objects are never called on the hot path.
"""

from __future__ import annotations

from typing import Any

import msgspec
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider

from ..._otel import resolve_meter_provider
from ...persistence import RunRecord
from ._metrics import Metrics, StatisticsSource, metrics_for
from ._names import RUN_ID, SEGMENT, SEGMENT_KEY, SEGMENTS_KEY, STATUS, VERSION, WORKFLOW
from ._tracing import EMPTY, PROPAGATOR, Segment, carrier, resolve_tracer, span_context


class Telemetry:
    """The tracer and metrics of one runtime, and the first segments rt.start opens."""

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        self.tracer = resolve_tracer(tracer_provider)
        provider = resolve_meter_provider(meter_provider)
        self.metrics: Metrics | None = metrics_for(provider) if provider is not None else None
        self.enabled = self.tracer is not None or self.metrics is not None
        # The trace of a run whose segment crashed, for the restarted one: the crashed
        # segment may have ended before its context reached a checkpoint.
        self._crashed: dict[str, dict[str, str]] = {}
        # First segments opened by rt.start, until the run's actor takes them over.
        self._opened: dict[str, Span] = {}
        self._source: StatisticsSource | None = None

    def watch(self, source: StatisticsSource) -> None:
        """Report ``source``'s statistics in the gauges, until `close`."""
        if self.metrics is not None:
            self._source = source
            self.metrics.sources.add(source)

    # --- rt.start ------------------------------------------------------------------------

    def start_run(self, workflow: str, version: str, run_id: str) -> tuple[Span | None, dict[str, str]]:
        """Open the run's first segment span, a child of the caller's active span, and return
        it with the trace context to store in the new run's record.

        Opened here rather than by the actor so that the trace id is durable with the run
        from its creation: a crash before the first checkpoint cannot start a second trace.
        """
        if self.tracer is None:
            return None, {}
        span = self.tracer.start_span(
            f"run {workflow}",
            kind=SpanKind.CONSUMER,
            attributes={RUN_ID: run_id, WORKFLOW: workflow, VERSION: version, SEGMENT: 1},
        )
        return span, carrier(span)

    def run_created(self, span: Span | None, run_id: str, workflow: str, created: bool) -> None:
        """rt.start committed a new run (``created``): its actor takes the span over. Or the
        run existed already: the span only records that call."""
        if self.metrics is not None and created:
            self.metrics.runs_started.add(1, {WORKFLOW: workflow})
        if span is None:
            return
        if created:
            self._opened[run_id] = span
        else:
            span.update_name(f"start {workflow}")
            span.set_attribute("wayline.existing", True)
            span.end()

    def close(self) -> None:
        """The runtime closes: end first segments whose actor never started, stop reporting."""
        for span in self._opened.values():
            span.set_attribute("wayline.segment.end", "stopped")
            span.end()
        self._opened.clear()
        if self.metrics is not None and self._source is not None:
            self.metrics.sources.discard(self._source)
            self._source = None

    def start_failed(self, span: Span | None, exc: BaseException) -> None:
        if span is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()

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
        whose trace context now names the new segment (stored with its next checkpoint)."""
        if not self.enabled:
            return None, record
        if self.metrics is not None and reason is not None and reason.startswith("woken by"):
            self.metrics.passivated.add(-1)
        if self.tracer is None:
            return Segment(None, self.metrics, record, None, record.trace, self._crashed), record
        opened = self._opened.pop(record.run_id, None) if reason is None else None
        if opened is not None:  # the first segment, opened by rt.start: the record names it already
            return Segment(self.tracer, self.metrics, record, opened, record.trace, self._crashed), record
        stored = self._crashed.pop(record.run_id, None) or record.trace
        first = stored.get("traceparent")
        number = int(stored.get(SEGMENTS_KEY, "1")) + 1 if first else 1
        attributes: dict[str, Any] = {
            RUN_ID: record.run_id,
            WORKFLOW: record.workflow,
            VERSION: record.version,
            SEGMENT: number,
        }
        if reason is not None:
            attributes["wayline.resume_reason"] = reason
        previous = stored.get(SEGMENT_KEY, first)
        links = [Link(span_context(previous), {"wayline.link": "previous segment"})] if previous else None
        parent = PROPAGATOR.extract(stored) if first else EMPTY
        span = self.tracer.start_span(
            f"run {record.workflow}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        own = carrier(span)
        # A run started while tracing was off (or before this release) has no traceparent:
        # its first traced segment becomes the trace's root and the parent of later ones.
        new = {**stored, SEGMENT_KEY: own.get("traceparent", ""), SEGMENTS_KEY: str(number)} if first else own
        segment = Segment(self.tracer, self.metrics, record, span, new, self._crashed)
        return segment, msgspec.structs.replace(record, trace=new)
