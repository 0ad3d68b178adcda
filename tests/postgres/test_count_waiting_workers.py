"""``Concurrency(count_waiting=False)`` across two workers on one PostgreSQL database (two
runtimes in one process, each with its own store: to the database, two workers)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from wayline import Concurrency, RunContext, activity, open_runtime, workflow

pytestmark = pytest.mark.anyio

#: (run id, what, monotonic time) of the steps below; steps executing now, and the most at once.
LOG: list[tuple[str, str, float]] = []
ACTIVE = {"now": 0, "max": 0}


@activity(name="pg_note")
async def note(run_id: str, what: str) -> None:
    LOG.append((run_id, what, time.monotonic()))


@activity(name="pg_work")
async def work(run_id: str) -> None:
    ACTIVE["now"] += 1
    ACTIVE["max"] = max(ACTIVE["max"], ACTIVE["now"])
    LOG.append((run_id, "work", time.monotonic()))
    try:
        await asyncio.sleep(0.05)
    finally:
        ACTIVE["now"] -= 1


@workflow(name="pg_nap_then_work", concurrency=Concurrency(1, count_waiting=False))
async def nap_then_work(ctx: RunContext, n: int) -> int:
    await ctx.run(note, ctx.run_id, "before")
    await ctx.sleep(0.5)
    await ctx.run(work, ctx.run_id)
    return n


async def test_two_workers_share_the_slot_a_waiting_run_gives_back(pg_url: str) -> None:
    LOG.clear()
    ACTIVE.update(now=0, max=0)
    async with (
        open_runtime(pg_url, workflows=[nap_then_work], worker_id="a") as a,
        open_runtime(pg_url, workflows=[nap_then_work], worker_id="b") as b,
    ):
        handles = [await (a if n % 2 else b).start(nap_then_work, n, run_id=f"r{n}") for n in range(6)]
        assert sorted([await h.result() for h in handles]) == list(range(6))
        conn = await asyncpg.connect(pg_url)
        try:
            assert await conn.fetchval("SELECT COUNT(*) FROM wayline.flow_slots") == 0
            assert await conn.fetchval("SELECT COUNT(*) FROM wayline.flow_queue") == 0
        finally:
            await conn.close()
    befores = [at for _, what, at in LOG if what == "before"]
    works = [at for _, what, at in LOG if what == "work"]
    assert len(befores) == len(works) == 6
    # Every run began its sleep before any woke: each gave its slot back as it began to wait
    # (a limit of one held through the sleeps would have spaced them half a second apart).
    assert max(befores) < min(works)
    assert ACTIVE["max"] == 1
