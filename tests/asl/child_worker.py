"""A real process for the kill -9 test of child runs: python child_worker.py DB SIDE start|resume [uvloop].

``start`` begins run "k" of a state machine whose distributed Map runs 20 items as child
runs, two at a time; each item's task appends "index\\n" to SIDE (fsynced) and takes
~20 ms. ``resume`` reopens DB, lets recovery finish the run, and prints its output as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from wayline import StateMachine, open_runtime

ITEMS = 20


def machine(side: str) -> StateMachine:
    async def append(i: int) -> int:
        with open(side, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - tiny fsynced append, on purpose
            f.write(f"{i}\n")
            f.flush()
            os.fsync(f.fileno())
        await asyncio.sleep(0.02)
        return i * i

    return StateMachine(
        {"StartAt": "Fan", "States": {
            "Fan": {"Type": "Map", "MaxConcurrency": 2,
                    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "Append",
                                      "States": {"Append": {"Type": "Task", "Resource": "append", "End": True}}},
                    "Next": "Sum"},
            "Sum": {"Type": "Pass", "Parameters": {"squares.$": "$", "n.$": "States.ArrayLength($)"}, "End": True}}},
        name="fan",
        resources={"append": append},
    )


async def main(db: str, side: str, mode: str) -> None:
    sm = machine(side)
    async with open_runtime(db, workflows=[sm]) as rt:
        result: Any
        if mode == "start":
            result = await (await rt.start(sm, list(range(ITEMS)), run_id="k")).result()
        else:
            result = await rt.get_handle("k").result()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    db, side, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
        import uvloop

        uvloop.run(main(db, side, mode))
    else:
        asyncio.run(main(db, side, mode))
