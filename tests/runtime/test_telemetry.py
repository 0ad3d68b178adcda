"""Traces and metrics of runs, checked with the real OpenTelemetry SDK (in-memory exporter
and reader). Providers are passed to open_runtime, never set globally: the global provider
can be set once per process and would leak into every other test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import StatusCode

from _support import Changes
from wayline import RetryPolicy, RunContext, RunFailed, RunStatus, StoreError, activity, open_runtime, workflow
from wayline.persistence import AnyEvent, MemoryStore, RunRecord
from wayline.runtime._telemetry import Telemetry
from wayline.testing import VirtualClock
from wayline.testing._clock import DEFAULT_START

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-4242"  # must never show up in any span name, attribute or event


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def event_names(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


failures_left = {"flaky": 0}


@pytest.fixture(autouse=True)
def _no_failures() -> None:
    failures_left["flaky"] = 0  # tests that want a retry set it themselves


@activity(name="charge", retry=RetryPolicy(max_attempts=3, interval=1.0))
async def charge(card: str, amount: float) -> dict[str, Any]:
    if failures_left["flaky"] > 0:
        failures_left["flaky"] -= 1
        raise ConnectionError("gateway down")
    return {"receipt": f"r-{SECRET}", "amount": amount}


@activity(name="ship")
async def ship(order: str) -> str:
    return f"shipped {order}"


@activity(name="explode", retry=RetryPolicy(max_attempts=2, interval=0.5))
async def explode() -> None:
    raise ValueError("no stock")


@workflow(name="order", version="7")
async def order(ctx: RunContext, data: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["card"] = data["card"]
    receipt = await ctx.run(charge, data["card"], data["amount"])
    await ctx.run(ship, data["id"])
    return receipt


@workflow(name="doomed")
async def doomed(ctx: RunContext) -> None:
    await ctx.run(ship, "x")
    await ctx.run(explode)


@workflow(name="parked")
async def parked(ctx: RunContext, token: str) -> Any:
    await ctx.run(ship, "before")
    got = await ctx.wait_signal("go", timeout=3600)
    await ctx.sleep(60)
    await ctx.run(ship, "after")
    return got


def root_of(spans: Sequence[ReadableSpan], workflow: str) -> ReadableSpan:
    (root,) = named(spans, f"run {workflow}")
    return root


async def test_a_root_per_run_with_its_segment_and_a_span_per_step_attempt(db: str) -> None:
    provider, exporter = tracing()
    failures_left["flaky"] = 1
    async with open_runtime(db, workflows=[order], clock=VirtualClock(), tracer_provider=provider) as rt:
        handle = await rt.start(order, {"id": "o-1", "card": SECRET, "amount": 9.5}, run_id="o-1")
        await handle.result()
    spans = exporter.get_finished_spans()
    root = root_of(spans, "order")
    assert root.parent is None  # no caller span: the run is the root of its trace
    assert root.kind is trace.SpanKind.PRODUCER
    assert dict(root.attributes or {}) == {"wayline.run_id": "o-1", "wayline.workflow": "order", "wayline.version": "7"}
    assert root.end_time == root.start_time  # ended as rt.start returned
    (segment,) = named(spans, "execute order")
    assert segment.kind is trace.SpanKind.CONSUMER
    assert dict(segment.attributes or {}) == {
        "wayline.run_id": "o-1",
        "wayline.workflow": "order",
        "wayline.version": "7",
        "wayline.segment": 1,
        "wayline.status": "SUCCEEDED",
        "wayline.segment.end": "finished",
    }
    steps = [s for s in children(spans, root) if s.name.startswith("step ")]
    shown = [(s.name, dict(s.attributes or {})) for s in steps]
    assert [(name, a["wayline.attempt"], a["wayline.step.index"]) for name, a in shown] == [
        ("step charge", 1, 0),
        ("step charge", 2, 0),
        ("step ship", 1, 1),
    ]
    (backoff,) = named(spans, "backoff")
    assert len(spans) == 6  # the root, the segment, three attempts, the backoff: nothing else
    assert {s.parent.span_id for s in spans if s.parent} == {root.context.span_id}  # all under the root
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    for s in steps:
        assert s.attributes is not None
        assert s.attributes["wayline.run_id"] == "o-1"
        assert s.attributes["wayline.workflow"] == "order"
        assert s.attributes["wayline.version"] == "7"
        assert s.attributes["wayline.step"] == s.name.removeprefix("step ")
    failed, retried, shipped = steps
    # the retry: the first attempt failed with an error status, says when the next comes
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ConnectionError: gateway down"
    assert event_names(failed) == ["exception", "wayline.retry"]
    assert dict(failed.events[1].attributes or {}) == {"wayline.retry.delay": 1.0, "wayline.attempt": 2}
    assert retried.status.status_code is StatusCode.UNSET and shipped.status.status_code is StatusCode.UNSET
    # the backoff is a span of its own, from the failure to the next attempt: 1 s of virtual time
    assert (backoff.start_time, backoff.end_time) == (failed.end_time, retried.start_time)
    assert backoff.end_time - backoff.start_time == 1_000_000_000
    assert (backoff.attributes or {})["wayline.step"] == "charge"
    assert (backoff.attributes or {})["wayline.attempt"] == 2
    assert event_names(segment) == ["wayline.checkpoint"]
    assert dict(segment.events[0].attributes or {}) == {"wayline.status": "SUCCEEDED"}


async def test_a_failed_run_and_its_final_attempt_carry_error_status(db: str) -> None:
    provider, exporter = tracing()
    async with open_runtime(db, workflows=[doomed], clock=VirtualClock(), tracer_provider=provider) as rt:
        with pytest.raises(RunFailed):
            await (await rt.start(doomed, run_id="d")).result()
    spans = exporter.get_finished_spans()
    (segment,) = named(spans, "execute doomed")
    assert segment.status.status_code is StatusCode.ERROR
    assert segment.status.description == "ValueError: no stock"
    assert segment.attributes is not None and segment.attributes["wayline.status"] == "FAILED"
    attempts = named(spans, "step explode")
    assert [s.attributes["wayline.attempt"] for s in attempts if s.attributes] == [1, 2]
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    assert attempts[-1].attributes is not None and attempts[-1].attributes["wayline.outcome"] == "failed"
    assert "wayline.retry" not in event_names(attempts[-1])  # the last one is final
    exception = attempts[-1].events[0]
    assert exception.name == "exception"
    recorded = dict(exception.attributes or {})
    assert recorded.pop("exception.type") == "ValueError"
    assert recorded.pop("exception.message") == "no stock"
    # the activity's own line, and none of wayline's or the SDK's frames
    stack = str(recorded.pop("exception.stacktrace"))
    assert 'raise ValueError("no stock")' in stack and "in explode" in stack
    assert "wayline/runtime" not in stack and "opentelemetry" not in stack
    assert recorded == {}


async def test_the_callers_active_span_is_the_parent_of_the_run(db: str) -> None:
    provider, exporter = tracing()
    tracer = provider.get_tracer("app")
    async with open_runtime(db, workflows=[order], clock=VirtualClock(), tracer_provider=provider) as rt:
        with tracer.start_as_current_span("POST /orders") as caller:
            handle = await rt.start(order, {"id": "o-2", "card": "c", "amount": 1.0}, run_id="o-2")
        await handle.result()
    spans = exporter.get_finished_spans()
    root = root_of(spans, "order")
    assert root.parent is not None
    assert root.parent.span_id == caller.get_span_context().span_id
    assert {s.context.trace_id for s in spans} == {caller.get_span_context().trace_id}


async def test_an_activitys_own_spans_nest_in_its_step_span(db: str) -> None:
    provider, exporter = tracing()

    @activity(name="instrumented")
    async def instrumented() -> int:
        with provider.get_tracer("app").start_as_current_span("http GET"):
            return 1

    @workflow(name="calls")
    async def calls(ctx: RunContext) -> int:
        return await ctx.run(instrumented) + sum(await ctx.gather(ctx.run(instrumented), ctx.run(instrumented)))

    async with open_runtime(db, workflows=[calls], clock=VirtualClock(), tracer_provider=provider) as rt:
        assert await (await rt.start(calls)).result() == 3
    spans = exporter.get_finished_spans()
    steps = named(spans, "step instrumented")
    inner = named(spans, "http GET")
    assert len(steps) == 3 and len(inner) == 3  # one inline, two as tasks of a gather
    assert sorted(s.parent.span_id for s in inner if s.parent) == sorted(s.context.span_id for s in steps)


async def test_no_inputs_outputs_vars_or_payloads_in_spans(db: str) -> None:
    provider, exporter = tracing()
    async with open_runtime(db, workflows=[order, parked], clock=VirtualClock(), tracer_provider=provider) as rt:
        await (await rt.start(order, {"id": "o-3", "card": SECRET, "amount": 2.0})).result()
        handle = await rt.start(parked, SECRET)
        await rt.signal(handle.run_id, "go", {"pin": SECRET})
        await handle.result()
    spans = exporter.get_finished_spans()
    assert len(spans) > 5
    for s in spans:
        texts = [s.name, s.status.description or ""]
        texts += [repr(v) for v in (s.attributes or {}).values()]
        for e in s.events:
            texts += [e.name, *(repr(v) for v in (e.attributes or {}).values())]
        assert not [t for t in texts if SECRET in t], s.name


async def test_a_passivated_run_continues_its_trace_in_a_new_segment(db: str) -> None:
    provider, exporter = tracing()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[parked], clock=clock, tracer_provider=provider, passivate_after=10) as rt:
        handle = await rt.start(parked, "t", run_id="p")
        await clock.sleep(30)
        assert rt.statistics().live_runs == 0  # left memory
        await rt.signal("p", "go", 42)  # woken by the message
        assert await handle.result() == 42
    spans = exporter.get_finished_spans()
    root = root_of(spans, "parked")
    first, second, third = sorted(
        named(spans, "execute parked") + named(spans, "resume parked"), key=lambda s: s.start_time
    )  # the signal wait, the sleep: two wakes
    assert [s.attributes["wayline.segment"] for s in (first, second, third) if s.attributes] == [1, 2, 3]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert {s.parent.span_id for s in spans if s.parent} == {root.context.span_id}
    for before in (first, second):
        assert before.attributes is not None and before.attributes["wayline.segment.end"] == "passivated"
    assert second.attributes is not None and second.attributes["wayline.resume_reason"] == "woken by a message"
    assert third.attributes is not None and third.attributes["wayline.resume_reason"] == "woken by its timer"
    # Where the time went, in virtual seconds from the start: out of memory from 10 s after
    # each wait began (passivate_after) until the wake; the waits span the segments.
    t0 = root.start_time

    def at(span: ReadableSpan) -> tuple[float, float]:
        assert span.end_time is not None
        return ((span.start_time - t0) / 1e9, (span.end_time - t0) / 1e9)

    assert [at(s) for s in sorted(named(spans, "passivated"), key=lambda s: s.start_time)] == [(10, 30), (40, 90)]
    (signal,) = named(spans, "wait signal go")
    assert at(signal) == (0, 30)
    assert (signal.attributes or {})["wayline.outcome"] == "received"
    (sleep,) = named(spans, "sleep")
    assert at(sleep) == (30, 90)
    assert (sleep.attributes or {})["wayline.outcome"] == "fired"
    assert [at(s) for s in (first, second, third)] == [(0, 10), (30, 40), (90, 90)]
    assert [at(s) for s in named(spans, "step ship")] == [(0, 0), (90, 90)]


async def test_a_reopened_runtime_continues_the_trace_of_an_unfinished_run(tmp_path: Any) -> None:
    path = tmp_path / "r.db"
    provider, exporter = tracing()
    async with open_runtime(path, workflows=[parked], clock=VirtualClock(), tracer_provider=provider) as rt:
        await rt.start(parked, "t", run_id="r")
        while not (await rt.describe("r")).waiting_for:
            await rt.clock.sleep(1)
    # Shut down: the segment's span is left to the segment that resumes the run, which
    # reports it as it reports one whose process was killed, so it is reported once.
    assert named(exporter.get_finished_spans(), "execute parked") == []
    root = root_of(exporter.get_finished_spans(), "parked")
    exporter.clear()
    later = VirtualClock(DEFAULT_START + 100)  # the process comes back 100 s later
    async with open_runtime(path, workflows=[parked], clock=later, tracer_provider=provider) as rt:
        await rt.signal("r", "go", 1)
        assert await rt.get_handle("r").result() == 1
    spans = exporter.get_finished_spans()
    assert named(spans, "run parked") == []  # one root per run, made once
    (resumed,) = named(spans, "resume parked")
    (stopped,) = named(spans, "execute parked")
    assert stopped.attributes is not None and stopped.attributes["wayline.segment.end"] == "stopped"
    assert stopped.attributes["wayline.segment"] == 1
    assert (stopped.start_time, stopped.end_time) == (root.start_time, root.start_time)  # to its last checkpoint
    assert resumed.context.trace_id == root.context.trace_id
    assert {s.parent.span_id for s in spans if s.parent} == {root.context.span_id}
    assert resumed.attributes is not None
    assert resumed.attributes["wayline.resume_reason"] == "recovered after a process restart"
    assert resumed.attributes["wayline.segment"] == 2
    # the gap: from the last checkpoint (the wait began) to the restart; nothing was in flight
    (gap,) = named(spans, "interrupted")
    assert gap.status.status_code is StatusCode.UNSET and gap.events == ()
    assert (gap.start_time, gap.end_time) == (root.start_time, resumed.start_time)  # the wait's checkpoint at t0
    assert (gap.attributes or {})["wayline.interrupted.gap_s"] == 100.0
    # the signal wait began in the first process and ended in the second: one span, both times
    (wait,) = named(spans, "wait signal go")
    assert (wait.start_time, wait.end_time) == (root.start_time, resumed.start_time)


class CrashOnceStore:
    """A memory store whose checkpoint of the second step fails once: the run actor crashes
    and its supervisor restarts it from the last checkpoint."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def checkpoint(self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()) -> Any:
        if not self.crashed and record.status is RunStatus.RUNNING and record.steps >= 2:
            self.crashed = True
            raise StoreError("disk full (simulated)")
        return self.inner.checkpoint(record, events, consumed)


