"""The run context: bytes written per checkpoint with a large variable, with and without
offload to the blob table.

A run holds one variable of ``size`` bytes (random, so nothing compresses it) and takes
``steps`` steps; each step's checkpoint rewrites the run's snapshot. Without offload (the
offload size set above the variable's) the snapshot carries the variable every time; with it
(the default 16 KiB) the variable is stored once and the snapshot holds a reference. Bytes
written are what the process handed to ``write`` (``wchar`` in ``/proc/self/io``: the WAL,
the database file, everything) while the run ran, on a SQLite file with ``synchronous=FULL``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import PayloadLimits

from ._common import Metrics, Params, db_file

MiB = 1 << 20


@activity(name="bench_touch")
async def touch(i: int) -> int:
    return i


@workflow(name="bench_big_var")
async def big_var(ctx: RunContext, job: dict[str, Any]) -> int:
    ctx.vars["blob"] = random.Random(job["seed"]).randbytes(job["size"])
    for i in range(job["steps"]):
        await ctx.run(touch, i)
    return len(ctx.vars["blob"])


def _written() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


async def checkpoint_bytes(params: Params) -> Metrics:
    """Bytes written per step of a run holding a ``size``-byte variable, over ``steps`` steps."""
    size, steps, offload = int(params["size"]), int(params["steps"]), bool(params["offload"])
    room = size + MiB
    limits = PayloadLimits(max_value_bytes=room, max_context_bytes=room, offload_bytes=16 * 1024 if offload else room)
    path = str(db_file(params, "context.db"))
    async with open_runtime(path, workflows=[big_var], payload_limits=limits) as rt:
        before, t0 = _written(), time.perf_counter()
        handle = await rt.start(big_var, {"seed": params["seed"], "size": size, "steps": steps})
        if await handle.result() != size:
            raise AssertionError("the variable did not come back whole")
        written, took = _written() - before, time.perf_counter() - t0
    return {
        "bytes_per_step": written / steps,
        "total_mb": written / MiB,
        "step_ms": took / steps * 1000,
        "note": f"{size / MiB:g} MiB variable, {steps} steps, {written / MiB:.1f} MiB written in {took:.1f}s",
    }
