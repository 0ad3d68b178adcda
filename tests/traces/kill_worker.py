"""A traced worker for the kill -9 tests: python kill_worker.py DB ENDPOINT start|resume.

It exports over OTLP/HTTP to ENDPOINT with `configure_telemetry` (the real SDK, its batch span
processor and the official exporter; the test sets a short ``OTEL_BSP_SCHEDULE_DELAY``).
``start`` begins run "k": five quick steps, then two ``pack`` steps in parallel that never
return in this mode (each says "pack started" on stdout), so the test knows what is in flight
when it kills the process. ``resume`` reopens DB, lets recovery finish the run (the packs
return at once now), prints its result as JSON and flushes the exporter.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from wayline import RunContext, activity, open_runtime, workflow
from wayline.runtime import configure_telemetry

MODE = sys.argv[3] if len(sys.argv) > 3 else "start"


@activity(name="tick")
async def tick(i: int) -> int:
    return i * i


@activity(name="pack")
async def pack(item: str) -> str:
    if MODE == "start":
        print("pack started", flush=True)
        await asyncio.Event().wait()  # in flight until the process is killed
    return item.upper()


@workflow(name="shipment")
async def shipment(ctx: RunContext) -> Any:
    total = sum([await ctx.run(tick, i) for i in range(5)])
    packed = await ctx.gather(ctx.run(pack, "a"), ctx.run(pack, "b"))
    return {"total": total + await ctx.run(tick, 10), "packed": packed}


async def main(db: str, endpoint: str) -> None:
    telemetry = configure_telemetry(endpoint, service_name="kill9", set_global=False)
    try:
        async with open_runtime(
            db,
            workflows=[shipment],
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
        ) as rt:
            handle = await rt.start(shipment, run_id="k") if MODE == "start" else rt.get_handle("k")
            result = await handle.result()
    finally:
        telemetry.shutdown()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
