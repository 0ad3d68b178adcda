"""OTLP export that says when it fails: once, in one line, and counted, never claimed as sent.

The official OTLP/HTTP exporters retry a refused connection with backoff for up to their
timeout (10 s by default), log a warning for every retry, and give their callers nothing but
a success flag. With no collector running, a short program then printed a dozen "Connection
refused" warnings and took 10 s per flush at exit (21 s for the demo instead of 3.5 s), and
nothing told it that no span had left the process.

`ReportingSpanExporter` and `ReportingMetricExporter` wrap them for `configure_telemetry`:

- the exporter's own log records are kept back while it exports for us (other exporters in
  the process log as usual), and the first failure of an outage is logged once, as a
  warning on ``wayline.telemetry`` that names the endpoint and the error, then at most once
  a minute while it lasts; spans and metrics are followed apart (a trace-only viewer answers
  metrics with 405 and takes spans: its metrics refusal stops metrics export, nothing else);
- until an export has succeeded (and again after one failed), a plain TCP connect to the
  collector comes first: where nothing listens it fails in well under a millisecond, where
  the exporter would retry for its whole timeout;
- after a failure, exports are dropped at once (and counted) for `COOLDOWN_S`, so a dead
  collector costs one attempt per cool-down instead of a full retry cycle per batch and per
  flush; the next attempt after it finds out whether the collector is back;
- `ExportHealth.status` says what was exported and what was not, for a program (the demo)
  that reports what happened.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("wayline.telemetry")

#: Seconds during which exports are dropped after one failed: long enough that a batch span
#: processor exporting every few seconds makes one doomed attempt per cool-down, short enough
#: that a collector started a little later is found again soon.
COOLDOWN_S = 30.0

#: Seconds between reminders that exports still fail: an outage is said at once, then at most
#: once a minute, so a program left running without its collector does not fill its log.
REPORT_EVERY_S = 60.0


@dataclass(frozen=True)
class ExportStatus:
    """What `configure_telemetry`'s exporters did so far.

    Attributes:
        spans_exported: spans the collector accepted.
        spans_dropped: spans that were not sent (the export failed, or was skipped because
            the one before failed less than `COOLDOWN_S` ago).
        metric_exports: metric export requests the collector accepted.
        metric_exports_dropped: metric export requests that were not sent.
        error: the last export error, e.g. ``ConnectionError(...)`` or ``HTTP 503``;
            ``None`` if no export failed.
        metrics_refused: why the collector takes no metrics at all (it answered 404, 405 or
            501: a trace-only viewer), after which none are sent; ``None`` otherwise.
    """

    spans_exported: int = 0
    spans_dropped: int = 0
    metric_exports: int = 0
    metric_exports_dropped: int = 0
    error: str | None = None
    metrics_refused: str | None = None

    @property
    def ok(self) -> bool:
        """Nothing was dropped."""
        return self.spans_dropped == 0 and self.metric_exports_dropped == 0


class _Quiet(logging.Filter):
    """Holds back the OTLP exporters' records emitted while one of ours exports, in that
    thread only, and keeps the first one as the error's description."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        caught: list[str] | None = getattr(self.local, "caught", None)
        if caught is None:
            return True
        # "Transient error %s encountered while exporting...": the exception says what went wrong.
        args = record.args if isinstance(record.args, tuple) else ()
        errors = [a for a in args if isinstance(a, BaseException)]
        caught.append(f"{type(errors[0]).__name__}: {errors[0]}" if errors else record.getMessage())
        return False


_QUIET = _Quiet()
_QUIETED: set[str] = set()
_QUIET_LOCK = threading.Lock()


def _quiet(logger_name: str) -> None:
    with _QUIET_LOCK:
        if logger_name not in _QUIETED:
            logging.getLogger(logger_name).addFilter(_QUIET)
            _QUIETED.add(logger_name)


class _Channel:
    """The exports of one signal (spans or metrics) to one endpoint: a collector can take one
    and refuse the other, so each has its own outage, cool-down and reports."""

    __slots__ = ("dropped", "failing", "name", "proven", "refused", "reported_at", "retry_at")

    def __init__(self, name: str) -> None:
        self.name = name  # "span" or "metric"
        self.retry_at = 0.0
        self.proven = False  # an export has succeeded since the last failure
        self.failing = False  # in an outage
        self.reported_at = 0.0  # when the outage was last reported (monotonic seconds)
        self.dropped = 0  # exports dropped since that report
        self.refused: str | None = None  # the collector does not take this signal at all


#: A collector's answer to a metrics export that means it takes no metrics at all (many
#: trace-only viewers: 404 Not Found, 405 Method Not Allowed, 501 Not Implemented).
_NO_METRICS = re.compile(r"\bcode: (404|405|501)\b")


