"""cancel_on: an "order/cancelled" event cancels the runs of the order it names, whether
they wait, left memory, or still sit QUEUED behind a concurrency limit.

    python examples/cancel_on.py

On a SQLite file in a temporary directory, with a virtual clock. What it prints is checked
by tests/events/test_cancel_on.py.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from wayline import Concurrency, Event, RunCancelled, RunContext, on_event, open_runtime, workflow
from wayline.testing import VirtualClock


def real(e: Event) -> bool:
    return not e.data.get("test")


@workflow(
    name="fulfil",
    triggers=[on_event("order/created")],
    concurrency=Concurrency(1, key=lambda e: e.data["customer"]),
    # An order/cancelled event whose data["order"] equals this run's event's data["order"]
    # cancels the run; a cancel with "test": true is ignored.
    cancel_on=[on_event("order/cancelled", match="order", where=real)],
)
async def fulfil(ctx: RunContext, event: Event) -> str:
    await ctx.sleep(24 * 3600)  # waits a day for the warehouse
    return f"{event.data['order']}: shipped"


@workflow(name="invoice", cancel_on=[on_event("order/cancelled", match={"order": "id"}, where=real)])
async def invoice(ctx: RunContext, order: dict[str, str]) -> str:
    await ctx.sleep(3600)
    return f"{order['id']}: invoiced"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_runtime(str(Path(tmp) / "cancel.db"), workflows=[fulfil, invoice], clock=VirtualClock()) as rt:
            o1 = await rt.send_event("order/created", {"customer": "c1", "order": "o-1"})
            o2 = await rt.send_event("order/created", {"customer": "c1", "order": "o-2"})  # QUEUED behind o-1
            await rt.start(invoice, {"id": "o-2"}, run_id="invoice-o-2")
            test = await rt.send_event("order/cancelled", {"order": "o-2", "test": True})
            print("a test cancel cancels", len(test.cancelled_run_ids), "runs")
            sent = await rt.send_event("order/cancelled", {"order": "o-2"}, id="cancel-7")
            print("cancelled:", sent.cancelled_run_ids)
            info = await rt.describe(o2.run_ids[0])
            print(info.status.value, "-", info.cause)
            try:
                await rt.get_handle("invoice-o-2").result()
            except RunCancelled as exc:
                print("invoice:", exc)
            print(await rt.get_handle(o1.run_ids[0]).result())


if __name__ == "__main__":
    asyncio.run(main())
