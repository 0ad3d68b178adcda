"""`configure_telemetry`: an OpenTelemetry SDK exporting over OTLP, for applications, the CLI
and the demo. The SDK and the exporter are the ``otlp`` extra (``pip install 'wayline[otlp]'``):
wayline itself depends on the OpenTelemetry API alone, and an application that brings its own
SDK setup needs neither.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ..._errors import MissingExtraError

if TYPE_CHECKING:
    from ._export import ExportHealth, ExportStatus


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
        from ._export import ExportStatus  # the SDK is there: these providers are its

        return self._health.status if self._health is not None else ExportStatus()

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
        retried batch after batch (see ``_export``).

    Raises:
        MissingExtraError: the OpenTelemetry SDK or OTLP exporter is not installed; install
            ``wayline[otlp]``.
    """
    # Imported here: the SDK and the exporter (requests, protobuf) are the optional
    # ``otlp`` extra, and cost import time that a runtime which never exports should not pay.
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise MissingExtraError("configure_telemetry", "otlp", exc.name or str(exc)) from exc
    from ._export import ExportHealth, ReportingMetricExporter, ReportingSpanExporter

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
