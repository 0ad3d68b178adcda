"""A small user program, as someone who adopts wayline writes it: typed, with no casts.

``test_user_program.py`` checks it with ``mypy --strict`` (no error allowed; the
``assert_type`` calls are mypy's checks of what each expression is) and then runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any, assert_type

import msgspec

from wayline import RetryPolicy, RunContext, RunHandle, StateMachine, activity, open_runtime, workflow
from wayline.testing import VirtualClock


class Order(msgspec.Struct):
    id: str
    amount: float


@activity(name="charge", retry=RetryPolicy(max_attempts=2, interval=0.1))
async def charge(order_id: str, amount: float) -> dict[str, Any]:
    return {"charge_id": f"ch_{order_id}", "amount": amount}


@workflow(name="order", version="1")
async def process_order(ctx: RunContext, order: Order) -> str:
    receipt = await ctx.run(charge, order.id, order.amount)
    assert_type(receipt, dict[str, Any])
    verdict = await ctx.wait_signal("verdict", str, timeout=3600)  # decoded as, and typed as, a str
    assert_type(verdict, str)
    return f"{receipt['charge_id']}: {verdict}"


@workflow
async def tick(ctx: RunContext) -> int:
    await ctx.sleep(60)
    return 1


GREETING = {
    "StartAt": "Greet",
    "States": {
        "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.name)"}, "End": True}
    },
}


async def main() -> None:
    machine = StateMachine(GREETING, name="greeting")
    async with open_runtime(":memory:", workflows=[process_order, tick, machine], clock=VirtualClock()) as rt:
        handle = await rt.start(process_order, Order("o-1", 9.5), run_id="o-1")
        assert_type(handle, RunHandle[str])
        await rt.signal("o-1", "verdict", "approved")
        text = await handle.result()
        assert_type(text, str)

        ticks = await (await rt.start(tick)).result()
        assert_type(ticks, int)

        greeting = await rt.start(machine, {"name": "Ada"})  # no annotation needed
        out = await greeting.result()
        print(text, ticks, out["greeting"])


if __name__ == "__main__":
    asyncio.run(main())
