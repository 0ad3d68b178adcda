"""wayline scenarios, written against the public API of DESIGN.md section 3.

Only ``open_runtime``, ``workflow``, ``activity``, ``ctx.run``,
``ctx.wait_signal``, ``rt.start``, ``rt.signal`` and ``handle.result`` are
used, so a benchmark exercises exactly what users get. While the core is being
written a missing name makes the row "not ready" instead of crashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from typing import Any

from ._common import Deadline, Metrics, NotReady, Params, db_file, latency_metrics, settle

# Activity executions in this process: the time-boxed throughput count, and the
# recovery check that no completed step runs again after a restart.
_executed = 0
# Set once ``_executed`` reaches ``_target`` (the recovery prepare phase waits on it).
_target = 0
_reached: asyncio.Event | None = None
#: How long ``bench_idle`` runs wait for their signal before timing out.
IDLE_TIMEOUT_S = 30 * 86400.0


def _api() -> Any:
    """The ``wayline`` module with the names the scenarios need, or NotReady."""
    try:
        import wayline
    except ImportError as exc:  # pragma: no cover - wayline is installed editable
        raise NotReady(f"wayline does not import: {exc}") from exc
    missing = [n for n in ("open_runtime", "workflow", "activity") if not hasattr(wayline, n)]
    if missing:
        raise NotReady(f"wayline lacks {', '.join(missing)}")
    return wayline


def _require_signals() -> None:
    """NotReady (not an error) while the runtime lacks signals, which land later."""
    wl = _api()
    runtime, context = getattr(wl, "Runtime", None), getattr(wl, "RunContext", None)
    if not hasattr(runtime, "signal") or not hasattr(context, "wait_signal"):
        raise NotReady("wayline has no signals yet (Runtime.signal / RunContext.wait_signal)")


class _Workflows:
    """The benchmark workflows, defined once per process on first use."""

    def __init__(self, wl: Any) -> None:
        @wl.activity
        async def bench_step(i: int) -> int:
            global _executed
            _executed += 1
            if _reached is not None and _executed >= _target:
                _reached.set()
            return i

        @wl.workflow(name="bench_steps")
        async def bench_steps(ctx: Any, nk: list[int]) -> int:
            n, k = nk  # a workflow takes one input
            for i in range(k):
                await ctx.run(bench_step, i)
            return n

        @wl.workflow(name="bench_waiter")
        async def bench_waiter(ctx: Any, n: int) -> Any:
            return await ctx.wait_signal("go")

        @wl.workflow(name="bench_parked")
        async def bench_parked(ctx: Any, n: int) -> int:
            await ctx.run(bench_step, 0)
            await ctx.wait_signal("go")
            await ctx.run(bench_step, 1)
            return n

        @wl.workflow(name="bench_sleeper")
        async def bench_sleeper(ctx: Any, n: int) -> int:
            await ctx.run(bench_step, 0)
            await ctx.sleep(3600)
            await ctx.run(bench_step, 1)
            return n

        @wl.workflow(name="bench_idle")
        async def bench_idle(ctx: Any, n: int) -> Any:
            # Parked on a signal whose timeout is a durable timer too, so a waiting run
            # costs whatever both kinds of wait cost (the timer is due in 30 days).
            return await ctx.wait_signal("go", timeout=IDLE_TIMEOUT_S)

        self.steps = bench_steps
        self.sleeper = bench_sleeper
        self.idle = bench_idle
        self.waiter = bench_waiter
        self.parked = bench_parked
        self.all = [bench_steps, bench_waiter, bench_parked, bench_sleeper, bench_idle]


_workflows: _Workflows | None = None


def _setup() -> tuple[Any, _Workflows]:
    global _workflows
    wl = _api()
    if _workflows is None:
        _workflows = _Workflows(wl)
    return wl, _workflows


async def _open(params: Params, stack: contextlib.AsyncExitStack) -> tuple[Any, _Workflows]:
    wl, wfs = _setup()
    extra: dict[str, Any] = {}
    if params.get("tracing"):
        extra["tracer_provider"] = _discarding_tracer_provider(stack, float(params.get("sample_ratio", 1.0)))
    where = str(db_file(params, "wayline.db"))
    if params.get("store") == "postgres":  # the wayline-pg rows: a fresh database on the server
        from ._pg import fresh_database

        where = await stack.enter_async_context(fresh_database())
    rt = await stack.enter_async_context(wl.open_runtime(where, workflows=wfs.all, **extra))
    return rt, wfs


def _discarding_tracer_provider(stack: contextlib.AsyncExitStack, ratio: float = 1.0) -> Any:
    """An SDK tracer provider with the usual BatchSpanProcessor whose exporter drops every
    batch: the tracing suite measures wayline's span work plus the SDK's, not a network.
    ``ratio`` below 1 samples that fraction of new traces (parent-based, as the SDK's
    ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` does)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio))) if ratio < 1.0 else TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    stack.callback(provider.shutdown)  # after the runtime closes (the stack unwinds in reverse)
    return provider


async def _close(stack: contextlib.AsyncExitStack, seconds: float = 15.0) -> str | None:
    """Shut the runtime down, but never let a slow shutdown hang the benchmark."""
    try:
        # asyncio.timeout, not wait_for: the runtime's task group must be exited
        # by the task that entered it.
        async with asyncio.timeout(seconds):
            await stack.aclose()
    except TimeoutError:
        return f"runtime shutdown took over {seconds:.0f}s"
    return None


async def throughput(params: Params) -> Metrics:
    """N concurrent runs of K trivial activities, each checkpointed; time-boxed."""
    n, k = int(params["n"]), int(params["k"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    if params.get("gc_off"):
        gc.disable()  # the wayline-gc-off yardstick: this child process only
    async with contextlib.AsyncExitStack() as stack:
        rt, wfs = await _open(params, stack)
        deadline = Deadline(float(params["budget_s"]))
        # Started concurrently, as N clients would: the starts group-commit like steps.
        handles = await asyncio.gather(*(rt.start(wfs.steps, [inputs[i], k], run_id=f"r{i}") for i in range(n)))
        results = [asyncio.ensure_future(h.result()) for h in handles]
        done, pending = await asyncio.wait(results, timeout=deadline.remaining)
        elapsed = deadline.elapsed
        for fut in done:
            fut.result()  # surface a failed run as this row's error
        for fut in pending:
            fut.cancel()
        steps = n * k if not pending else _executed
        metrics: Metrics = {
            "steps_per_s": steps / elapsed,
            "cpu_us_per_step": deadline.cpu_us_per(steps),
            "seconds": elapsed,
            "steps": steps,
        }
        if pending:
            metrics["note"] = (
                f"time-boxed at {deadline.budget_s:.0f}s: {len(done)}/{n} runs finished, "
                f"rate counts activity executions"
            )
        await _close(stack)
    return metrics


async def sequential(params: Params) -> Metrics:
    """One run of S sequential trivial steps: time per step."""
    steps = int(params["steps"])
    async with contextlib.AsyncExitStack() as stack:
        rt, wfs = await _open(params, stack)
        t0 = time.perf_counter()
        handle = await rt.start(wfs.steps, [0, steps], run_id="seq")
        await handle.result()
        elapsed = time.perf_counter() - t0
        await _close(stack)
    return {"us_per_step": elapsed / steps * 1e6, "seconds": elapsed, "steps": steps}


async def signal(params: Params) -> Metrics:
    """Signal round trip: rt.signal to a parked run until its result is available."""
    _require_signals()
    samples = int(params["samples"])
    rng = random.Random(params["seed"])
    times: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        rt, wfs = await _open(params, stack)
        for i in range(samples):
            run_id = f"sig{i}"
            handle = await rt.start(wfs.waiter, i, run_id=run_id)
            await _until_waiting(rt, run_id)  # not measured
            payload = {"i": i, "v": rng.random()}
            t0 = time.perf_counter()
            await rt.signal(run_id, "go", payload)
            await handle.result()
            times.append(time.perf_counter() - t0)
        await _close(stack)
    return latency_metrics(times)


async def _until_waiting(rt: Any, run_id: str, timeout_s: float = 10.0) -> None:
    """Return once the run is parked on its signal, so the round trip excludes its start."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while loop.time() < give_up:
        info = await rt.describe(run_id)
        if str(getattr(info, "status", "")) == "WAITING":
            return
        await asyncio.sleep(0.0005)
    raise TimeoutError(f"run {run_id} did not reach its wait_signal within {timeout_s:.0f}s")


async def _until_all_parked(rt: Any, n: int, timeout_s: float = 120.0) -> None:
    """Wait until the store says all N runs are WAITING: the kill then loses nothing uncommitted."""
    if not hasattr(rt, "list_runs"):
        await asyncio.sleep(1.0)  # no way to ask: leave time for the last commits
        return
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while len(await rt.list_runs(status="WAITING")) < n:
        if loop.time() > give_up:
            raise TimeoutError(f"runs not all WAITING in the store after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


async def latency(params: Params) -> Metrics:
    """Start-to-finish latency of one 3-step run, one run at a time."""
    samples = int(params["samples"])
    times: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        rt, wfs = await _open(params, stack)
        for i in range(samples):
            t0 = time.perf_counter()
            handle = await rt.start(wfs.steps, [i, 3], run_id=f"lat{i}")
            await handle.result()
            times.append(time.perf_counter() - t0)
        await _close(stack)
    return latency_metrics(times)


async def recovery(params: Params) -> Metrics:
    """Park N runs after step 1 and get killed (prepare), or resume them (resume).

    Runs park on a signal; while wayline has no signals they park on a long
    durable sleep instead, and only the resume time is measured.
    """
    try:
        _require_signals()
        with_signals = True
    except NotReady:
        with_signals = False
    n = int(params["n"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    if params["phase"] == "prepare":
        global _target, _reached
        _target, _reached = n, asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            rt, wfs = await _open(params, stack)
            parked = wfs.parked if with_signals else wfs.sleeper
            for i in range(n):
                await rt.start(parked, inputs[i], run_id=f"r{i}")
            await _reached.wait()  # every run has run step 1...
            await _until_all_parked(rt, n)  # ...and its parked state is committed
            print("READY", flush=True)
            await asyncio.sleep(3600)  # SIGKILLed here by the harness
        return {}

    t0 = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        rt, wfs = await _open(params, stack)  # recovers every unfinished run on entry
        opened = time.perf_counter() - t0
        parked = wfs.parked if with_signals else wfs.sleeper
        if hasattr(rt, "get_handle"):
            handles = [rt.get_handle(f"r{i}") for i in range(n)]
        else:  # the same run_id again gives the same run: a handle to the recovered one
            handles = [await rt.start(parked, inputs[i], run_id=f"r{i}") for i in range(n)]
        resumed = await settle() - t0
        metrics: Metrics = {"resume_s": resumed, "open_s": opened, "runs": n}
        if with_signals:
            await asyncio.gather(*(rt.signal(f"r{i}", "go", None) for i in range(n)))
            results = await asyncio.gather(*(h.result() for h in handles))
            completed = time.perf_counter() - t0
            if sorted(results) != sorted(inputs):
                raise RuntimeError("resumed runs returned wrong results")
            metrics["complete_s"] = completed
            rerun = _executed - n  # each resumed run executes step 2 once
            tail = f"all {n} signalled and finished in {completed:.2f}s"
        else:
            rerun = _executed
            tail = "runs parked on ctx.sleep(3600): no signals yet, completion not measured"
        await _close(stack)
    metrics["step1_rerun"] = rerun
    metrics["note"] = (
        f"resume = open_runtime + a handle per run until the loop is idle ({opened:.2f}s to open); "
        f"{tail}; step 1 re-ran {rerun} times"
    )
    return metrics
