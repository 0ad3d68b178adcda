from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A real SDK provider whose spans land in memory as they end (never set globally)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)


def seconds(span: ReadableSpan, since: int | None = None) -> tuple[float, float]:
    """When ``span`` began and ended, in seconds after ``since`` (ns; default: its start)."""
    assert span.start_time is not None and span.end_time is not None
    origin = span.start_time if since is None else since
    return ((span.start_time - origin) / 1e9, (span.end_time - origin) / 1e9)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
