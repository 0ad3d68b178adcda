"""Mistakes a type checker must catch in a wayline program; each line marked ``# error: CODE``
is where ``mypy --strict`` must report that error code, and nowhere else (see
``test_user_program.py``)."""

from __future__ import annotations

from user_program import Order, charge, process_order, tick

from wayline import RunContext, Runtime, workflow


@workflow(name="bad-steps")
async def bad_steps(ctx: RunContext, order: Order) -> None:
    await ctx.run(charge, 5, order.amount)  # error: arg-type
    await ctx.run(charge, order.id)  # error: call-arg
    approved: bool = await ctx.wait_signal("verdict", str)  # error: arg-type
    print(approved)


async def start_wrongly(rt: Runtime) -> None:
    await rt.start(process_order, {"id": "o-1", "amount": 9.5})  # error: misc
    await rt.start(process_order)  # error: arg-type
    await rt.start(tick, "unexpected input")  # error: misc
    handle = await rt.start(process_order, Order("o-2", 1.0))
    count: int = await handle.result()  # error: assignment
    await rt.signal("o-2", 7, "approved")  # error: arg-type
    print(count)
