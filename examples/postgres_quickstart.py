"""wayline on PostgreSQL: python examples/postgres_quickstart.py postgresql://user@host/db

Runs an order workflow on the PostgreSQL store: the worker registers itself, the run waits for
a signal sent by a second runtime opened as a client (as a web handler would), and the store's
view of the workers is printed. The database must exist (createdb); wayline makes its tables.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from wayline import RunContext, activity, open_runtime, workflow


@activity(name="reserve")
async def reserve(order: dict[str, object]) -> str:
    return f"reserved {order['sku']}"


@workflow(name="pg_order")
async def pg_order(ctx: RunContext, order: dict[str, object]) -> dict[str, object]:
    reserved = await ctx.run(reserve, order)  # committed to PostgreSQL before the body goes on
    decision = await ctx.wait_signal("approve", timeout=3600)  # durable: survives restarts
    return {"reserved": reserved, "approved": decision}


async def main(url: str) -> None:
    async with open_runtime(url, workflows=[pg_order]) as worker:  # the database's worker
        run_id = f"pg-order-{uuid.uuid4().hex[:8]}"
        handle = await worker.start(pg_order, {"sku": "LAMP-01"}, run_id=run_id)
        async with open_runtime(url, worker=False) as client:  # a client beside the worker
            await client.signal(run_id, "approve", True)  # committed, then delivered by the worker
        print(await handle.result())
        for w in await worker.store.list_workers():
            print(f"worker {w.worker_id} on {w.host} (pid {w.pid}), lease until {w.lease_until:.0f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"))
