"""A real process for the kill -9 test of throttles and debounces:
python pacing_worker.py DB SIDE_FILE start|resume [uvloop].

``start`` opens a burst of three starts of a debounced workflow (quiet period 3 s), then
starts 12 runs of a workflow throttled to 2 per second (one each 0.5 s); each run appends
"<run id> <time>" to SIDE_FILE when it starts, and the process waits forever (it is killed).
``resume`` reopens DB, lets recovery start every run still queued, and prints what ended as
JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from wayline import Debounce, RunContext, Throttle, activity, open_runtime, workflow

RUNS = 12


@activity(name="mark_start")
async def mark_start(side: str, run_id: str) -> None:
    with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
        f.write(f"{run_id} {time.time()}\n")
        f.flush()
        os.fsync(f.fileno())


@workflow(name="paced_calls", throttle=Throttle(2, 1.0))
async def paced_calls(ctx: RunContext, side: str) -> str:
    await ctx.run(mark_start, side, ctx.run_id)
    return ctx.run_id


@workflow(name="quiet_sync", debounce=Debounce(3.0))
async def quiet_sync(ctx: RunContext, job: dict[str, object]) -> object:
    await ctx.run(mark_start, str(job["side"]), ctx.run_id)
    return job["n"]


async def main(db: str, side: str, mode: str) -> None:
    async with open_runtime(db, workflows=[paced_calls, quiet_sync], inbox_poll_interval=0.2) as rt:
        if mode == "start":
            for n in range(3):
                await rt.start(quiet_sync, {"side": side, "n": n}, run_id=f"q{n}")
            for i in range(RUNS):
                await rt.start(paced_calls, side, run_id=f"p{i:02}")
            await asyncio.Event().wait()
        out: dict[str, object] = {}
        for run in await rt.list_runs():
            out[run.run_id] = await rt.get_handle(run.run_id).result()
        print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
