"""OpenTelemetry traces and metrics of runs, through the OpenTelemetry API only.

The trace of a run::

    caller's span (if one was active at rt.start)
    └── run <workflow>          segment 1: opened by rt.start, one incarnation of the run's actor
        ├── step <name>         one span per step attempt (the activity's own spans nest in it)
        ├── ...
        └── run <workflow>      segment 2 (after a crash, passivation, in another process...),
            └── step <name>     linked to the segment before it

The context of segment 1 (the run's root) and of the latest segment is kept in the run's
snapshot (``RunRecord.trace``, W3C ``traceparent`` strings), written with the run itself by
rt.start, so every segment, in whatever process, continues the same trace. Spans carry ids
and names only, never inputs, outputs, payloads, vars or tokens.

Cost: whether the tracer and meter providers are real (an SDK) is decided once per runtime.
With neither, `Telemetry.open_segment` returns no segment and the run actor does no
telemetry work per step; the API's no-op objects are never called on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import context as otel_context, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..persistence import (
    CallbackCompleted,
    CallbackFailed,
    CallbackHeartbeat,
    ErrorInfo,
    RunRecord,
    RunStatus,
    SignalReceived,
    SignalTimedOut,
    Wait,
)
from ..persistence._metrics import resolve_meter_provider
from ._run_state import SLEEP_STEP

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._telemetry_export import ExportHealth, ExportStatus

_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = Context()  # a parent context with no span: the span starts a new trace

#: Keys of ``RunRecord.trace``. ``traceparent`` (and ``tracestate``) is the run's first
#: segment, the parent of every later one; rt.start stores only that. Later segments add:
SEGMENT_KEY = "wayline.segment"  # traceparent of the latest segment (absent: the first one)
SEGMENTS_KEY = "wayline.segments"  # how many segments have started, in decimal (absent: one)

# Attribute names.
RUN_ID = "wayline.run_id"
WORKFLOW = "wayline.workflow"
VERSION = "wayline.version"
STEP = "wayline.step"
ATTEMPT = "wayline.attempt"
SEGMENT = "wayline.segment"
STATUS = "wayline.status"
OUTCOME = "wayline.outcome"


def resolve_tracer(given: TracerProvider | None) -> Tracer | None:
    """A tracer from ``given`` or the global provider; None when nothing would record.

    The API's stand-ins (the proxy before an SDK is set globally, the no-op provider) and an
    SDK disabled by ``OTEL_SDK_DISABLED`` all give None, so runs skip tracing entirely.
    """
    provider = given if given is not None else trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    tracer = provider.get_tracer("wayline")
    return None if isinstance(tracer, trace.NoOpTracer) else tracer


def _carrier(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, _EMPTY))
    return carrier


def _span_context(traceparent: str) -> trace.SpanContext:
    return trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()


def _description(error: str, cause: str | None) -> str:
    return f"{error}: {cause}" if cause else error


class _Instruments:
    """The metric instruments of one meter provider, shared by every runtime using it
    (an SDK meter hands back the first instrument of a name, callbacks and all)."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("wayline")
        self.runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()
        self.runs_started = meter.create_counter(
            "wayline.runs.started", unit="{run}", description="Runs started (rt.start created a new run)"
        )
        self.runs_finished = meter.create_counter(
            "wayline.runs.finished",
            unit="{run}",
            description="Runs that ended, by wayline.status (SUCCEEDED, FAILED, CANCELLED)",
        )
        self.step_duration = meter.create_histogram(
            "wayline.step.duration",
            unit="s",
            description="Duration of step attempts (runtime clock), by step and wayline.outcome",
        )
        self.step_attempts = meter.create_counter(
            "wayline.step.attempts",
            unit="{attempt}",
            description="Step attempts, by step and wayline.outcome (succeeded, retried, failed)",
        )
        self.passivated = meter.create_up_down_counter(
            "wayline.actors.passivated",
            unit="{run}",
            description="Runs this process dropped from memory while waiting and has not reloaded",
        )
        meter.create_observable_gauge(
            "wayline.actors.live", [self._observe_live], unit="{actor}", description="Run actors in memory"
        )
        meter.create_observable_gauge(
            "wayline.mailbox.depth",
            [self._observe_mailboxes],
            unit="{message}",
            description="Messages queued in the mailboxes of live runs (total)",
        )
        meter.create_observable_gauge(
            "wayline.mailbox.depth.max",
            [self._observe_deepest],
            unit="{message}",
            description="The deepest mailbox of a live run",
        )

    def _open(self) -> list[Runtime]:
        return [rt for rt in list(self.runtimes) if not rt._closed]

    def _observe_live(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(len(rt._actors) for rt in self._open()))]

    def _depths(self) -> list[int]:
        return [a.ref.mailbox_depth for rt in self._open() for a in list(rt._actors.values())]

    def _observe_mailboxes(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(self._depths()))]

    def _observe_deepest(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(max(self._depths(), default=0))]


