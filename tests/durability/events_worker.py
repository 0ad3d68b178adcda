"""A real process for the events kill -9 test: python events_worker.py DB SIDE_FILE.

Owns the database and runs workflow "job": started by event "job" (Concurrency 2 per
``data["k"]``), one step that appends ``start RUN PID TIME`` to SIDE_FILE, works 20 ms, and
appends ``end RUN PID TIME``. Events come from another process through the database. Prints
"ready" once open, then serves until it is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from wayline import Concurrency, Event, RunContext, activity, on_event, open_runtime, workflow


def _append(side: str, line: str) -> None:
    with open(side, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@activity(name="work")
async def work(side: str, run_id: str) -> str:
    _append(side, f"start {run_id} {os.getpid()} {time.time():.6f}")
    await asyncio.sleep(0.02)
    _append(side, f"end {run_id} {os.getpid()} {time.time():.6f}")
    return run_id


@workflow(name="job", triggers=[on_event("job")], concurrency=Concurrency(2, key=lambda e: e.data["k"]))
async def job(ctx: RunContext, event: Event) -> int:
    await ctx.run(work, event.data["side"], ctx.run_id)
    return int(event.data["n"])


async def main(db: str) -> None:
    async with open_runtime(db, workflows=[job], inbox_poll_interval=0.01):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
