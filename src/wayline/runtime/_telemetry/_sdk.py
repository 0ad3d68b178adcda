"""`configure_telemetry`: an OpenTelemetry SDK exporting over OTLP, for applications, the CLI
and the demo. The SDK and the exporter are the ``otlp`` extra (``pip install 'wayline[otlp]'``):
wayline itself depends on the OpenTelemetry API alone, and an application that brings its own
SDK setup needs neither.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as metrics_api, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ..._errors import MissingExtraError, TelemetryConfigError

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
        done = True
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)  # the no-op providers have none
            if flush is not None:
                done = bool(flush(millis)) and done
        return done

    def shutdown(self) -> None:
        """Flush and stop both providers (idempotent)."""
        for provider in (self.tracer_provider, self.meter_provider):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()


def _signal_url(base: str, signal: str) -> str:
    return f"{base.rstrip('/')}/v1/{signal}"


#: Exporter names accepted in ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (a comma-
#: separated list, as the OpenTelemetry SDK specification has them).
_EXPORTERS = ("otlp", "console", "none")


def _exporters(variable: str, default: str) -> list[str]:
    raw = os.environ.get(variable, "").strip() or default
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in _EXPORTERS:
            raise TelemetryConfigError(variable, raw, f"use one or more of {', '.join(_EXPORTERS)} (comma-separated)")
    if "none" in names and len(names) > 1:
        raise TelemetryConfigError(variable, raw, "'none' cannot be combined with another exporter")
    return [] if names == ["none"] else names


def _check_protocol(signal: str) -> None:
    """OTLP over HTTP with protobuf is what the ``otlp`` extra brings; say so if another
    protocol is asked for rather than sending it somewhere it is not understood."""
    for variable in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(variable, "").strip()
        if value:
            if value != "http/protobuf":
                raise TelemetryConfigError(
                    variable,
                    value,
                    "it exports OTLP over HTTP (http/protobuf, port 4318); for another protocol set up your own SDK "
                    "providers and pass them to open_runtime(tracer_provider=..., meter_provider=...)",
                )
            return


def _resource(service_name: str | None, attributes: Mapping[str, Any] | None) -> Any:
    """The SDK resource: ``attributes`` and ``service_name`` (given ones win) over
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME``, with "wayline" as the service
    when nothing names one."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    given: dict[str, Any] = dict(attributes or {})
    if service_name is not None:
        given[SERVICE_NAME] = service_name
    resource = Resource.create(given)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "wayline"}))
    return resource


def configure_telemetry(
    otlp_endpoint: str | None = None,
    service_name: str | None = None,
    *,
    metrics: bool = True,
    resource_attributes: Mapping[str, Any] | None = None,
    set_global: bool = True,
    export_interval_s: float | None = None,
) -> TelemetryProviders:
    """Set up OpenTelemetry SDK tracing and metrics exported over OTLP/HTTP.

    A tracer provider with a batch span processor and a meter provider with a periodic
    reader, both exporting with the official OTLP/HTTP exporters. Call it before
    ``open_runtime`` (which checks once whether a real provider is configured). The standard
    OpenTelemetry variables apply, as with the SDK's own automatic setup:
    ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER`` (``otlp``, the default,
    ``console`` or ``none``), ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the
    ``OTEL_EXPORTER_OTLP_*`` settings and ``OTEL_BSP_*`` / ``OTEL_METRIC_EXPORT_*`` timings.

    Args:
        otlp_endpoint: the collector's base URL, e.g. ``http://localhost:4318``; spans go to
            ``<endpoint>/v1/traces`` and metrics to ``<endpoint>/v1/metrics``. ``None`` leaves
            it to the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout,
            compression, certificates; the exporters' default is ``http://localhost:4318``).
        service_name: the ``service.name`` resource attribute. ``None``: ``OTEL_SERVICE_NAME``,
            else a ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, else "wayline".
        metrics: ``False`` exports no metrics (a trace-only collector), as
            ``OTEL_METRICS_EXPORTER=none`` does.
        resource_attributes: more resource attributes (``deployment.environment``...), over
            those of ``OTEL_RESOURCE_ATTRIBUTES``.
        set_global: also install both providers as OpenTelemetry's global ones (once per
            process), so ``open_runtime`` and the application's own instrumentation use them.
            With ``False``, pass them to ``open_runtime(tracer_provider=..., meter_provider=...)``.
        export_interval_s: seconds between metric exports; ``None`` follows
            ``OTEL_METRIC_EXPORT_INTERVAL`` (default 60 s).

    Returns:
        The providers, with ``shutdown()`` (flush and stop), ``force_flush()`` and
        ``export_status()``. A signal that is off (``none``) gets the API's no-op provider,
        so runs do no work for it. An export that fails is logged on the
        ``wayline.telemetry`` logger once, then at most once a minute while it lasts;
        exports are skipped for 30 s after a failure rather than retried batch after batch,
        and a collector that declines metrics (HTTP 404, 405, 501: a trace-only viewer) gets
        none after the first.

    Raises:
        MissingExtraError: the OpenTelemetry SDK or OTLP exporter is not installed; install
            ``wayline[otlp]``.
        TelemetryConfigError: ``OTEL_TRACES_EXPORTER`` or ``OTEL_METRICS_EXPORTER`` names an
            exporter other than ``otlp``, ``console`` or ``none``, or the OTLP protocol asked
            for is not ``http/protobuf``.
    """
    # Imported here: the SDK and the exporter (requests, protobuf) are the optional
    # ``otlp`` extra, and cost import time that a runtime which never exports should not pay.
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise MissingExtraError("configure_telemetry", "otlp", exc.name or str(exc)) from exc
    from ._export import ExportHealth, ReportingMetricExporter, ReportingSpanExporter

    traces_to = _exporters("OTEL_TRACES_EXPORTER", "otlp")
    metrics_to = _exporters("OTEL_METRICS_EXPORTER", "otlp") if metrics else []
    if "otlp" in traces_to:
        _check_protocol("traces")
    if "otlp" in metrics_to:
        _check_protocol("metrics")
    resource = _resource(service_name, resource_attributes)
    health = ExportHealth(otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
    tracer_provider: TracerProvider = trace.NoOpTracerProvider()
    if traces_to:
        sdk_tracer_provider = SdkTracerProvider(resource=resource)
        for name in traces_to:
            if name == "otlp":
                url = _signal_url(otlp_endpoint, "traces") if otlp_endpoint is not None else None
                span_exporter: Any = ReportingSpanExporter(OTLPSpanExporter(endpoint=url), health)
            else:
                span_exporter = ConsoleSpanExporter(out=sys.stdout)  # this stdout, not the one at import
            sdk_tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        tracer_provider = sdk_tracer_provider
    meter_provider: MeterProvider = metrics_api.NoOpMeterProvider()
    if metrics_to:
        interval = None if export_interval_s is None else export_interval_s * 1000
        readers = []
        for name in metrics_to:
            if name == "otlp":
                url = _signal_url(otlp_endpoint, "metrics") if otlp_endpoint is not None else None
                metric_exporter: Any = ReportingMetricExporter(OTLPMetricExporter(endpoint=url), health)
            else:
                metric_exporter = ConsoleMetricExporter(out=sys.stdout)
            readers.append(PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval))
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)
    if set_global:
        if traces_to:
            trace.set_tracer_provider(tracer_provider)
        if metrics_to:
            metrics_api.set_meter_provider(meter_provider)
    return TelemetryProviders(tracer_provider, meter_provider, health)
