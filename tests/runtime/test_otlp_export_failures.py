"""configure_telemetry when export fails: the failure is reported once, what was not sent is
counted, and a collector that is not there costs no retry cycle (real sockets, real HTTP)."""

from __future__ import annotations

import logging
import socket

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
    assert status.spans_exported == 0 and status.spans_dropped == 4  # the run and its three steps
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
    assert (status.spans_exported, status.spans_dropped) == (0, 4)


async def test_a_working_collector_reports_what_it_got() -> None:
    with running_collector() as (got, url):
        status = await _run_three_steps(url)
        spans = got.spans()
    assert status.ok and status.error is None
    assert status.spans_exported == len(spans) == 4
    assert status.metric_exports >= 1
