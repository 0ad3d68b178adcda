"""configure_telemetry exports over real OTLP/HTTP: a small collector on 127.0.0.1:0 receives
the protobuf requests, decodes them, and the decoded spans must form the run's tree."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from wayline import RunContext, activity, configure_telemetry, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


class Collector:
    """What the receiver got: decoded export requests, by path."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def spans(self) -> list[Any]:
        with self.lock:
            return [
                span
                for request in self.traces
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]

    def service_names(self) -> set[str]:
        with self.lock:
            return {
                attr.value.string_value
                for request in self.traces
                for resource_spans in request.resource_spans
                for attr in resource_spans.resource.attributes
                if attr.key == "service.name"
            }

    def metric_names(self) -> set[str]:
        with self.lock:
            return {
                metric.name
                for request in self.metrics
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
            }


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            reply: Any
            with collector.lock:
                collector.paths.append(self.path)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    collector.traces.append(request)
                    reply = ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest()
                    metrics.ParseFromString(body)
                    collector.metrics.append(metrics)
                    reply = ExportMetricsServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
            data = reply.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    got = Collector()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(got))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@activity(name="pack")
async def pack(item: str) -> str:
    return item.upper()


@workflow(name="shipment")
async def shipment(ctx: RunContext, items: list[str]) -> list[str]:
    return [await ctx.run(pack, item) for item in items]


async def _run_three_steps(providers: Any) -> None:
    async with open_runtime(
        ":memory:",
        workflows=[shipment],
        clock=VirtualClock(),
        tracer_provider=providers.tracer_provider,
        meter_provider=providers.meter_provider,
    ) as rt:
        assert await (await rt.start(shipment, ["a", "b", "c"], run_id="s-1")).result() == ["A", "B", "C"]


async def test_an_explicit_endpoint_receives_the_run_as_a_span_tree(collector: tuple[Collector, str]) -> None:
    got, url = collector
    providers = configure_telemetry(otlp_endpoint=url, service_name="shipping", set_global=False)
    try:
        await _run_three_steps(providers)
    finally:
        providers.shutdown()  # flushes both exporters
    spans = got.spans()
    (root,) = [s for s in spans if s.name == "run shipment"]
    steps = [s for s in spans if s.name == "step pack"]
    assert len(spans) == 4 and len(steps) == 3
    assert root.parent_span_id == b""  # the trace's root
    assert {s.parent_span_id for s in steps} == {root.span_id}
    assert {s.trace_id for s in spans} == {root.trace_id}
    attrs = {a.key: a.value for a in steps[0].attributes}
    assert attrs["wayline.run_id"].string_value == "s-1"
    assert attrs["wayline.workflow"].string_value == "shipment"
    assert attrs["wayline.step"].string_value == "pack"
    assert attrs["wayline.attempt"].int_value == 1
    assert got.service_names() == {"shipping"}
    assert {"wayline.runs.started", "wayline.runs.finished", "wayline.step.duration"} <= got.metric_names()
    assert set(got.paths) == {"/v1/traces", "/v1/metrics"}


async def test_the_standard_otlp_variables_choose_the_endpoint(
    collector: tuple[Collector, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    got, url = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    providers = configure_telemetry(set_global=False)
    try:
        await _run_three_steps(providers)
    finally:
        providers.shutdown()
    assert len([s for s in got.spans() if s.name == "step pack"]) == 3
    assert got.service_names() == {"wayline"}
