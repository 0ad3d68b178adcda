"""A real process for the signal kill -9 test: python signal_worker.py DB SIDE_FILE.

Serves run "p" of workflow "pingpong": ten rounds of wait_signal("ping") then a step that
appends "round:payload" to SIDE_FILE. Signals come from another process through the
database's inbox. Prints the run's result as JSON when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from wayline import RunContext, activity, open_runtime, workflow

ROUNDS = 10


@activity(name="record")
async def record(side: str, i: int, payload: int) -> int:
    with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
        f.write(f"{i}:{payload}\n")
        f.flush()
        os.fsync(f.fileno())
    return payload


@workflow(name="pingpong")
async def pingpong(ctx: RunContext, side: str) -> list[int]:
    got = []
    for i in range(ROUNDS):
        payload: int = await ctx.wait_signal("ping")
        got.append(await ctx.run(record, side, i, payload))
    return got


async def main(db: str, side: str) -> None:
    async with open_runtime(db, workflows=[pingpong], inbox_poll_interval=0.005) as rt:
        result = await (await rt.start(pingpong, side, run_id="p")).result()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
