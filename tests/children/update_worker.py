"""A real process for the update kill -9 test: python update_worker.py DB SIDE_FILE.

Serves run "cart" of workflow "cart": ROUNDS updates "add", each answered with the number of
items so far after a step that appends "sku" to SIDE_FILE. Updates come from another process
through the database's inbox. Prints the run's result as JSON when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from wayline import RunContext, activity, open_runtime, workflow

ROUNDS = 8


@activity(name="record")
async def record(side: str, sku: str) -> str:
    with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
        f.write(f"{sku}\n")
        f.flush()
        os.fsync(f.fileno())
    return sku


@workflow(name="cart")
async def cart(ctx: RunContext, side: str) -> list[str]:
    items: list[str] = []
    while len(items) < ROUNDS:
        upd = await ctx.wait_update("add")
        items.append(await ctx.run(record, side, upd.payload))
        ctx.vars["items"] = list(items)
        await upd.reply(len(items))
    return items


async def main(db: str, side: str) -> None:
    async with open_runtime(db, workflows=[cart], inbox_poll_interval=0.005) as rt:
        result = await (await rt.start(cart, side, run_id="cart")).result()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