async def test_a_crashed_segment_ends_in_error_and_its_restart_says_what_ran_again() -> None:
    provider, exporter = tracing()
    store = CrashOnceStore()
    async with open_runtime(store, workflows=[order], clock=VirtualClock(), tracer_provider=provider) as rt:
        await (await rt.start(order, {"id": "o", "card": "c", "amount": 1.0}, run_id="c")).result()
    spans = exporter.get_finished_spans()
    root = root_of(spans, "order")
    (crashed,) = named(spans, "execute order")
    (restarted,) = named(spans, "resume order")
    assert crashed.status.status_code is StatusCode.ERROR
    assert crashed.attributes is not None and crashed.attributes["wayline.segment.end"] == "crashed"
    (exception,) = [e for e in crashed.events if e.name == "exception"]
    assert (exception.attributes or {})["exception.type"] == "wayline.errors.StoreError"
    assert restarted.attributes is not None and restarted.attributes["wayline.segment"] == 2
    assert str(restarted.attributes["wayline.resume_reason"]).startswith("restarted after a crash: StoreError")
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    # ship's result never reached the store: it runs again, as attempt 2, and says so
    first, again = named(spans, "step ship")
    assert (first.attributes or {})["wayline.attempt"] == 1
    assert dict(again.attributes or {})["wayline.attempt"] == 2
    assert dict(again.attributes or {})["wayline.reexecution"] is True
    (gap,) = named(spans, "interrupted")
    assert gap.status.status_code is StatusCode.ERROR
    assert [dict(e.attributes or {}) for e in gap.events] == [
        {"wayline.step": "ship", "wayline.step.index": 1, "wayline.attempt": 1}
    ]


