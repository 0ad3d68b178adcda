"""A worker for test_kill9_flow_waiting: ``<db> <side file> <napper|plain> <runs>``.

It starts the runs (a no-op for those that exist: after a restart it just waits for them),
prints ``ready``, and ``done`` once all have ended. Each step appends its start and end, with
the wall time, to the side file.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from wayline import Concurrency, RunContext, activity, open_runtime, workflow

SIDE = sys.argv[2]


def side(what: str, run_id: str) -> None:
    with open(SIDE, "a") as f:
        f.write(f"{what} {run_id} {os.getpid()} {time.time()}\n")


@activity(name="busy")
async def busy(run_id: str) -> None:
    side("start", run_id)
    await asyncio.sleep(0.03)
    side("end", run_id)


@workflow(name="napper", concurrency=Concurrency(1, count_waiting=False))
async def napper(ctx: RunContext, n: int) -> int:
    for _ in range(3):
        await ctx.run(busy, ctx.run_id)
        await ctx.sleep(0.05)
    return n


@workflow(name="plain")
async def plain(ctx: RunContext, n: int) -> int:
    for _ in range(3):
        await ctx.run(busy, ctx.run_id)
        await ctx.sleep(0.05)
    return n


async def main() -> None:
    mode, count = sys.argv[3], int(sys.argv[4])
    wf = napper if mode == "napper" else plain
    limit = {"max_runs": 2} if mode == "plain" else {}
    async with open_runtime(sys.argv[1], workflows=[napper, plain], **limit) as rt:  # type: ignore[arg-type]
        handles = [await rt.start(wf, n, run_id=f"{mode}{n}") for n in range(count)]
        print("ready", flush=True)
        for h in handles:
            await h.result()
        print("done", flush=True)


asyncio.run(main())