class ExportHealth:
    """Shared by the span and the metric exporter of one `configure_telemetry`: one endpoint,
    and a report per signal: the first failure of an outage at once, then at most one
    reminder every `REPORT_EVERY_S` while it lasts (with what was dropped meanwhile), and a
    line when exports work again. A collector that answers metrics with 404, 405 or 501 takes
    none: metrics export stops for the process, said once."""

    def __init__(
        self,
        endpoint: str,
        *,
        cooldown_s: float = COOLDOWN_S,
        report_every_s: float = REPORT_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.cooldown_s = cooldown_s
        self.report_every_s = report_every_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._status = ExportStatus()
        self._channels = {"spans": _Channel("span"), "metrics": _Channel("metric")}

    @property
    def status(self) -> ExportStatus:
        with self._lock:
            return self._status

    def export(self, kind: str, count: int, send: Callable[[], bool], url: str | None) -> bool:
        """Run ``send()`` (the wrapped exporter's export, True on success) unless a failure is
        fresh; count the outcome and report it as the class says."""
        channel = self._channels[kind]
        with self._lock:
            skip = channel.refused is not None or self._monotonic() < channel.retry_at
            proven = channel.proven
        if skip:
            self._done(channel, kind, count, ok=False, error=None)
            return False
        refused = None if proven or url is None else _unreachable(url)
        caught: list[str] = [refused] if refused else []
        if refused is None:
            _QUIET.local.caught = caught
            try:
                ok = bool(send())
            except Exception as exc:  # an exporter that raises drops the batch all the same
                ok = False
                caught.append(f"{type(exc).__name__}: {exc}")
            finally:
                _QUIET.local.caught = None
        else:
            ok = False
        error = None if ok else (caught[0] if caught else "the exporter reported a failure")
        self._done(channel, kind, count, ok=ok, error=error)
        return ok

    def _done(self, channel: _Channel, kind: str, count: int, *, ok: bool, error: str | None) -> None:
        """Count an export (``error`` None for a skipped one) and log what there is to say."""
        with self._lock:
            s = self._status
            if kind == "spans":
                s = replace(
                    s, spans_exported=s.spans_exported + count * ok, spans_dropped=s.spans_dropped + count * (not ok)
                )
            else:
                s = replace(
                    s, metric_exports=s.metric_exports + ok, metric_exports_dropped=s.metric_exports_dropped + (not ok)
                )
            if error is not None:
                s = replace(s, error=error)
            now = self._monotonic()
            message: tuple[Any, ...] | None = None
            if ok:
                channel.proven = True
                if channel.failing:
                    message = (logging.INFO, "OpenTelemetry %s export to %s works again", channel.name, self.endpoint)
                channel.failing = False
                channel.dropped = 0
            else:
                channel.dropped += count
                other = self._channels["metrics" if kind == "spans" else "spans"]
                due = now - channel.reported_at >= self.report_every_s
                if channel.refused is not None:
                    pass  # said once, when the collector declined
                elif error is None:  # skipped in a cool-down
                    message = self._reminder(channel, kind, s.error) if due else None
                else:  # a real attempt failed: wait before the next
                    channel.proven = False
                    channel.retry_at = now + self.cooldown_s
                    if kind == "metrics" and other.proven and _NO_METRICS.search(error):
                        # Spans go through to this endpoint: it is there, and declines metrics.
                        channel.refused = error
                        s = replace(s, metrics_refused=error)
                        message = (
                            logging.WARNING,
                            "The collector at %s does not take metrics (%s): this process exports traces only "
                            "from now on. Set OTEL_METRICS_EXPORTER=none, or configure_telemetry(metrics=False), "
                            "to not try",
                            self.endpoint,
                            error,
                        )
                    elif not channel.failing:
                        channel.failing = True
                        if other.failing:  # the same endpoint, down for both: said once
                            channel.reported_at = now
                        else:
                            message = (
                                logging.WARNING,
                                "OpenTelemetry %s export to %s failed: %s. What cannot be sent is dropped and "
                                "counted (TelemetryProviders.export_status()); exports are skipped for %gs after a "
                                "failure, and this is reported again at most every %gs while it lasts",
                                channel.name,
                                self.endpoint,
                                error,
                                self.cooldown_s,
                                self.report_every_s,
                            )
                    elif due:
                        message = self._reminder(channel, kind, error)
                if message is not None:
                    channel.reported_at = now
                    channel.dropped = 0
            self._status = s
        if message is not None:
            log.log(*message)

    def _reminder(self, channel: _Channel, kind: str, error: str | None) -> tuple[Any, ...]:
        return (
            logging.WARNING,
            "OpenTelemetry %s export to %s still fails (%s): %d %s dropped since the last report",
            channel.name,
            self.endpoint,
            error,
            channel.dropped,
            "spans" if kind == "spans" else "metric exports",
        )


#: Seconds a connect to the collector may take before the exporter is left to try itself.
_PROBE_TIMEOUT_S = 1.0
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _unreachable(url: str) -> str | None:
    """Why nothing can be sent to ``url`` (nothing listens there, no such host), or None if a
    TCP connection opens, or if it cannot be told (a proxy is configured: the exporter
    connects to that, not to the collector)."""
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # not a port the exporter could use either; let it say so
    if parts.hostname is None:
        return None
    try:
        with socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S):
            return None
    except TimeoutError:
        return None  # slow, not absent: the exporter's own timeout and retries decide
    except OSError as exc:
        return f"cannot connect to {parts.hostname}:{port}: {exc.strerror or exc}"


def _endpoint(exporter: object) -> str | None:
    # The URL the OTLP exporter resolved (argument, OTEL_EXPORTER_OTLP_*_ENDPOINT, or default).
    url = getattr(exporter, "_endpoint", None)
    return url if isinstance(url, str) else None


class ReportingSpanExporter(SpanExporter):
    """A `SpanExporter` that counts and reports its wrapped exporter's failures."""

    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.health = health
        _quiet(type(inner).__module__)
        _quiet("opentelemetry.exporter.otlp.common.http")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.health.export(
            "spans", len(spans), lambda: self.inner.export(spans) is SpanExportResult.SUCCESS, _endpoint(self.inner)
        )
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ReportingMetricExporter(MetricExporter):
    """A `MetricExporter` that counts and reports its wrapped exporter's failures."""

    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        # The reader asks the exporter for these; they are the wrapped exporter's choice.
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.health = health
        _quiet(type(inner).__module__)
        _quiet("opentelemetry.exporter.otlp.common.http")

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        def send() -> bool:
            return self.inner.export(metrics_data, timeout_millis, **kwargs) is MetricExportResult.SUCCESS

        ok = self.health.export("metrics", 1, send, _endpoint(self.inner))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis, **kwargs)
