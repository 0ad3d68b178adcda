"""Events and flow control: runs started by events, runs waiting for events, and a
concurrency limit per customer that queues the rest durably.

    python examples/events_and_flow_control.py

On a SQLite file in a temporary directory, with a virtual clock (the hour-long waits pass at
once). What it prints is checked by tests/events/test_example.py.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from wayline import (
    Concurrency,
    Event,
    EventTimeoutError,
    RunContext,
    RunStatus,
    activity,
    on_event,
    open_runtime,
    workflow,
)
from wayline.testing import VirtualClock

SHIPPED: list[str] = []


@activity(name="ship")
async def ship(order: str) -> str:
    SHIPPED.append(order)
    return f"shipped {order}"


@workflow(
    name="fulfil",
    # Every order/created event with a positive total starts a run, the event as its input.
    triggers=[on_event("order/created", where=lambda e: e.data["total"] > 0)],
    # At most one run per customer at once; the others wait QUEUED, gold customers first.
    concurrency=Concurrency(1, key=lambda e: e.data["customer"]),
    priority=lambda e: 10 if e.data.get("tier") == "gold" else 0,
)
async def fulfil(ctx: RunContext, event: Event) -> str:
    order = event.data["order"]
    try:
        # Sees a payment sent at any time since this run was created, even before the wait.
        paid = await ctx.wait_for_event("payment/received", match={"order": order}, timeout=3600)
    except EventTimeoutError:
        return f"{order}: not paid"
    return f"{order}: paid {paid.data['amount']}, " + await ctx.run(ship, order)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "events.db")
        async with open_runtime(db, workflows=[fulfil], clock=VirtualClock()) as rt:
            first = await rt.send_event("order/created", {"customer": "c1", "order": "o-1", "total": 5}, id="evt-1")
            again = await rt.send_event("order/created", {"customer": "c1", "order": "o-1", "total": 5}, id="evt-1")
            print("duplicate:", again.duplicate, again.run_ids)
            free = await rt.send_event("order/created", {"customer": "c1", "order": "o-0", "total": 0})
            print("a zero total starts", len(free.run_ids), "runs")
            later = await rt.send_event("order/created", {"customer": "c1", "order": "o-2", "total": 7})
            gold = await rt.send_event("order/created", {"customer": "c1", "order": "o-3", "total": 9, "tier": "gold"})
            queued = await rt.describe(later.run_ids[0])
            print(queued.status.value, "-", queued.waiting_for[0])
            # The payment for o-2 comes before its run has even started: it is not lost.
            await rt.send_event("payment/received", {"order": "o-2", "amount": 7})
            await rt.send_event("payment/received", {"order": "o-1", "amount": 5})
            await rt.send_event("payment/received", {"order": "o-3", "amount": 9})
            for sent in (first, gold, later):
                print(await rt.get_handle(sent.run_ids[0]).result())
            print("shipped in order:", SHIPPED)
            print("queued now:", len(await rt.list_runs(status=RunStatus.QUEUED)))


if __name__ == "__main__":
    asyncio.run(main())