_instruments: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()


def _instruments_for(provider: MeterProvider) -> _Instruments:
    found = _instruments.get(provider)
    if found is None:
        found = _instruments[provider] = _Instruments(provider)
    return found


class Telemetry:
    """What one runtime reports to OpenTelemetry. Built by `open_runtime`."""

    def __init__(
        self, rt: Runtime, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self.tracer = resolve_tracer(tracer_provider)
        provider = resolve_meter_provider(meter_provider)
        self.metrics = _instruments_for(provider) if provider is not None else None
        if self.metrics is not None:
            self.metrics.runtimes.add(rt)
        self.enabled = self.tracer is not None or self.metrics is not None
        # The trace of a run whose segment crashed, for the restarted one: the crashed
        # segment may have ended before its context reached a checkpoint.
        self._crashed: dict[str, dict[str, str]] = {}
        # First segments opened by rt.start, until the run's actor takes them over.
        self._opened: dict[str, Span] = {}

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
        return span, _carrier(span)

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
        """The runtime closes: end first segments whose actor never started."""
        for span in self._opened.values():
            span.set_attribute("wayline.segment.end", "stopped")
            span.end()
        self._opened.clear()

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
            return Segment(self, record, None, record.trace), record
        opened = self._opened.pop(record.run_id, None) if reason is None else None
        if opened is not None:  # the first segment, opened by rt.start: the record names it already
            return Segment(self, record, opened, record.trace), record
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
        links = [Link(_span_context(previous), {"wayline.link": "previous segment"})] if previous else None
        parent = _PROPAGATOR.extract(stored) if first else _EMPTY
        span = self.tracer.start_span(
            f"run {record.workflow}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        own = _carrier(span)
        # A run started while tracing was off (or before this release) has no traceparent:
        # its first traced segment becomes the trace's root and the parent of later ones.
        new = {**stored, SEGMENT_KEY: own.get("traceparent", ""), SEGMENTS_KEY: str(number)} if first else own
        return Segment(self, record, span, new), msgspec.structs.replace(record, trace=new)


class Segment:
    """Telemetry of one incarnation of a run actor: its span, its step spans, step metrics.

    The run actor calls these hooks only when it has a segment (something is configured).
    """

    __slots__ = (
        "_attempts",
        "_ctx",
        "_finished",
        "_metrics",
        "_recording",
        "_run",
        "_tel",
        "_trace",
        "_tracer",
        "_waits",
        "span",
    )

    def __init__(self, tel: Telemetry, record: RunRecord, span: Span | None, trace_context: dict[str, str]) -> None:
        self._tel = tel
        self._trace = trace_context
        self._tracer = tel.tracer
        self._metrics = tel.metrics
        self._run = (record.run_id, record.workflow, record.version)
        self.span = span
        self._ctx = trace.set_span_in_context(span, _EMPTY) if span is not None else None
        # A segment the sampler dropped gets no step spans: with the usual parent-based
        # sampling they would be dropped too, after costing nearly as much as recorded ones.
        self._recording = span is not None and span.is_recording()
        self._attempts: dict[int, Span] = {}
        self._waits: tuple[Wait, ...] = record.waits
        self._finished = False

    # --- step attempts -------------------------------------------------------------------

    def attempt_started(self, index: int, name: str, attempt: int) -> object | None:
        """Open the attempt's span and make it current (the activity's own spans nest under
        it); returns the token for `detach`, or None when not tracing."""
        if self._tracer is None:
            return None
        if not self._recording:
            # The activity's own spans still get the (unsampled) segment as their parent, so
            # parent-based sampling drops them too instead of starting stray traces.
            return otel_context.attach(self._ctx)  # type: ignore[arg-type]
        run_id, workflow, version = self._run
        span = self._tracer.start_span(
            f"step {name}",
            context=self._ctx,
            attributes={RUN_ID: run_id, WORKFLOW: workflow, VERSION: version, STEP: name, ATTEMPT: attempt},
        )
        self._attempts[index] = span
        return otel_context.attach(trace.set_span_in_context(span))

    @contextlib.contextmanager
    def task_attempt(self, state: str, attempt: int, resource: str) -> Iterator[None]:
        """A state machine Task attempt: its span, current while the resource runs (an ASL
        run's steps are its Task attempts; ``attempt`` counts from 1)."""
        if self._tracer is None or not self._recording:
            yield
            return
        run_id, workflow, version = self._run
        attributes: dict[str, str | int] = {
            RUN_ID: run_id,
            WORKFLOW: workflow,
            VERSION: version,
            STEP: state,
            ATTEMPT: attempt,
            "wayline.resource": resource,
        }
        with self._tracer.start_as_current_span(f"step {state}", context=self._ctx, attributes=attributes):
            yield

    @staticmethod
    def detach(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def attempt_succeeded(self, index: int, name: str, started_at: float, now: float) -> None:
        """The attempt returned and its result is handed to the checkpoint: its span ends.

        Ended now, not once the commit is durable: a done-callback on the commit per step
        cost about a sixth of the whole tracing overhead in the tracing benchmark. Commit
        latency is the ``wayline.checkpoint.duration`` metric.
        """
        if self._metrics is not None:
            self._measure(name, started_at, now, "succeeded")
        span = self._attempts.pop(index, None)
        if span is not None:
            span.end()

    def attempt_failed(
        self,
        index: int,
        name: str,
        attempt: int,
        started_at: float,
        failure: tuple[str, str | None],
        now: float,
        retry_in: float | None,
    ) -> None:
        """The attempt failed; ``retry_in`` is the backoff before the next one (None: final)."""
        error, cause = failure
        if self._metrics is not None:
            self._measure(name, started_at, now, "failed" if retry_in is None else "retried")
        span = self._attempts.pop(index, None)
        if span is None:
            return
        span.set_status(Status(StatusCode.ERROR, _description(error, cause)))
        span.add_event("exception", {"exception.type": error, "exception.message": cause or ""})
        if retry_in is not None:
            span.add_event("wayline.retry", {"wayline.retry.delay": retry_in, ATTEMPT: attempt + 1})
        else:
            span.set_attribute(OUTCOME, "failed")
        span.end()

    def _measure(self, name: str, started_at: float, now: float, outcome: str) -> None:
        assert self._metrics is not None
        attributes = {WORKFLOW: self._run[1], STEP: name, OUTCOME: outcome}
        self._metrics.step_duration.record(max(0.0, now - started_at), attributes)
        self._metrics.step_attempts.add(1, attributes)

    # --- checkpoints, waits, the end -----------------------------------------------------

    def checkpointed(self, events: list[Any], record: RunRecord) -> None:
        """A checkpoint of ``record`` with ``events`` was submitted: waits it opens or
        closes, signals it consumes and the run's end become events of the segment span."""
        span = self.span
        if span is None or not self._recording:
            return
        waits = record.waits
        if waits or self._waits:
            self._wait_events(span, self._waits, waits)
            self._waits = waits
        for event in events:
            kind = type(event)
            if kind is SignalReceived:
                span.add_event("wayline.signal", {"wayline.signal.name": event.name})
            elif kind is SignalTimedOut:
                span.add_event("wayline.signal.timeout", {"wayline.signal.name": event.name})
            elif kind is CallbackCompleted:
                span.add_event("wayline.callback", {"wayline.step": event.step, OUTCOME: "completed"})
            elif kind is CallbackFailed:
                span.add_event(
                    "wayline.callback",
                    {"wayline.step": event.step, OUTCOME: "failed", "wayline.callback.error": event.error},
                )
            elif kind is CallbackHeartbeat:
                span.add_event("wayline.callback.heartbeat", {"wayline.step.index": event.index})
        status = record.status
        if status.finished and not self._finished:
            self._finished = True
            span.set_attribute(STATUS, status.value)
            span.add_event("wayline.checkpoint", {STATUS: status.value})
            if status is RunStatus.FAILED:
                error = record.error or ErrorInfo("Unknown")
                span.set_status(Status(StatusCode.ERROR, _description(error.error, error.cause)))

    @staticmethod
    def _wait_events(span: Span, before: tuple[Wait, ...], after: tuple[Wait, ...]) -> None:
        old = {(w.kind, w.key, w.step) for w in before}
        new = {(w.kind, w.key, w.step) for w in after}
        for w in before:
            if (w.kind, w.key, w.step) not in new:
                span.add_event("wayline.wake", _wait_attributes(w))
        for w in after:
            if (w.kind, w.key, w.step) not in old:
                attributes = _wait_attributes(w)
                if w.due is not None:
                    attributes["wayline.wait.due"] = w.due
                span.add_event("wayline.wait", attributes)

    def close(self, error: BaseException | None, passivated: bool) -> None:
        """The actor stopped: end what is still open, and the segment span."""
        if passivated and self._metrics is not None:
            self._metrics.passivated.add(1)
        for attempt in self._attempts.values():
            attempt.set_attribute(OUTCOME, "interrupted")  # cancelled, or the actor stopped mid-attempt
            attempt.end()
        self._attempts.clear()
        span = self.span
        if span is None:
            return
        crashed = error is not None and not isinstance(error, asyncio.CancelledError)
        if error is not None and crashed:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"run actor crashed: {type(error).__name__}"))
            end = "crashed"
        elif self._finished:
            end = "finished"
        elif passivated:
            end = "passivated"
        else:
            end = "stopped"
        span.set_attribute("wayline.segment.end", end)
        if crashed:
            # The restarted actor reloads the last checkpoint, which may predate this segment.
            self._tel._crashed[self._run[0]] = self._trace
        span.end()


def _wait_attributes(wait: Wait) -> dict[str, Any]:
    kind = wait.kind
    if kind == "timer" and wait.key.startswith("sleep:"):
        name = SLEEP_STEP
    elif kind == "retry":
        name = wait.key.rpartition("#")[0]
    else:
        # A callback's key is a token digest: it is named by its step (its label) instead.
        name = wait.key if kind == "signal" else wait.label
    attributes: dict[str, Any] = {"wayline.wait.kind": kind, "wayline.wait.step": wait.step}
    if name:
        attributes["wayline.wait.name"] = name
    return attributes


# --- configuring an SDK (for applications, the CLI and the demo) ----------------------------


class TelemetryProviders:
    """The SDK providers `configure_telemetry` set up; call `shutdown` before exiting so the
    last spans and metrics are exported."""

    def __init__(
        self, tracer_provider: TracerProvider, meter_provider: MeterProvider, health: ExportHealth | None = None
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._health = health

    def export_status(self) -> ExportStatus:
        """What was exported so far and what was not (a failed or skipped export is dropped);
        call it after `shutdown` for the whole story."""
        if self._health is None:
            from ._telemetry_export import ExportStatus

            return ExportStatus()
        return self._health.status

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything recorded so far; False if it did not finish in time."""
        millis = int(timeout_s * 1000)
        traced = self.tracer_provider.force_flush(millis)  # type: ignore[attr-defined]
        measured = self.meter_provider.force_flush(millis)  # type: ignore[attr-defined]
        return bool(traced) and bool(measured)

    def shutdown(self) -> None:
        """Flush and stop both providers (idempotent)."""
        self.tracer_provider.shutdown()  # type: ignore[attr-defined]
        self.meter_provider.shutdown()  # type: ignore[attr-defined]


def _signal_url(base: str, signal: str) -> str:
    return f"{base.rstrip('/')}/v1/{signal}"


def configure_telemetry(
    otlp_endpoint: str | None = None,
    service_name: str = "wayline",
    *,
    set_global: bool = True,
    export_interval_s: float | None = None,
) -> TelemetryProviders:
    """Set up OpenTelemetry SDK tracing and metrics exported over OTLP/HTTP.

    A tracer provider with a batch span processor and a meter provider with a periodic
    reader, both exporting with the official OTLP/HTTP exporters. Call it before
    ``open_runtime`` (which checks once whether a real provider is configured).

    Args:
        otlp_endpoint: the collector's base URL, e.g. ``http://localhost:4318``; spans go to
            ``<endpoint>/v1/traces`` and metrics to ``<endpoint>/v1/metrics``. ``None`` leaves
            it to the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout,
            compression, certificates; the exporters' default is ``http://localhost:4318``).
        service_name: the ``service.name`` resource attribute; other resource attributes
            come from ``OTEL_RESOURCE_ATTRIBUTES``.
        set_global: also install both providers as OpenTelemetry's global ones (once per
            process), so ``open_runtime`` and the application's own instrumentation use them.
            With ``False``, pass them to ``open_runtime(tracer_provider=..., meter_provider=...)``.
        export_interval_s: seconds between metric exports; ``None`` follows
            ``OTEL_METRIC_EXPORT_INTERVAL`` (default 60 s).

    Returns:
        The providers, with ``shutdown()`` (flush and stop), ``force_flush()`` and
        ``export_status()``. An export that fails is logged once per outage on the
        ``wayline.telemetry`` logger, and exports are then skipped for 30 s rather than
        retried batch after batch (see ``_telemetry_export``).
    """
    # Imported here: the SDK and the exporter (requests, protobuf) cost import time that a
    # runtime which never exports should not pay.
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from ._telemetry_export import ExportHealth, ReportingMetricExporter, ReportingSpanExporter

    resource = Resource.create({SERVICE_NAME: service_name})
    if otlp_endpoint is not None:
        span_exporter = OTLPSpanExporter(endpoint=_signal_url(otlp_endpoint, "traces"))
        metric_exporter = OTLPMetricExporter(endpoint=_signal_url(otlp_endpoint, "metrics"))
    else:
        span_exporter = OTLPSpanExporter()
        metric_exporter = OTLPMetricExporter()
    health = ExportHealth(otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
    tracer_provider = SdkTracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ReportingSpanExporter(span_exporter, health)))
    interval = None if export_interval_s is None else export_interval_s * 1000
    reader = PeriodicExportingMetricReader(
        ReportingMetricExporter(metric_exporter, health), export_interval_millis=interval
    )
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return TelemetryProviders(tracer_provider, meter_provider, health)
