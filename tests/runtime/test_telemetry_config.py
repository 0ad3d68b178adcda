"""configure_telemetry honours the settings OpenTelemetry users know: which exporters run
(``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, or ``metrics=False``), the service name
and resource attributes, and says precisely what it cannot do. Checked against a local
OTLP/HTTP collector with the real SDK and exporters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import metrics, trace

from _otlp_collector import Collector, running_collector
from wayline import RunContext, activity, open_runtime, workflow
from wayline.errors import TelemetryConfigError
from wayline.runtime import configure_telemetry
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@activity(name="pack")
async def pack(item: str) -> str:
    return item.upper()


@workflow(name="shipment")
async def shipment(ctx: RunContext, items: list[str]) -> list[str]:
    return [await ctx.run(pack, item) for item in items]


async def _run(providers: Any) -> dict[str, str]:
    try:
        async with open_runtime(
            ":memory:",
            workflows=[shipment],
            clock=VirtualClock(),
            tracer_provider=providers.tracer_provider,
            meter_provider=providers.meter_provider,
        ) as rt:
            assert await (await rt.start(shipment, ["a"], run_id="s")).result() == ["A"]
            stored = await rt.store.get_run("s")
    finally:
        providers.shutdown()
    assert stored is not None
    return stored.trace


def _resource(got: Collector) -> dict[str, str]:
    with got.lock:
        return {
            a.key: a.value.string_value
            for request in got.traces
            for rs in request.resource_spans
            for a in rs.resource.attributes
        }


@pytest.mark.parametrize("how", ["argument", "variable"])
async def test_metrics_can_be_turned_off(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "variable":
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with running_collector() as (got, url):
        providers = configure_telemetry(url, set_global=False, metrics=how != "argument")
        assert isinstance(providers.meter_provider, metrics.NoOpMeterProvider)  # runs record no metrics
        await _run(providers)
        paths = list(got.paths)
    assert "/v1/traces" in paths and "/v1/metrics" not in paths


async def test_traces_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with running_collector() as (got, url):
        providers = configure_telemetry(url, set_global=False)
        assert isinstance(providers.tracer_provider, trace.NoOpTracerProvider)
        stored = await _run(providers)
        paths = list(got.paths)
    assert stored == {}  # the runs did no tracing work at all
    assert "/v1/traces" not in paths and "/v1/metrics" in paths


async def test_the_service_name_and_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=payments")
    with running_collector() as (got, url):
        await _run(configure_telemetry(url, set_global=False, resource_attributes={"team": "fulfilment"}))
        resource = _resource(got)
    assert resource["service.name"] == "orders"  # from OTEL_SERVICE_NAME: no name was given
    assert resource["deployment.environment"] == "staging"
    assert resource["team"] == "fulfilment"  # given attributes win over the variable's
    with running_collector() as (got, url):
        await _run(configure_telemetry(url, "shipping", set_global=False))
        assert _resource(got)["service.name"] == "shipping"  # a name given in code wins


async def test_with_nothing_naming_the_service_it_is_wayline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    with running_collector() as (got, url):
        await _run(configure_telemetry(url, set_global=False))
        assert _resource(got)["service.name"] == "wayline"


async def test_the_console_exporter(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    await _run(configure_telemetry(set_global=False))
    out = capfd.readouterr().out
    names = [json.loads(chunk)["name"] for chunk in out.replace("}\n{", "}\x00{").split("\x00") if chunk.strip()]
    assert sorted(names) == ["execute shipment", "run shipment", "step pack"]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTEL_TRACES_EXPORTER", "jaeger", "otlp, console, none"),
        ("OTEL_METRICS_EXPORTER", "prometheus", "otlp, console, none"),
        ("OTEL_TRACES_EXPORTER", "otlp,none", "'none' cannot be combined"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"),
    ],
)
def test_a_setting_it_cannot_honour_is_a_precise_error(
    variable: str, value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(TelemetryConfigError) as caught:
        configure_telemetry("http://127.0.0.1:4318", set_global=False)
    assert caught.value.setting == variable and caught.value.value == value
    assert variable in str(caught.value) and says in str(caught.value)
