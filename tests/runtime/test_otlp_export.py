"""configure_telemetry exports over real OTLP/HTTP: a small collector on 127.0.0.1:0 receives
the protobuf requests, decodes them, and the decoded spans must form the run's tree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from _otlp_collector import Collector, running_collector
from wayline import RunContext, activity, open_runtime, workflow
from wayline.runtime import configure_telemetry
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    with running_collector() as running:
        yield running


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
    (segment,) = [s for s in spans if s.name == "execute shipment"]
    steps = [s for s in spans if s.name == "step pack"]
    assert len(spans) == 5 and len(steps) == 3
    assert root.parent_span_id == b""  # the trace's root
    assert {s.parent_span_id for s in [*steps, segment]} == {root.span_id}
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert [a.value.int_value for s in steps for a in s.attributes if a.key == "wayline.step.index"] == [0, 1, 2]
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
