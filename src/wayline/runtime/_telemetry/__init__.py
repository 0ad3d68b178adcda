"""Telemetry of runs: tracing, metrics, and the SDK setup for applications.

``_tracing`` (the trace model and its helpers), ``_segment`` (one incarnation of a run's
actor: its step spans), ``_waits`` (waits as spans), ``_recovery`` (what a stopped process
left in flight), ``_exceptions`` (failures as users can read them), ``_metrics``
(instruments, and gauges read from `RuntimeStatistics`), ``_telemetry`` (what one runtime
reports), ``_sdk`` (`configure_telemetry`, which needs the ``otlp`` extra). Only the
OpenTelemetry API is imported here, except by ``_sdk``, and by it only when called.
"""

from ._sdk import TelemetryProviders as TelemetryProviders, configure_telemetry as configure_telemetry
from ._segment import Segment as Segment
from ._telemetry import Telemetry as Telemetry
from ._tracing import trace_id as trace_id

__all__ = ("Segment", "Telemetry", "TelemetryProviders", "configure_telemetry", "trace_id")
