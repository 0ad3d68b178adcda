"""Events and flow control (the ``events`` suite), on a SQLite file.

``accept``: ``n`` events with ids (deduplicated) and no trigger, sent one ``rt.send_event``
at a time (``batch`` 1) or ``rt.send_events`` of ``batch`` at a time: events/s committed.

``runs``: ``n`` events, each starting a run of one step through a trigger, sent in batches
of 100; runs/s until every run has ended. ``keys`` 0: no limit; else ``Concurrency(5)`` per
key over ``keys`` keys (the runs queue durably and start as slots free).

``dbos_runs``: the same workload on DBOS queues where it applies: ``n`` workflows of one
step enqueued on a `Queue` (no limit, or ``partition_concurrency=5`` with ``keys``
partition keys), time-boxed (``budget_s``).

``wake``: a run that loops on ``ctx.wait_for_event("ping", match={"i": i})``; the caller
times ``rt.send_event`` until the run's next step has seen the event (the step tells the
caller directly): the commit of the event, its wake-up through the run's inbox, and the
journaled look that finds it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._common import Deadline, Metrics, Params, Skipped, db_file, percentile


async def accept(params: Params) -> Metrics:
    from wayline import Event, open_runtime

    n, batch = int(params["n"]), int(params["batch"])
    async with open_runtime(db_file(params, "events.db")) as rt:
        t0 = time.perf_counter()
        if batch == 1:
            for i in range(n):
                await rt.send_event("bench/accept", {"i": i}, id=f"e{i}")
        else:
            for lo in range(0, n, batch):
                await rt.send_events(
                    [Event(name="bench/accept", data={"i": i}, id=f"e{i}") for i in range(lo, min(n, lo + batch))]
                )
        elapsed = time.perf_counter() - t0
        stored = len(await rt.list_events(limit=n + 1))
    if stored != n:
        raise RuntimeError(f"{stored} events stored, not {n}")
    return {"events_per_s": n / elapsed, "seconds": elapsed}


async def runs(params: Params) -> Metrics:
    from wayline import Concurrency, Event, RunContext, RunStatus, activity, on_event, open_runtime, workflow

    n, keys = int(params["n"]), int(params["keys"])

    @activity(name="touch")
    async def touch(i: int) -> int:
        return i

    limit = Concurrency(5, key=lambda e: e.data["k"]) if keys else None

    @workflow(name="from_event", triggers=[on_event("bench/run")], concurrency=limit)
    async def from_event(ctx: RunContext, event: Any) -> int:  # the Event, as stored data (a dict)
        return await ctx.run(touch, int(event["data"]["i"]))

    async with open_runtime(db_file(params, "runs.db"), workflows=[from_event]) as rt:
        t0 = time.perf_counter()
        ids: list[str] = []
        for lo in range(0, n, 100):
            sent = await rt.send_events(
                [
                    Event(name="bench/run", data={"i": i, "k": f"k{i % keys}" if keys else ""})
                    for i in range(lo, min(n, lo + 100))
                ]
            )
            ids += [s.run_ids[0] for s in sent]
        for run_id in ids:
            await rt.get_handle(run_id).result()
        elapsed = time.perf_counter() - t0
        done = len(await rt.list_runs(status=RunStatus.SUCCEEDED))
    if done != n:
        raise RuntimeError(f"{done} runs succeeded, not {n}")
    return {"runs_per_s": n / elapsed, "seconds": elapsed}


async def dbos_runs(params: Params) -> Metrics:
    try:
        import dbos
    except ImportError:
        raise Skipped("dbos") from None
    import importlib.metadata

    n, keys = int(params["n"]), int(params["keys"])
    DBOS = dbos.DBOS

    @DBOS.step()
    async def touch(i: int) -> int:
        return i

    @DBOS.workflow()
    async def from_queue(i: int) -> int:
        result: int = await touch(i)
        return result

    DBOS(
        config={
            "name": "wlbench",
            "system_database_url": f"sqlite:///{db_file(params, 'dbos.db')}",
            "log_level": "ERROR",
        }
    )
    DBOS.launch()
    # Polled every 10 ms (DBOS's default is 1 s): its best start latency.
    if keys:
        queue = await DBOS.register_queue_async("bench", partition_concurrency=5, polling_interval_sec=0.01)
    else:
        queue = await DBOS.register_queue_async("plain", polling_interval_sec=0.01)
    deadline = Deadline(float(params["budget_s"]))
    handles: list[Any] = []
    for i in range(n):
        if keys:
            with dbos.SetEnqueueOptions(queue_partition_key=f"k{i % keys}"):
                handles.append(await queue.enqueue_async(from_queue, i))
        else:
            handles.append(await queue.enqueue_async(from_queue, i))
    finished = 0

    async def wait_all() -> None:
        nonlocal finished
        for h in handles:
            await h.get_result()
            finished += 1

    try:
        await asyncio.wait_for(wait_all(), timeout=max(0.1, deadline.remaining))
    except TimeoutError:
        pass
    elapsed = deadline.elapsed
    note = f"dbos {importlib.metadata.version('dbos')}, SQLite system database, Queue"
    note += f" partition_concurrency=5 over {keys} keys" if keys else " without a limit"
    if finished < n:
        note += f"; time-boxed at {deadline.budget_s:.0f}s: {finished}/{n} finished"
    return {"runs_per_s": finished / elapsed, "seconds": elapsed, "note": note}


async def wake(params: Params) -> Metrics:
    from wayline import RunContext, activity, open_runtime, workflow

    samples = int(params["samples"])
    seen: dict[int, asyncio.Future[None]] = {}

    @activity(name="seen")
    async def mark(i: int) -> int:
        fut = seen.get(i)
        if fut is not None and not fut.done():
            fut.set_result(None)
        return i

    @workflow(name="listener")
    async def listener(ctx: RunContext) -> None:
        for i in range(samples + 1):
            ev = await ctx.wait_for_event("ping", match={"i": i})
            await ctx.run(mark, int(ev.data["i"]))

    times: list[float] = []
    async with open_runtime(db_file(params, "wake.db"), workflows=[listener]) as rt:
        await rt.start(listener, run_id="r")
        for i in range(samples + 1):
            while rt.statistics().waiting_runs < 1:  # noqa: ASYNC110 - until the run waits, durably
                await asyncio.sleep(0)
            fut = seen[i] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            await rt.send_event("ping", {"i": i})
            await fut
            if i:  # the first warms the run up
                times.append((time.perf_counter() - t0) * 1000.0)
    ms = sorted(times)
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "samples": len(ms)}
