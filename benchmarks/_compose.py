"""Updates against signals, and continue-as-new at scale (the ``compose`` suite).

``roundtrip``: a run parked in a loop on a SQLite file, and a caller timing one message at a
time, ``samples`` times:

- ``signal``: ``rt.signal`` (the inbox commit) until the run's next step has seen the payload
  (the step tells the caller directly; its checkpoint is not waited for): the signal path;
- ``update``: ``rt.update`` until the caller holds the run's answer, which the run has
  checkpointed (`UpdateAnswered`) before it is handed over: one commit more than the signal.

``eternal``: one run of ``iterations`` iterations of one step each, on a SQLite file:

- ``one segment``: all in one run (its journal and history grow with every step);
- ``continue-as-new``: each iteration a segment of its own (``ctx.continue_as_new``), whose
  history and memory stay flat: the figures are iterations/s, the history rows the run has
  at the end, and the growth of peak RSS over the run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from ._common import Metrics, Params, db_file, percentile


def _rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def roundtrip(params: Params) -> Metrics:
    from wayline import RunContext, activity, open_runtime, workflow

    kind, samples = str(params["kind"]), int(params["samples"])
    seen: dict[int, asyncio.Future[None]] = {}

    @activity(name="seen")
    async def mark(i: int) -> int:
        fut = seen.get(i)
        if fut is not None and not fut.done():
            fut.set_result(None)
        return i

    @workflow(name="pinged")
    async def pinged(ctx: RunContext) -> None:
        for _ in range(samples + 1):
            if kind == "signal":
                i: int = await ctx.wait_signal("ping")
                await ctx.run(mark, i)
            else:
                upd = await ctx.wait_update("ping")
                await upd.reply(upd.payload)

    times: list[float] = []
    async with open_runtime(db_file(params, "compose.db"), workflows=[pinged]) as rt:
        await rt.start(pinged, run_id="r")
        for i in range(samples + 1):
            t0 = time.perf_counter()
            if kind == "signal":
                fut = seen[i] = asyncio.get_running_loop().create_future()
                await rt.signal("r", "ping", i)
                await fut
            else:
                if await rt.update("r", "ping", i) != i:
                    raise RuntimeError("the update's answer is not its payload")
            if i:  # the first warms the run up
                times.append((time.perf_counter() - t0) * 1000.0)
            await asyncio.sleep(0)
    ms = sorted(times)
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "samples": len(ms)}


async def eternal(params: Params) -> Metrics:
    from wayline import RunContext, activity, open_runtime, workflow

    iterations, mode = int(params["iterations"]), str(params["mode"])

    @activity(name="inc")
    async def inc(n: int) -> int:
        return n + 1

    @workflow(name="eternal")
    async def loop(ctx: RunContext, n: int) -> int:
        if mode == "continue":
            n = await ctx.run(inc, n)
            if n < iterations:
                ctx.continue_as_new(n)
            return n
        while n < iterations:
            n = await ctx.run(inc, n)
        return n

    path = db_file(params, "eternal.db")
    rss: list[int] = []
    async with open_runtime(path, workflows=[loop]) as rt:
        t0 = time.perf_counter()
        handle = await rt.start(loop, 0, run_id="e")
        watching = True

        async def watch() -> None:
            while watching:
                rss.append(_rss_kb())
                await asyncio.sleep(0.5)

        watcher = asyncio.ensure_future(watch())
        out: Any = await handle.result()
        elapsed = time.perf_counter() - t0
        watching = False
        await watcher
        events = len([e async for e in rt.history("e")])
    if out != iterations:
        raise RuntimeError(f"the run ended at {out}, not {iterations}")
    with sqlite3.connect(path) as conn:
        rows = int(conn.execute("SELECT COUNT(*) FROM history WHERE run_id = 'e'").fetchone()[0])
    # Peak RSS once the first tenth has run, against the end: the growth over the rest.
    early = rss[max(0, len(rss) // 10)] if rss else _rss_kb()
    return {
        "iterations_per_s": iterations / elapsed,
        "history_events": events,
        "history_rows": rows,
        "rss_growth_kb": max(0, _rss_kb() - early),
    }
