"""OpenTelemetry helpers for run traces, through the OpenTelemetry API only.

The trace of a run (see ``docs/tracing.md`` for why it has this shape)::

    caller's span (if one was active at rt.start)
    └── run <workflow>              the root: one per run, ended (exported) as rt.start returns
        ├── execute <workflow>      segment 1: one incarnation of the run's actor, start to stop
        ├── step <name>             each step attempt (the activity's own spans nest in it)
        ├── backoff / sleep / wait signal <name> / wait callback / queued
        ├── passivated              the run was out of memory, waiting
        ├── interrupted             its process stopped: what the last checkpoint left in flight
        └── resume <workflow>       segment 2, 3...: after a crash, passivation, in another process

Everything is a child of the root, never of a segment: a segment span is only exported when
it ends, which a killed process never does and a run waiting for days does late, while the
root is exported at once. So whatever a run did up to its last checkpoint is in the viewer,
under one root, within the exporter's batch delay, whatever happens to the process next.

The root's context is kept in the run's snapshot (``RunRecord.trace``, a W3C
``traceparent``), so every segment, in whatever process, continues the same trace. Spans
carry ids and names only, never inputs, outputs, payloads, vars or tokens. All their times
are the runtime's clock (virtual in tests), so waits and steps line up.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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


def ns(seconds: float) -> int:
    """Epoch seconds (the runtime's clock) as the nanoseconds spans take."""
    return int(seconds * 1e9)


def carrier(span: Span) -> dict[str, str]:
    """The W3C trace context naming ``span`` (what ``TraceContextTextMapPropagator.inject``
    writes, built directly: this runs once per run started)."""
    ctx = span.get_span_context()
    out = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        out["tracestate"] = ctx.trace_state.to_header()
    return out


def parent(stored: dict[str, str]) -> Context:
    """The context whose span is the one ``stored`` names (EMPTY if it names none).

    A plain ``traceparent`` (what wayline writes) is read directly: this runs once per run
    started, and the propagator's general parsing costs several microseconds more."""
    traceparent = stored.get("traceparent")
    if not traceparent:
        return EMPTY
    parts = traceparent.split("-")
    if "tracestate" not in stored and len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        try:
            context = trace.SpanContext(
                int(parts[1], 16), int(parts[2], 16), is_remote=True, trace_flags=trace.TraceFlags(int(parts[3], 16))
            )
        except ValueError:
            context = None
        if context is not None and context.is_valid:
            return trace.set_span_in_context(trace.NonRecordingSpan(context), EMPTY)
    return PROPAGATOR.extract(stored)


def in_context(span: Span) -> Context:
    return trace.set_span_in_context(span, EMPTY)


def span_context(stored: dict[str, str]) -> trace.SpanContext:
    return trace.get_current_span(parent(stored)).get_span_context()


def description(error: str | None, cause: str | None) -> str:
    return ": ".join(part for part in (error, cause) if part)  # an ASL failure may have no error name


def trace_id(stored: dict[str, str]) -> str | None:
    """The trace id (32 hex digits) in a run's stored trace context, if it has one."""
    parts = stored.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


Attributes = dict[str, Any]
