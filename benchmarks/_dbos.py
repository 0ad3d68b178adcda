"""DBOS Transact (``dbos`` 3.x) with its SQLite system database, workloads 1 to 5.

Workflows and steps are async (``@DBOS.workflow()`` / ``@DBOS.step()`` on
coroutines), started with ``DBOS.start_workflow_async`` under ``SetWorkflowID``;
signals are ``DBOS.send_async`` / ``DBOS.recv_async``. DBOS checkpoints each
step's output to its system database before the workflow goes on, the same
durability contract as wayline and the bare baseline.

On SQLite, ``recv`` learns of a new message by polling
(``notification_listener_polling_interval_sec``, default 1 s); the signal
scenario sets it to the 1 ms minimum so DBOS shows its best round trip, and the
row says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from ._common import Deadline, Metrics, Params, Skipped, db_file, latency_metrics, settle

_executed = 0
_target = 0
# Scenario-lifetime resources (the dbos-pg rows' database, dropped at the end of throughput).
_stack = contextlib.AsyncExitStack()
_reached: asyncio.Event | None = None


def _dbos() -> Any:
    try:
        import dbos
    except ImportError as exc:
        raise Skipped("dbos") from exc
    return dbos


class _Functions:
    """The registered DBOS functions; DBOS wants them before ``DBOS(config=...)``."""

    def __init__(self, dbos: Any) -> None:
        DBOS = dbos.DBOS

        @DBOS.step()
        async def bench_step(i: int) -> int:
            global _executed
            _executed += 1
            if _reached is not None and _executed >= _target:
                _reached.set()
            return i

        @DBOS.workflow()
        async def bench_steps(n: int, k: int) -> int:
            for i in range(k):
                await bench_step(i)
            return n

        @DBOS.workflow()
        async def bench_waiter(n: int) -> Any:
            return await DBOS.recv_async("go", timeout_seconds=3600)

        @DBOS.workflow()
        async def bench_parked(n: int) -> int:
            await bench_step(0)
            await DBOS.recv_async("go", timeout_seconds=3600)
            await bench_step(1)
            return n

        self.steps = bench_steps
        self.waiter = bench_waiter
        self.parked = bench_parked


async def _launch(params: Params, poll_s: float | None = None) -> tuple[Any, _Functions]:
    dbos = _dbos()
    funcs = _Functions(dbos)
    url = f"sqlite:///{db_file(params, 'dbos.db')}"
    if params.get("store") == "postgres":  # the dbos-pg rows: DBOS creates its database itself
        from ._pg import fresh_database

        url = await _stack.enter_async_context(fresh_database(create=False))
    config: dict[str, Any] = {
        "name": "wlbench",
        "system_database_url": url,
        "log_level": "ERROR",
    }
    if poll_s is not None:
        config["notification_listener_polling_interval_sec"] = poll_s
    dbos.DBOS(config=config)
    dbos.DBOS.launch()
    return dbos, funcs


async def _start(dbos: Any, func: Any, run_id: str, *args: Any) -> Any:
    with dbos.SetWorkflowID(run_id):
        return await dbos.DBOS.start_workflow_async(func, *args)


def _version(dbos: Any, params: Params | None = None) -> str:
    import importlib.metadata

    where = "PostgreSQL" if params is not None and params.get("store") == "postgres" else "SQLite"
    return f"dbos {importlib.metadata.version('dbos')}, {where} system database"


async def throughput(params: Params) -> Metrics:
    """N concurrent workflows of K trivial steps; time-boxed (``budget_s``)."""
    n, k = int(params["n"]), int(params["k"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    dbos, f = await _launch(params)
    deadline = Deadline(float(params["budget_s"]))
    started = [0]

    async def one(i: int) -> int:
        handle = await _start(dbos, f.steps, f"r{i}", inputs[i], k)
        started[0] += 1
        result: int = await handle.get_result()
        return result

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=deadline.remaining)
    elapsed = deadline.elapsed
    cpu = deadline.cpu_us_per(n * k if not pending else _executed)
    for t in done:
        t.result()
    steps = n * k if not pending else _executed
    note = _version(dbos, params)
    if pending:
        note += (
            f"; time-boxed at {deadline.budget_s:.0f}s: {started[0]}/{n} runs started, "
            f"{len(done)} finished; rate counts step executions"
        )
    # No DBOS.destroy(): the child exits hard, and a destroy with N runs in
    # flight waits for them. A PostgreSQL database of its own is dropped (with its sessions).
    await _stack.aclose()
    return {
        "steps_per_s": steps / elapsed,
        "cpu_us_per_step": cpu,
        "seconds": elapsed,
        "steps": steps,
        "note": note,
    }


async def sequential(params: Params) -> Metrics:
    """One workflow of S sequential steps."""
    steps = int(params["steps"])
    dbos, f = await _launch(params)
    t0 = time.perf_counter()
    handle = await _start(dbos, f.steps, "seq", 0, steps)
    await handle.get_result()
    elapsed = time.perf_counter() - t0
    return {
        "us_per_step": elapsed / steps * 1e6,
        "seconds": elapsed,
        "steps": steps,
        "note": _version(dbos),
    }


async def signal(params: Params) -> Metrics:
    """send_async to a workflow parked in recv_async, until its result."""
    samples = int(params["samples"])
    rng = random.Random(params["seed"])
    dbos, f = await _launch(params, poll_s=0.001)
    times: list[float] = []
    for i in range(samples):
        run_id = f"sig{i}"
        handle = await _start(dbos, f.waiter, run_id, i)
        await asyncio.sleep(0.01)  # let it reach recv (not measured)
        payload = {"i": i, "v": rng.random()}
        t0 = time.perf_counter()
        await dbos.DBOS.send_async(run_id, payload, "go")
        await handle.get_result()
        times.append(time.perf_counter() - t0)
    return {
        **latency_metrics(times),
        "note": _version(dbos) + "; recv polling at 1 ms (SQLite has no LISTEN/NOTIFY)",
    }


async def latency(params: Params) -> Metrics:
    """Start-to-finish latency of a 3-step workflow."""
    samples = int(params["samples"])
    dbos, f = await _launch(params)
    times: list[float] = []
    for i in range(samples):
        t0 = time.perf_counter()
        handle = await _start(dbos, f.steps, f"lat{i}", i, 3)
        await handle.get_result()
        times.append(time.perf_counter() - t0)
    return {**latency_metrics(times), "note": _version(dbos)}


async def recovery(params: Params) -> Metrics:
    """Park N workflows in recv after step 1 and get killed, or recover them on launch."""
    global _target, _reached
    n = int(params["n"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    if params["phase"] == "prepare":
        _target, _reached = n, asyncio.Event()
        dbos, f = await _launch(params, poll_s=0.01)
        for i in range(n):
            await _start(dbos, f.parked, f"r{i}", inputs[i])
        await _reached.wait()
        await asyncio.sleep(1.0)  # the step outputs are committed right after
        print("READY", flush=True)
        await asyncio.sleep(3600)
        return {}

    _target, _reached = 2 * n, asyncio.Event()  # step 1 of the resumed runs, below
    t0 = time.perf_counter()
    # DBOS recovers this executor's pending workflows during launch().
    dbos, f = await _launch(params, poll_s=0.01)
    handles = [await dbos.DBOS.retrieve_workflow_async(f"r{i}") for i in range(n)]
    resumed = await settle() - t0
    await asyncio.gather(*(dbos.DBOS.send_async(f"r{i}", None, "go") for i in range(n)))
    results = await asyncio.gather(*(h.get_result(polling_interval_sec=0.01) for h in handles))
    completed = time.perf_counter() - t0
    if sorted(results) != sorted(inputs):
        raise RuntimeError("recovered workflows returned wrong results")
    return {
        "resume_s": resumed,
        "complete_s": completed,
        "runs": n,
        "note": (
            f"{_version(dbos)}; resume = launch (recovers pending workflows, on DBOS's own "
            f"threads) + a handle per run; all signalled and finished in {completed:.2f}s"
        ),
    }