async def test_the_trace_context_is_stored_with_the_run(db: str) -> None:
    provider, _ = tracing()
    async with open_runtime(db, workflows=[order], clock=VirtualClock(), tracer_provider=provider) as rt:
        await (await rt.start(order, {"id": "o", "card": "c", "amount": 1.0}, run_id="t")).result()
        stored = await rt.store.get_run("t")
        info = await rt.describe("t")
    assert stored is not None
    # the root's context (from rt.start), and when the segment running the run began; later
    # segments count themselves, open waits and lost attempts add keys while they last
    assert set(stored.trace) == {"traceparent", "wayline.segment.start"}
    assert stored.trace["traceparent"].startswith("00-")
    assert float(stored.trace["wayline.segment.start"]) == rt.clock.time()
    assert info.trace_id == stored.trace["traceparent"].split("-")[1]  # rt.describe shows it too


async def test_without_an_sdk_runs_do_no_telemetry_work(db: str) -> None:
    # No provider given and none set globally: the API's proxy, i.e. nothing configured.
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("another test set a global tracer provider in this process")
    telemetry = Telemetry(None, None)
    assert not telemetry.enabled
    record = RunRecord(run_id="n", workflow="parked")
    assert telemetry.open_segment(record, None) == (None, record)  # no segment: every hook is skipped
    async with open_runtime(db, workflows=[parked], clock=VirtualClock()) as rt:
        handle = await rt.start(parked, "t", run_id="n")
        await rt.signal("n", "go", 1)
        await handle.result()
        stored = await rt.store.get_run("n")
    assert stored is not None and stored.trace == {}


