"""The demo's workflow: process an order, then update inventory and confirm in parallel.

This is ordinary wayline code; read it first. The only demo-specific part is `say`, which
reports what the worker does as JSON lines on stdout so the parent process can show it and
count how many times each activity really ran.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from wayline import RetryPolicy, RunContext, activity, workflow

Order = dict[str, Any]

#: The demo's workflow name: its own, so that it can tell a database of earlier demos (which
#: it may start afresh) from anyone else's (which it refuses), even one with "order" runs.
WORKFLOW = "demo-order"
RUN_ID = "order-1001"
ORDER: Order = {
    "id": "1001",
    "email": "ada@example.com",
    "card": "tok_visa_4242",
    "items": [
        {"sku": "LAMP-01", "qty": 1, "price": 34.00},
        {"sku": "BULB-E27", "qty": 2, "price": 4.25},
    ],
}

#: Names of the five activities, in the order the workflow runs them.
STEPS = (
    "validate_order",
    "check_inventory",
    "charge_payment",
    "update_inventory",
    "send_confirmation",
)


def say(kind: str, **fields: Any) -> None:
    """One event for the parent process: a JSON line on stdout, flushed at once."""
    print(json.dumps({"kind": kind, "pid": os.getpid(), **fields}), flush=True)


async def _work(step: str, doing: str, seconds: float) -> None:
    """Report an activity starting, then take some time like a real call would."""
    say("activity", step=step, phase="start", text=doing)
    await asyncio.sleep(seconds)


@activity(name="validate_order")
async def validate_order(order: Order) -> dict[str, Any]:
    await _work("validate_order", f"checking order {order['id']} ({len(order['items'])} lines)", 0.3)
    total = round(sum(i["qty"] * i["price"] for i in order["items"]), 2)
    return {"valid": True, "total": total}


@activity(name="check_inventory")
async def check_inventory(order: Order) -> dict[str, Any]:
    skus = ", ".join(f"{i['qty']} x {i['sku']}" for i in order["items"])
    await _work("check_inventory", f"reserving {skus}", 0.4)
    return {"reserved": [i["sku"] for i in order["items"]]}


# A payment gateway call is the step most worth retrying (and the one you least want to repeat
# after it succeeded: once this step is checkpointed, no restart will charge the card again).
@activity(name="charge_payment", retry=RetryPolicy(max_attempts=3, interval=0.2))
async def charge_payment(order: Order, amount: float) -> dict[str, Any]:
    await _work("charge_payment", f"charging ${amount:.2f} to card {order['card']}", 0.5)
    return {"charge_id": f"ch_{order['id']}", "amount": amount}


@activity(name="update_inventory")
async def update_inventory(order: Order) -> dict[str, Any]:
    await _work("update_inventory", "decrementing stock for the reserved items", 0.6)
    return {"updated": len(order["items"])}


@activity(name="send_confirmation")
async def send_confirmation(order: Order) -> dict[str, Any]:
    await _work("send_confirmation", f"emailing the receipt to {order['email']}", 0.6)
    return {"message_id": f"msg_{order['id']}"}


@workflow(name=WORKFLOW, version="1")
async def process_order(ctx: RunContext, order: Order) -> dict[str, Any]:
    # The body is plain async code. After a crash it is re-entered from the top, and each
    # ctx.run(...) that already completed returns its checkpointed result at once.
    say("body", text=f"body entered for run {ctx.run_id}")
    ctx.vars["order_id"] = order["id"]

    checked = await ctx.run(validate_order, order)
    say("body", text=f"validate_order    -> {json.dumps(checked)}")
    ctx.vars["total"] = checked["total"]

    reserved = await ctx.run(check_inventory, order)
    say("body", text=f"check_inventory   -> {json.dumps(reserved)}")

    payment = await ctx.run(charge_payment, order, checked["total"])
    say("body", text=f"charge_payment    -> {json.dumps(payment)}")

    inventory, confirmation = await ctx.gather(
        ctx.run(update_inventory, order),
        ctx.run(send_confirmation, order),
    )
    say("body", text=f"update_inventory  -> {json.dumps(inventory)}")
    say("body", text=f"send_confirmation -> {json.dumps(confirmation)}")

    return {
        "order_id": order["id"],
        "charged": payment["amount"],
        "charge_id": payment["charge_id"],
        "items_updated": inventory["updated"],
        "confirmation": confirmation["message_id"],
    }
