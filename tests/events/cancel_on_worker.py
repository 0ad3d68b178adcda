"""A real process for the cancel_on kill -9 test: python cancel_on_worker.py DB.

Owns the SQLite database, starts run "held" of workflow "held" (cancelled by event
"order/cancelled" with the same ``order_id``), and once it waits sends that event with id
"evt-kill". The process kills itself with SIGKILL at the moment the event is committed and
its cancels are about to be dispatched: the restart must cancel the run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from wayline import RunContext, RunStatus, on_event, open_runtime, workflow
from wayline.runtime import _cancel_on


@workflow(name="held", cancel_on=[on_event("order/cancelled", match="order_id")])
async def held(ctx: RunContext, order: dict[str, Any]) -> str:
    await ctx.sleep(3600)
    return "done"


async def die(*args: Any) -> tuple[str, ...]:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


async def main(db: str) -> None:
    async with open_runtime(db, workflows=[held]) as rt:
        await rt.start(held, {"order_id": "h-1"}, run_id="held")
        while (await rt.describe("held")).status is not RunStatus.WAITING:  # noqa: ASYNC110 - a row
            await asyncio.sleep(0.01)
        _cancel_on.Canceller.cancel_for = die  # type: ignore[method-assign]
        print("sending", flush=True)
        await rt.send_event("order/cancelled", {"order_id": "h-1"}, id="evt-kill")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