async def test_a_noop_provider_counts_as_none(db: str) -> None:
    assert not Telemetry(trace.NoOpTracerProvider(), None).enabled
    async with open_runtime(
        db, workflows=[order], tracer_provider=trace.NoOpTracerProvider(), clock=VirtualClock()
    ) as rt:
        await (await rt.start(order, {"id": "o", "card": "c", "amount": 1.0}, run_id="t")).result()
        stored = await rt.store.get_run("t")
    assert stored is not None and stored.trace == {}


# --- metrics ------------------------------------------------------------------------------


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def by_attrs(pts: list[Any], **attrs: str) -> Any:
    wanted = {f"wayline.{k}": v for k, v in attrs.items()}
    (found,) = [p for p in pts if dict(p.attributes) == wanted]
    return found


async def test_metrics_after_a_known_workload(tmp_path: Any) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    clock = VirtualClock()
    failures_left["flaky"] = 1  # one charge attempt fails and is retried
    runs = 4
    async with open_runtime(
        tmp_path / "m.db", workflows=[order, doomed, parked], clock=clock, meter_provider=meters
    ) as rt:
        for i in range(runs):
            await (await rt.start(order, {"id": f"o{i}", "card": "c", "amount": 1.0})).result()
        with pytest.raises(RunFailed):
            await (await rt.start(doomed)).result()
        waiting = [await rt.start(parked, "t") for _ in range(3)]
        while not all([(await h.describe()).waiting_for for h in waiting]):
            await clock.sleep(1)
        live = points(reader)
        for h in waiting:
            await h.cancel()
    got = points(reader)
    assert live["wayline.actors.live"][0].value == 3  # the three parked runs
    assert live["wayline.mailbox.depth"][0].value == 0  # idle actors: nothing queued
    assert got["wayline.actors.live"][0].value == 0
    assert by_attrs(got["wayline.runs.started"], workflow="order").value == runs
    assert by_attrs(got["wayline.runs.started"], workflow="parked").value == 3
    assert by_attrs(got["wayline.runs.finished"], workflow="order", status="SUCCEEDED").value == runs
    assert by_attrs(got["wayline.runs.finished"], workflow="doomed", status="FAILED").value == 1
    assert by_attrs(got["wayline.runs.finished"], workflow="parked", status="CANCELLED").value == 3
    attempts = got["wayline.step.attempts"]
    assert by_attrs(attempts, workflow="order", step="charge", outcome="retried").value == 1
    assert by_attrs(attempts, workflow="order", step="charge", outcome="succeeded").value == runs
    assert by_attrs(attempts, workflow="order", step="ship", outcome="succeeded").value == runs
    assert by_attrs(attempts, workflow="doomed", step="explode", outcome="retried").value == 1
    assert by_attrs(attempts, workflow="doomed", step="explode", outcome="failed").value == 1
    durations = got["wayline.step.duration"]
    assert by_attrs(durations, workflow="order", step="charge", outcome="succeeded").count == runs
    # activities take no virtual time: the clock only moves in backoffs and waits
    assert by_attrs(durations, workflow="order", step="ship", outcome="succeeded").sum == 0.0
    (sizes,) = got["wayline.checkpoint.batch_size"]
    (latency,) = got["wayline.checkpoint.duration"]
    assert sizes.count == latency.count >= 1
    assert latency.sum > 0.0
    # every write went through a group commit: runs x (create + a checkpoint per step + end),
    # plus the retry's checkpoint, the doomed run's, and the parked runs' writes
    assert sizes.sum >= runs * 4 + 1


