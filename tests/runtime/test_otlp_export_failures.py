"""configure_telemetry when export fails: the failure is reported once, what was not sent is
counted, and a collector that is not there costs no retry cycle (real sockets, real HTTP)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from _otlp_collector import running_collector
from wayline import RunContext, activity, open_runtime, workflow
from wayline.runtime import configure_telemetry
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@activity(name="pack")
async def pack(item: str) -> str:
    return item.upper()


@workflow(name="shipment")
async def shipment(ctx: RunContext, items: list[str]) -> list[str]:
    return [await ctx.run(pack, item) for item in items]


def _dead_endpoint() -> str:
    """A local URL where nothing listens: a port the kernel gave us, closed again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _run_three_steps(endpoint: str) -> object:
    providers = configure_telemetry(otlp_endpoint=endpoint, service_name="shipping", set_global=False)
    try:
        async with open_runtime(
            ":memory:",
            workflows=[shipment],
            clock=VirtualClock(),
            tracer_provider=providers.tracer_provider,
            meter_provider=providers.meter_provider,
        ) as rt:
            assert await (await rt.start(shipment, ["a", "b", "c"])).result() == ["A", "B", "C"]
    finally:
        providers.shutdown()
    return providers.export_status()


async def test_no_collector_is_reported_once_and_nothing_is_claimed_sent(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = _dead_endpoint()
    with caplog.at_level(logging.DEBUG):
        status = await _run_three_steps(endpoint)
    exporter_records = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert exporter_records == []  # no retry warnings, no "Connection refused" per batch
    (warning,) = [r for r in caplog.records if r.name == "wayline.telemetry"]
    assert warning.levelno == logging.WARNING
    assert endpoint in warning.getMessage() and "Connection refused" in warning.getMessage()
    assert status.spans_exported == 0 and status.spans_dropped == 5  # the root, the segment, three steps
    assert status.metric_exports == 0 and status.metric_exports_dropped >= 1
    assert status.error is not None and "Connection refused" in status.error
    assert not status.ok


async def test_a_collector_that_refuses_the_request_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    with running_collector() as (got, url), caplog.at_level(logging.DEBUG):
        status = await _run_three_steps(f"{url}/not-otlp")  # the collector answers 404 there
    assert got.paths and all(p.startswith("/not-otlp/") for p in got.paths)
    assert [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")] == []
    (warning,) = [r for r in caplog.records if r.name == "wayline.telemetry"]
    assert "404" in warning.getMessage()
    assert (status.spans_exported, status.spans_dropped) == (0, 5)


async def test_a_working_collector_reports_what_it_got() -> None:
    with running_collector() as (got, url):
        status = await _run_three_steps(url)
        spans = got.spans()
    assert status.ok and status.error is None
    assert status.spans_exported == len(spans) == 5
    assert status.metric_exports >= 1


async def test_a_trace_only_collector_declining_metrics_is_said_once_and_spans_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_collector() as (got, url), caplog.at_level(logging.DEBUG):
        got.refuse["/v1/metrics"] = 405  # as many trace-only viewers answer
        providers = configure_telemetry(otlp_endpoint=url, service_name="shipping", set_global=False)
        try:
            async with open_runtime(
                ":memory:",
                workflows=[shipment],
                clock=VirtualClock(),
                tracer_provider=providers.tracer_provider,
                meter_provider=providers.meter_provider,
            ) as rt:
                assert await (await rt.start(shipment, ["a"])).result() == ["A"]
            assert providers.tracer_provider.force_flush()  # type: ignore[attr-defined]
            for _ in range(3):  # three metric exports: one is tried, and declined for good
                providers.meter_provider.force_flush()  # type: ignore[attr-defined]
            await _run_more(providers)
        finally:
            providers.shutdown()
        status = providers.export_status()
        paths = list(got.paths)
        spans = got.spans()
    assert paths.count("/v1/metrics") == 1
    assert status.spans_exported == len(spans) == 6 and status.spans_dropped == 0
    assert status.metrics_refused is not None and "405" in status.metrics_refused
    assert status.metric_exports == 0 and status.metric_exports_dropped >= 3
    assert [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")] == []
    (warning,) = [r for r in caplog.records if r.name == "wayline.telemetry"]
    assert "does not take metrics" in warning.getMessage() and "OTEL_METRICS_EXPORTER=none" in warning.getMessage()


async def _run_more(providers: Any) -> None:
    async with open_runtime(
        ":memory:",
        workflows=[shipment],
        clock=VirtualClock(),
        tracer_provider=providers.tracer_provider,
        meter_provider=providers.meter_provider,
    ) as rt:
        assert await (await rt.start(shipment, ["b"])).result() == ["B"]


def test_an_outage_is_said_once_then_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider

    from wayline.runtime._telemetry._export import ExportHealth, ReportingSpanExporter

    now = [1000.0]
    provider = TracerProvider()
    with running_collector() as (got, url), caplog.at_level(logging.INFO, logger="wayline.telemetry"):
        health = ExportHealth(url, monotonic=lambda: now[0])
        exporter = ReportingSpanExporter(OTLPSpanExporter(endpoint=f"{url}/v1/traces"), health)
        got.refuse["/v1/traces"] = 400  # a failure the OTLP exporter does not retry by itself

        def batch_at(t: float) -> bool:
            now[0] = 1000.0 + t
            span = provider.get_tracer("t").start_span("s")
            span.end()
            return exporter.export([span]).name == "SUCCESS"  # type: ignore[attr-defined]

        outcomes = [batch_at(t) for t in (0, 10, 31, 45, 61, 75)]
        attempts = got.paths.count("/v1/traces")
        got.refuse.clear()  # the collector is back
        back = batch_at(92)
        exporter.shutdown()
    assert outcomes == [False] * 6 and back
    assert attempts == 3  # at 0, 31 and 61: the rest fell in a 30 s cool-down
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "wayline.telemetry"]
    assert [level for level, _ in messages] == [logging.WARNING, logging.WARNING, logging.INFO]
    first, reminder, recovered = (m for _, m in messages)
    assert "span export" in first and "failed" in first and "400" in first
    assert "still fails" in reminder and "4 spans dropped since the last report" in reminder  # at 61 s
    assert "works again" in recovered
    assert health.status.spans_dropped == 6 and health.status.spans_exported == 1
