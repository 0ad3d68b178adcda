"""A small OTLP/HTTP collector for tests: a ThreadingHTTPServer on 127.0.0.1:0 that decodes
the protobuf export requests (the classes come with the exporter's opentelemetry-proto)."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Collector:
    """What the receiver got: decoded export requests, by path."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)  # notified after every request
        #: Status code to answer each path with instead of 200 (e.g. 405 for /v1/metrics, as a
        #: trace-only viewer does).
        self.refuse: dict[str, int] = {}

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Block until ``condition()`` (called without the lock held) is true after some
        request; AssertionError if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not condition():
            with self.received:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the collector did not receive what was expected in time")
                self.received.wait(left)

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
                collector.received.notify_all()
                refused = collector.refuse.get(self.path)
                if refused is not None:
                    self.send_response(refused)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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


@contextlib.contextmanager
def running_collector() -> Iterator[tuple[Collector, str]]:
    """Serve a `Collector` on a free local port; yields it and its base URL."""
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