async def test_checkpoint_batches_add_up_to_the_writes(tmp_path: Any) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    runs, steps = 5, 2  # order: 2 steps, so create + 2 checkpoints + the end = 4 writes a run
    async with open_runtime(tmp_path / "b.db", workflows=[order], clock=VirtualClock(), meter_provider=meters) as rt:
        for i in range(runs):
            await (await rt.start(order, {"id": f"o{i}", "card": "c", "amount": 1.0})).result()
    (sizes,) = points(reader)["wayline.checkpoint.batch_size"]
    assert sizes.sum == runs * (1 + steps + 1)


async def test_passivated_actors_are_counted(db: str) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    clock = VirtualClock()
    async with open_runtime(db, workflows=[parked], clock=clock, meter_provider=meters, passivate_after=5) as rt:
        handles = [await rt.start(parked, "t") for _ in range(2)]
        await clock.sleep(20)
        assert points(reader)["wayline.actors.passivated"][0].value == 2
        await rt.signal(handles[0].run_id, "go", 1)
        await clock.sleep(1)
        assert points(reader)["wayline.actors.passivated"][0].value == 1


async def test_a_run_started_without_tracing_gets_a_trace_when_it_resumes_traced(tmp_path: Any) -> None:
    path = tmp_path / "u.db"
    async with open_runtime(path, workflows=[parked], clock=VirtualClock()) as rt:
        await rt.start(parked, "t", run_id="u")
        while not (await rt.describe("u")).waiting_for:
            await rt.clock.sleep(1)
    provider, exporter = tracing()
    async with open_runtime(path, workflows=[parked], clock=VirtualClock(), tracer_provider=provider) as rt:
        await rt.signal("u", "go", 1)
        assert await rt.get_handle("u").result() == 1
        stored = await rt.store.get_run("u")
    spans = exporter.get_finished_spans()
    root = root_of(spans, "parked")  # made by the first traced segment, dated at the run's creation
    assert root.parent is None and root.start_time == root.end_time
    (segment,) = named(spans, "resume parked")
    assert segment.parent is not None and segment.parent.span_id == root.context.span_id
    assert segment.attributes is not None and segment.attributes["wayline.segment"] == 1
    assert stored is not None
    assert stored.trace["traceparent"].split("-")[2] == f"{root.context.span_id:016x}"


