"""The worker of the chaos test: python chaos_worker.py DB TOKENS_FILE RUNS.

Starts (idempotently: again after every SIGKILL) RUNS runs, alternately of a code workflow
and of a state machine, and drives them until they all end; prints STARTED once they exist,
STEP for every activity execution (the test kills the process after a random number of them),
and RESULT with every run's output at the end. Signals and callback answers come from another
process (chaos_sender.py) through the database's inbox; the tokens to answer are handed out
through TOKENS_FILE, as a mailer would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from wayline import RunContext, StateMachine, activity, open_runtime, workflow


def say(*parts: object) -> None:
    print(*parts, flush=True)


@activity(name="work")
async def work(run: str, i: int, k: int) -> int:
    say("STEP", run, k)
    await asyncio.sleep(0.002)
    return i * 10 + k


@activity(name="item")
async def item(pair: list[Any]) -> int:
    run, x = pair
    say("STEP", run, "item", x)
    return int(x) * int(x)


def hand_out(tokens_file: str, run: str, token: str) -> None:
    """What a mailer does with a link: make it reachable by whoever answers (fsynced)."""
    with open(tokens_file, "a", encoding="utf-8") as f:
        f.write(f"{run} {token}\n")
        f.flush()
        os.fsync(f.fileno())


@activity(name="send_link")
async def send_link(token: str, tokens_file: str, run: str) -> None:
    say("STEP", run, "link")
    hand_out(tokens_file, run, token)


@workflow(name="chaos_code")
async def chaos_code(ctx: RunContext, spec: dict[str, Any]) -> dict[str, Any]:
    run, i, tokens = ctx.run_id, int(spec["i"]), str(spec["tokens"])
    first = await ctx.run(work, run, i, 0)
    ping = await ctx.wait_signal("ping", timeout=3600)
    await ctx.sleep(0.05)
    pair = await ctx.gather(ctx.run(work, run, i, 1), ctx.run(work, run, i, 2))
    approval = await ctx.wait_for_callback(send_link, tokens, run, timeout=3600)
    squares = await ctx.map(item, [[run, x] for x in (i, i + 1, i + 2)], max_concurrency=2)
    return {"sum": first + sum(pair) + sum(squares), "ping": ping, "approval": approval}


async def asl_work(payload: dict[str, Any]) -> int:
    say("STEP", payload["run"], payload["k"])
    return int(payload["i"]) * 10 + int(payload["k"])


async def asl_item(x: int) -> int:
    return x * x


async def asl_send_link(payload: dict[str, Any]) -> dict[str, Any]:
    say("STEP", payload["run"], "link")
    hand_out(payload["tokens"], payload["run"], payload["token"])
    return {}


MACHINE: dict[str, Any] = {
    "StartAt": "First",
    "States": {
        "First": {
            "Type": "Task",
            "Resource": "work",
            "Parameters": {"run.$": "$$.Execution.Name", "i.$": "$.i", "k": 0},
            "ResultPath": "$.first",
            "Next": "Pause",
        },
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Ask"},
        "Ask": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "tokens.$": "$.tokens", "run.$": "$$.Execution.Name"},
            "ResultPath": "$.approval",
            "Next": "Fan",
        },
        "Fan": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "Square",
                "States": {"Square": {"Type": "Task", "Resource": "item", "End": True}},
            },
            "ResultPath": "$.squares",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "End": True},
    },
}

chaos_asl = StateMachine(
    MACHINE,
    name="chaos_asl",
    resources={"work": asl_work, "item": asl_item, "arn:aws:states:::lambda:invoke": asl_send_link},
)


def spec(i: int, tokens: str) -> dict[str, Any]:
    return {"i": i, "tokens": tokens, "items": [i, i + 1, i + 2]}


async def main(db: str, tokens: str, runs: int) -> None:
    async with open_runtime(db, workflows=[chaos_code, chaos_asl], inbox_poll_interval=0.01) as rt:
        handles = []
        for i in range(runs):
            machine = chaos_code if i % 2 == 0 else chaos_asl
            handles.append(await rt.start(machine, spec(i, tokens), run_id=f"{'code' if i % 2 == 0 else 'asl'}-{i}"))
        say("STARTED")
        results = {h.run_id: await h.result() for h in handles}
        statuses = {h.run_id: (await rt.describe(h.run_id)).status.value for h in handles}
    say("RESULT", json.dumps({"results": results, "statuses": statuses}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
