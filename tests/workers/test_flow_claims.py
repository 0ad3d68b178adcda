"""Flow control and claims of several workers on one PostgreSQL database, each case made to
happen every time with a store standing for another worker (in this process).

- A run admitted to a slot whose start was refused (another worker held the run for a moment:
  its wake of the QUEUED run) stayed QUEUED in the slot until some runtime opened the database
  again: the key had a slot less for good, none with a limit of 1.
- A worker without a run's workflow admitted it (admission serves every queue) and started it:
  the run crashed (workflow not registered) until it was failed. It leaves the run in its slot
  now, for a worker that has the workflow.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from _postgres import pg_stores
from wayline import Concurrency, RunContext, RunStatus, open_runtime, workflow

from ._harness import within

pytestmark = pytest.mark.anyio


@workflow(name="one_by_one", concurrency=Concurrency(1))
async def one_by_one(ctx: RunContext, n: int) -> int:
    return n * 2


async def until_row(url: str, sql: str, *, seconds: float = 30.0) -> None:
    """Once ``sql`` returns a row on the database."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + seconds
        while not await conn.fetch(sql):
            if time.monotonic() > deadline:
                pytest.fail(f"no row within {seconds}s: {sql}")
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_an_admitted_run_whose_start_was_refused_starts_on_a_later_beat(pg_url: str) -> None:
    async with open_runtime(pg_url, workflows=[one_by_one], worker=False) as client:
        await client.start(one_by_one, 21, run_id="r1")  # QUEUED in its queue: no worker yet
    async with pg_stores(pg_url, 1) as (other,):
        await other.register_worker("other")
        assert await other.claim_run("r1") is not None  # another worker holds the run a moment
        async with open_runtime(pg_url, workflows=[one_by_one], worker=True, worker_id="w") as rt:
            # The worker's admission takes the slot; its start is refused (the run is held).
            await until_row(pg_url, "SELECT 1 FROM wayline.flow_slots WHERE run_id = 'r1'")
            assert (await rt.describe("r1")).status is RunStatus.QUEUED
            await other.release_runs(["r1"])  # the other worker is done with it
            done = await within(rt.get_handle("r1").result(), 30, "the admitted run started")
            assert done == 42


@workflow(name="something_else")
async def something_else(ctx: RunContext, n: int) -> int:
    return n


async def test_a_worker_without_the_workflow_leaves_its_admitted_runs_to_one_that_has_it(pg_url: str) -> None:
    async with open_runtime(pg_url, workflows=[one_by_one], worker=False) as client:
        await client.start(one_by_one, 4, run_id="r1")
        async with open_runtime(pg_url, workflows=[something_else], worker=True, worker_id="other") as other:
            await until_row(pg_url, "SELECT 1 FROM wayline.flow_slots WHERE run_id = 'r1'")  # its admission
            await asyncio.sleep(0.5)  # five beats of its poller
            assert (await other.describe("r1")).status is RunStatus.QUEUED
            async with open_runtime(pg_url, workflows=[one_by_one], worker=True, worker_id="w") as rt:
                assert await within(rt.get_handle("r1").result(), 30, "the run, on the worker that has it") == 8