class DropRuns(Sampler):
    """Samples every root span except a run's: stands for a ratio sampler's "no"."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.DROP if name.startswith("run ") else Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "DropRuns"


async def test_an_unsampled_run_records_no_steps_and_its_activities_spans_follow_it(db: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(root=DropRuns()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @activity(name="traced_inside")
    async def traced_inside() -> int:
        with provider.get_tracer("app").start_as_current_span("http GET"):
            return 1

    @workflow(name="unsampled")
    async def unsampled(ctx: RunContext) -> int:
        return await ctx.run(traced_inside) + await ctx.run(traced_inside)

    async with open_runtime(db, workflows=[unsampled], clock=VirtualClock(), tracer_provider=provider) as rt:
        assert await (await rt.start(unsampled)).result() == 2
    # the run was not sampled: neither its steps nor the activities' spans start a trace of their own
    assert exporter.get_finished_spans() == ()


handed_out: list[str] = []
handing = Changes()


@activity(name="hand_out")
async def hand_out(token: str) -> None:
    handed_out.append(token)
    handing.changed()


@workflow(name="asks")
async def asks(ctx: RunContext) -> Any:
    return await ctx.wait_for_callback(hand_out)


async def test_a_callback_wait_is_visible_and_its_token_is_not(db: str) -> None:
    provider, exporter = tracing()
    handed_out.clear()
    async with open_runtime(db, workflows=[asks], clock=VirtualClock(), tracer_provider=provider) as rt:
        handle = await rt.start(asks, None)
        await handing.until(lambda: bool(handed_out))
        await rt.heartbeat(handed_out[0])
        await rt.complete_callback(handed_out[0], "yes")
        assert await handle.result() == "yes"
    (wait,) = named(exporter.get_finished_spans(), "wait callback")
    assert (wait.attributes or {})["wayline.wait.kind"] == "callback"
    assert (wait.attributes or {})["wayline.step"] == "hand_out"
    assert (wait.attributes or {})["wayline.outcome"] == "completed"
    assert event_names(wait) == ["wayline.callback.heartbeat"]
    secret = handed_out[0].rsplit(".", 1)[1]
    for s in exporter.get_finished_spans():
        texts = [repr(v) for v in (s.attributes or {}).values()]
        texts += [repr(v) for e in s.events for v in (e.attributes or {}).values()]
        assert not [t for t in texts if secret in t], s.name


async def test_a_state_machine_run_has_a_span_per_task_attempt() -> None:
    from wayline import StateMachine, StatesError, step_info

    keys: list[str] = []

    async def flaky_price(payload: dict[str, Any]) -> dict[str, Any]:
        keys.append(step_info().idempotency_key)
        if len(keys) == 1:
            raise StatesError("Busy", "try again")
        return {"total": 3}

    sm = StateMachine(
        {"StartAt": "Price", "States": {"Price": {
            "Type": "Task", "Resource": "price", "End": True,
            "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 2}]}}},
        name="pricing",
        resources={"price": flaky_price},
    )  # fmt: skip
    provider, exporter = tracing()
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock(), tracer_provider=provider) as rt:
        assert await (await rt.start(sm, {}, run_id="sm-1")).result() == {"total": 3}
    spans = exporter.get_finished_spans()
    root = root_of(spans, "pricing")
    attempts = named(spans, "step Price")
    assert [s.parent.span_id for s in attempts if s.parent] == [root.context.span_id] * 2
    assert [(s.attributes or {}).get("wayline.attempt") for s in attempts] == [1, 2]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert {(s.attributes or {}).get("wayline.run_id") for s in attempts} == {"sm-1"}
    assert {str((s.attributes or {}).get("wayline.step.id")) for s in attempts} == {keys[0].split(":")[1]}
    # as in a code-first run: the failure, the retry, and the backoff between the attempts
    failed = attempts[0]
    assert event_names(failed) == ["exception", "wayline.retry"]
    assert dict(failed.events[0].attributes or {}) == {
        "exception.type": "wayline.errors.StatesError",
        "exception.message": "Busy: try again",
        "wayline.error": "Busy",
        "exception.stacktrace": failed.events[0].attributes["exception.stacktrace"],  # type: ignore[index]
    }
    assert dict(failed.events[1].attributes or {}) == {"wayline.retry.delay": 1.0, "wayline.attempt": 2}
    (backoff,) = named(spans, "backoff")
    assert (backoff.start_time, backoff.end_time) == (failed.end_time, attempts[1].start_time)
    assert backoff.end_time - backoff.start_time == 1_000_000_000
    # step_info() works in a resource too: one key per attempt, stable for the state's visit
    assert keys[0].startswith("sm-1:Price#") and keys[0].endswith(":1") and keys[1].endswith(":2")


async def test_runs_passivated_by_an_earlier_process_count_after_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "p.db"
    clock = VirtualClock()
    async with open_runtime(path, workflows=[parked], clock=clock, passivate_after=5) as rt:
        handles = [await rt.start(parked, "t") for _ in range(3)]
        await clock.sleep(20)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    clock = VirtualClock()
    async with open_runtime(path, workflows=[parked], clock=clock, meter_provider=meters, passivate_after=5) as rt:
        assert points(reader)["wayline.actors.passivated"][0].value == 3
        await rt.signal(handles[0].run_id, "go", 1)  # reloads it
        await clock.sleep(1)
        assert points(reader)["wayline.actors.passivated"][0].value == 2
