"""Child workflows, updates and an eternal run, on a virtual clock.

- an order runs its shipping as a child workflow (a code workflow) and its invoice as a child
  state machine, and awaits both;
- a cart is one run that lives for ever: it takes ``rt.update`` requests (a validator refuses
  bad ones before anything is written) and continues as new every 3 items, so its history
  stays short however long it lives.

Run it: ``python examples/children_updates_eternal.py`` (it uses a temporary database).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from wayline import RunContext, StateMachine, activity, open_runtime, workflow
from wayline.errors import UpdateRejectedError
from wayline.history import ContinuedAsNew
from wayline.testing import VirtualClock


@activity(name="pack")
async def pack(item: str) -> str:
    return f"box({item})"


@workflow(name="ship")
async def ship(ctx: RunContext, order: dict[str, Any]) -> list[str]:
    return [await ctx.run(pack, item) for item in order["items"]]


async def total(payload: dict[str, Any]) -> dict[str, Any]:
    return {"total": 9.5 * len(payload["items"])}


INVOICE = StateMachine(
    {"StartAt": "Total", "States": {"Total": {"Type": "Task", "Resource": "total", "End": True}}},
    name="invoice",
    resources={"total": total},
)


@workflow(name="order")
async def order(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    # Two children at once: each start is journaled, so a restarted order finds the same two.
    shipping = await ctx.start_workflow(ship, order, run_id=f"{ctx.run_id}/ship")
    invoice = await ctx.start_workflow(INVOICE, order, run_id=f"{ctx.run_id}/invoice")
    return {"boxes": await shipping.result(), "invoice": await invoice.result()}


def check_item(payload: Any) -> None:
    if not isinstance(payload, str) or not payload:
        raise ValueError("an item is a non-empty string")


@workflow(name="cart", validators={"add": check_item})
async def cart(ctx: RunContext, items: list[str]) -> list[str]:
    while True:
        upd = await ctx.wait_update("add")
        if upd.payload in items:
            await upd.reject("Duplicate", f"{upd.payload} is already in the cart")
            continue
        items = [*items, upd.payload]
        await upd.reply(len(items))
        if len(items) % 3 == 0:
            ctx.continue_as_new(items)  # same run id, fresh history; pending updates carry over


async def main(db: Path) -> None:
    async with open_runtime(db, workflows=[order, ship, INVOICE, cart], clock=VirtualClock()) as rt:
        out = await (await rt.start(order, {"id": "o-1", "items": ["tea", "cup"]}, run_id="o-1")).result()
        print(f"order: {out['boxes']} {out['invoice']}")

        await rt.start(cart, [], run_id="cart-1")
        counts = [await rt.update("cart-1", "add", f"item-{i}") for i in range(7)]
        print(f"cart counts: {counts}")
        try:
            await rt.update("cart-1", "add", "item-6")
        except UpdateRejectedError as exc:
            print(f"rejected by the run: {exc.cause}")
        try:
            await rt.update("cart-1", "add", "")
        except UpdateRejectedError as exc:
            print(f"rejected by the validator: {exc.cause}")
        # A retry with the same update id gets the answer recorded the first time.
        first = await rt.update("cart-1", "add", "gift", update_id="req-42")
        again = await rt.update("cart-1", "add", "gift", update_id="req-42")
        print(f"retried: {first} {again}")
        history = [e async for e in rt.history("cart-1")]
        segment = [e.segment for e in history if isinstance(e, ContinuedAsNew)]
        print(f"cart history: {len(history)} events, segment {segment[0]}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp) / "example.db"))
