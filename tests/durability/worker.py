"""A real process for the kill -9 test: python worker.py DB SIDE_FILE start|resume [uvloop].

``start`` begins a 20-step run (id "k") whose steps each append "index\\n" to SIDE_FILE and
take ~20 ms; ``resume`` reopens DB, lets recovery drive the run to its end, and prints the
result as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from wayline import RunContext, activity, open_runtime, workflow

STEPS = 20


@activity(name="append")
async def append(side: str, i: int, acc: list[int]) -> list[int]:
    with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
        f.write(f"{i}\n")
        f.flush()
        os.fsync(f.fileno())
    await asyncio.sleep(0.02)
    return [*acc, i * i]


@workflow(name="twenty")
async def twenty(ctx: RunContext, side: str) -> dict[str, object]:
    acc: list[int] = []
    for i in range(STEPS):
        acc = await ctx.run(append, side, i, acc)
        ctx.vars["last"] = i
    return {"squares": acc, "sum": sum(acc)}


MANY = 40


@activity(name="tagged")
async def tagged(side: str, run: int, i: int) -> int:
    with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny append, on purpose
        f.write(f"{run}:{i}\n")
    await asyncio.sleep(0.01)
    return run * 100 + i


@workflow(name="ten")
async def ten(ctx: RunContext, inp: list[object]) -> int:
    side, run = str(inp[0]), int(str(inp[1]))
    return sum([await ctx.run(tagged, side, run, i) for i in range(10)])


async def main(db: str, side: str, mode: str) -> None:
    async with open_runtime(db, workflows=[twenty, ten]) as rt:
        if mode == "start":
            result: object = await (await rt.start(twenty, side, run_id="k")).result()
        elif mode == "resume":
            result = await rt.get_handle("k").result()
        elif mode == "start-many":  # many runs group-committing together
            handles = [await rt.start(ten, [side, r], run_id=f"m{r}") for r in range(MANY)]
            result = [await h.result() for h in handles]
        else:  # resume-many
            result = [await rt.get_handle(f"m{r}").result() for r in range(MANY)]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    db, side, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
        import uvloop

        uvloop.run(main(db, side, mode))
    else:
        asyncio.run(main(db, side, mode))
