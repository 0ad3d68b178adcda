"""OpenTelemetry traces of runs, through the OpenTelemetry API only.

The trace of a run::

    caller's span (if one was active at rt.start)
    └── run <workflow>          segment 1: opened by rt.start, one incarnation of the run's actor
        ├── step <name>         one span per step attempt (the activity's own spans nest in it)
        ├── ...
        └── run <workflow>      segment 2 (after a crash, passivation, in another process...),
            └── step <name>     linked to the segment before it

The context of segment 1 (the run's root) and of the latest segment is kept in the run's
snapshot (``RunRecord.trace``, W3C ``traceparent`` strings), so every segment, in whatever
process, continues the same trace. Spans carry ids and names only, never inputs, outputs,
payloads, vars or tokens.

A `Segment` learns how each attempt ended from the journal events of the run's checkpoints
(``StepSucceeded``, ``StepFailed``...), so the run's state machine knows nothing of telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ...persistence import (
    AnyEvent,
    AnyWait,
    CallbackCompleted,
    CallbackFailed,
    CallbackHeartbeat,
    ErrorInfo,
    RunRecord,
    RunStatus,
    SignalReceived,
    SignalTimedOut,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
)
from .._commands import SLEEP_STEP
from ._metrics import Metrics
from ._names import ATTEMPT, OUTCOME, RUN_ID, STATUS, STEP, VERSION, WORKFLOW

PROPAGATOR = TraceContextTextMapPropagator()
EMPTY = Context()  # a parent context with no span: the span starts a new trace


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


def carrier(span: Span) -> dict[str, str]:
    """The W3C trace context naming ``span``."""
    out: dict[str, str] = {}
    PROPAGATOR.inject(out, context=trace.set_span_in_context(span, EMPTY))
    return out


def span_context(traceparent: str) -> trace.SpanContext:
    return trace.get_current_span(PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()


def _description(error: str, cause: str | None) -> str:
    return f"{error}: {cause}" if cause else error


class Segment:
    """Telemetry of one incarnation of a run actor: its span, its step spans, step metrics.

    The run actor calls these hooks only when it has a segment (something is configured).
    """

    __slots__ = (
        "_attempts",
        "_crashed",
        "_ctx",
        "_finished",
        "_metrics",
        "_recording",
        "_run",
        "_trace",
        "_tracer",
        "_waits",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer | None,
        metrics: Metrics | None,
        record: RunRecord,
        span: Span | None,
        trace_context: dict[str, str],
        crashed: dict[str, dict[str, str]],
    ) -> None:
        self._trace = trace_context
        self._tracer = tracer
        self._metrics = metrics
        self._crashed = crashed  # where a crashed segment leaves its trace for the restarted one
        self._run = (record.run_id, record.workflow, record.version)
        self.span = span
        self._ctx = trace.set_span_in_context(span, EMPTY) if span is not None else None
        # A segment the sampler dropped gets no step spans: with the usual parent-based
        # sampling they would be dropped too, after costing nearly as much as recorded ones.
        self._recording = span is not None and span.is_recording()
        self._attempts: dict[int, Span] = {}
        self._waits: tuple[AnyWait, ...] = record.waits
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

    def _succeeded(self, index: int, name: str, started_at: float, now: float) -> None:
        """The attempt returned and its result is handed to the checkpoint: its span ends.

        Ended now, not once the commit is durable: a done-callback on the commit per step
        cost about a sixth of the whole tracing overhead in the tracing benchmark. Commit
        latency is the ``wayline.checkpoint.duration`` metric.
        """
        if self._metrics is not None:
            self._metrics.step(self._run[1], name, now - started_at, "succeeded")
        span = self._attempts.pop(index, None)
        if span is not None:
            span.end()

    def _failed(self, ev: StepFailed, started_at: float, retry_in: float | None) -> None:
        """The attempt failed; ``retry_in`` is the backoff before the next one (None: final)."""
        if self._metrics is not None:
            self._metrics.step(self._run[1], ev.step, ev.ts - started_at, "failed" if retry_in is None else "retried")
        span = self._attempts.pop(ev.index, None)
        if span is None:
            return
        span.set_status(Status(StatusCode.ERROR, _description(ev.error, ev.cause)))
        span.add_event("exception", {"exception.type": ev.error, "exception.message": ev.cause or ""})
        if retry_in is not None:
            span.add_event("wayline.retry", {"wayline.retry.delay": retry_in, ATTEMPT: ev.attempt + 1})
        else:
            span.set_attribute(OUTCOME, "failed")
        span.end()

    def _steps(self, events: Sequence[AnyEvent]) -> None:
        started = 0.0
        for i, ev in enumerate(events):
            if isinstance(ev, StepStarted):
                started = ev.ts
            elif isinstance(ev, StepSucceeded):
                if ev.step != SLEEP_STEP:
                    self._succeeded(ev.index, ev.step, started, ev.ts)
            elif isinstance(ev, StepFailed):
                following = events[i + 1] if i + 1 < len(events) else None
                retry_in = following.delay if isinstance(following, StepRetrying) and not ev.final else None
                self._failed(ev, started, retry_in)

    # --- checkpoints, waits, the end -----------------------------------------------------

    def checkpointed(self, events: Sequence[AnyEvent], record: RunRecord) -> None:
        """A checkpoint of ``record`` with ``events`` was submitted: attempts it records end;
        waits it opens or closes, signals it consumes and the run's end become events of the
        segment span."""
        if events and (self._attempts or self._metrics is not None):
            self._steps(events)
        span = self.span
        if span is None or not self._recording:
            return
        waits = record.waits
        if waits or self._waits:
            _wait_events(span, self._waits, waits)
            self._waits = waits
        for event in events:
            if isinstance(event, SignalReceived):
                span.add_event("wayline.signal", {"wayline.signal.name": event.name})
            elif isinstance(event, SignalTimedOut):
                span.add_event("wayline.signal.timeout", {"wayline.signal.name": event.name})
            elif isinstance(event, CallbackCompleted):
                span.add_event("wayline.callback", {"wayline.step": event.step, OUTCOME: "completed"})
            elif isinstance(event, CallbackFailed):
                span.add_event(
                    "wayline.callback",
                    {"wayline.step": event.step, OUTCOME: "failed", "wayline.callback.error": event.error},
                )
            elif isinstance(event, CallbackHeartbeat):
                span.add_event("wayline.callback.heartbeat", {"wayline.step.index": event.index})
        status = record.status
        if status.finished and not self._finished:
            self._finished = True
            span.set_attribute(STATUS, status.value)
            span.add_event("wayline.checkpoint", {STATUS: status.value})
            if status is RunStatus.FAILED:
                error = record.error or ErrorInfo("Unknown")
                span.set_status(Status(StatusCode.ERROR, _description(error.error, error.cause)))

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
            self._crashed[self._run[0]] = self._trace
        span.end()


def _wait_events(span: Span, before: tuple[AnyWait, ...], after: tuple[AnyWait, ...]) -> None:
    old = {(w.kind, w.name, w.step) for w in before}
    new = {(w.kind, w.name, w.step) for w in after}
    for w in before:
        if (w.kind, w.name, w.step) not in new:
            span.add_event("wayline.wake", _wait_attributes(w))
    for w in after:
        if (w.kind, w.name, w.step) not in old:
            attributes = _wait_attributes(w)
            if w.due is not None:
                attributes["wayline.wait.due"] = w.due
            span.add_event("wayline.wait", attributes)


def _wait_attributes(wait: AnyWait) -> dict[str, Any]:
    # A callback's wait is named by its step (its label), never by a token digest.
    attributes: dict[str, Any] = {"wayline.wait.kind": wait.kind, "wayline.wait.step": wait.step}
    if wait.name:
        attributes["wayline.wait.name"] = wait.name
    return attributes
