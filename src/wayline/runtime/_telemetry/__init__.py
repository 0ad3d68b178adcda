"""Telemetry of runs: tracing, metrics, and the SDK setup for applications.

``_tracing`` (a run's segments and step spans), ``_metrics`` (instruments, and gauges read from
`RuntimeStatistics`), ``_telemetry`` (what one runtime reports), ``_sdk`` (`configure_telemetry`,
which needs the ``otlp`` extra). Only the OpenTelemetry API is imported here.
"""

from ._sdk import TelemetryProviders as TelemetryProviders, configure_telemetry as configure_telemetry
from ._telemetry import Telemetry as Telemetry
from ._tracing import Segment as Segment

__all__ = ("Segment", "Telemetry", "TelemetryProviders", "configure_telemetry")
