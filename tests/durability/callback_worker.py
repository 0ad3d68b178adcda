"""A real process for the callback kill -9 test: python callback_worker.py DB TOKENS_FILE.

Serves run "cb" of workflow "approvals": five rounds of ctx.wait_for_callback, whose sender
appends "round token" to TOKENS_FILE (fsynced), as a mailer would hand a link out. Answers
come from another process through the database's inbox. Prints the result as JSON at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from wayline import RunContext, activity, open_runtime, workflow

ROUNDS = 5


@activity(name="hand_out")
async def hand_out(token: str, tokens_file: str, i: int) -> None:
    with open(tokens_file, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
        f.write(f"{i} {token}\n")
        f.flush()
        os.fsync(f.fileno())


@workflow(name="approvals")
async def approvals(ctx: RunContext, tokens_file: str) -> list[int]:
    got = []
    for i in range(ROUNDS):
        got.append(await ctx.wait_for_callback(hand_out, tokens_file, i, timeout=3600))
    return got


async def main(db: str, tokens_file: str) -> None:
    async with open_runtime(db, workflows=[approvals], inbox_poll_interval=0.005) as rt:
        result = await (await rt.start(approvals, tokens_file, run_id="cb")).result()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
