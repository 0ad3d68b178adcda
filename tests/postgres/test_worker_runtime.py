"""Several workers and clients on one PostgreSQL database, as runtimes in one process (the
real-process versions, with SIGKILL and SIGSTOP, are in tests/workers).

Each runtime has its own store, so its own connections, registration and leases: to the
database, two runtimes here are two worker processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import asyncpg
import pytest

from wayline import RunContext, RunStatus, activity, open_runtime, workflow
from wayline._errors import InvalidArgumentError

pytestmark = pytest.mark.anyio


@workflow(name="waiter")
async def waiter(ctx: RunContext) -> str:
    return str(await ctx.wait_signal("go", timeout=600))


@workflow(name="slow_steps")
async def slow_steps(ctx: RunContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(pause, i)
    return total


@activity(name="pause")
async def pause(i: int) -> int:
    await asyncio.sleep(0.05)
    return i


async def owners(url: str) -> Counter[str | None]:
    conn = await asyncpg.connect(url)
    try:
        return Counter(row[0] for row in await conn.fetch("SELECT owner FROM wayline.runs WHERE status <> 'SUCCEEDED'"))
    finally:
        await conn.close()


async def test_a_clients_runs_are_executed_by_the_workers_and_not_by_it(pg_url: str) -> None:
    async with (
        open_runtime(pg_url, workflows=[slow_steps], worker_id="a") as a,
        open_runtime(pg_url, workflows=[slow_steps], worker_id="b") as b,
        open_runtime(pg_url, workflows=[slow_steps], worker=False) as client,
    ):
        handles = [await client.start(slow_steps, 3, run_id=f"r{i}") for i in range(20)]
        assert client.statistics().live_runs == 0  # nothing of them runs in the client
        assert [await h.result() for h in handles] == [3] * 20  # read from the database
        assert {w.worker_id for w in await client.store.list_workers()} == {"a", "b"}
        assert client.worker_id is None and (a.worker_id, b.worker_id) == ("a", "b")


async def test_a_worker_at_max_runs_leaves_new_runs_to_the_others(pg_url: str) -> None:
    async with (
        open_runtime(pg_url, workflows=[slow_steps], worker_id="small", max_runs=2) as small,
        open_runtime(pg_url, workflows=[slow_steps], worker_id="big") as big,
    ):
        handles = [await small.start(slow_steps, 40, run_id=f"m{i}") for i in range(6)]
        for _ in range(100):  # the four beyond the limit are claimed by `big`'s sweep (twice a second)
            held = await owners(pg_url)
            if held["big"] >= 4:
                break
            await asyncio.sleep(0.05)
        assert held["small"] <= 2 and held["big"] >= 4, held
        assert small.statistics().live_runs <= 2
        assert [await h.result() for h in handles] == [sum(range(40))] * 6
    assert big is not None


async def test_a_worker_that_lost_its_lease_drops_the_run_and_the_new_owner_finishes_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_runtime(pg_url, workflows=[slow_steps], worker_id="stale", lease_seconds=30) as stale:
        handle = await stale.start(slow_steps, 30, run_id="f")
        await asyncio.sleep(0.2)  # a few steps committed by `stale`
        # What a worker paused past its lease looks like to the others: its lease is over.
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "UPDATE wayline.workers SET lease_until = now() - interval '1 second' WHERE id = 'stale'"
            )
        finally:
            await conn.close()
        with caplog.at_level(logging.ERROR, logger="wayline"):
            async with open_runtime(pg_url, workflows=[slow_steps], worker_id="fresh") as fresh:
                assert await fresh.get_handle("f").result() == sum(range(30))
                for _ in range(100):  # its next checkpoint is refused: the run leaves `stale`
                    if "f" not in stale._runs._refs:
                        break
                    await asyncio.sleep(0.05)
                assert "f" not in stale._runs._refs
        assert "run f dropped from this worker" in caplog.text and "lost its lease" in caplog.text
        assert await handle.result() == sum(range(30))  # the stale worker reads the end from the database


async def test_a_stopped_workers_runs_are_taken_over_by_the_sweep(pg_url: str) -> None:
    first = open_runtime(pg_url, workflows=[slow_steps], worker_id="first")
    rt = await first.__aenter__()
    handles = [await rt.start(slow_steps, 20, run_id=f"s{i}") for i in range(5)]
    async with open_runtime(pg_url, workflows=[slow_steps], worker_id="second") as second:
        await first.__aexit__(None, None, None)  # unregisters: its runs are unowned at once
        assert [await second.get_handle(h.run_id).result() for h in handles] == [sum(range(20))] * 5
        assert second.statistics().live_runs == 0


async def test_a_signal_from_any_worker_reaches_the_run_where_it_runs(pg_url: str) -> None:
    async with (
        open_runtime(pg_url, workflows=[waiter], worker_id="a") as a,
        open_runtime(pg_url, workflows=[waiter], worker_id="b") as b,
    ):
        handle = await a.start(waiter, run_id="sig")
        for _ in range(100):
            if (await a.describe("sig")).status is RunStatus.WAITING:
                break
            await asyncio.sleep(0.02)
        await b.signal("sig", "go", "hi")  # `b` does not hold it: committed, then notified
        assert await handle.result() == "hi"
        assert "sig" not in b._runs._refs


async def test_bad_max_runs_and_lease_seconds_are_refused_and_recover_is_deprecated() -> None:
    with pytest.raises(InvalidArgumentError, match="max_runs"):
        async with open_runtime(":memory:", max_runs=0):
            pass
    with pytest.raises(InvalidArgumentError, match="lease_seconds"):
        async with open_runtime(":memory:", lease_seconds=0):
            pass
    with pytest.warns(DeprecationWarning, match="worker="):
        async with open_runtime(":memory:", recover=False) as rt:
            assert rt.worker_id is None


ticks: list[str] = []


@activity(name="tick_once")
async def tick_once(run_id: str) -> None:
    ticks.append(run_id)


@workflow(name="ticker")
async def ticker(ctx: RunContext) -> None:
    await ctx.run(tick_once, ctx.run_id)


async def test_two_workers_fire_each_schedule_fire_once_and_run_it_once(pg_url: str) -> None:
    """Both workers run the scheduler on one database: every fire starts one run (its id is
    the fire's), and that run's step runs on one worker only."""
    ticks.clear()
    async with (
        open_runtime(pg_url, workflows=[ticker], worker_id="a") as a,
        open_runtime(pg_url, workflows=[ticker], worker_id="b") as b,
    ):
        await a.create_schedule("every-second", ticker, every=1)
        for _ in range(200):  # about four fires
            if len(set(ticks)) >= 4:
                break
            await asyncio.sleep(0.05)
        runs = [r.run_id for r in await b.list_runs(workflow="ticker")]
    assert len(set(ticks)) >= 4, ticks
    assert sorted(ticks) == sorted(set(ticks)), "a fire's run ran its step twice"
    assert set(ticks) <= set(runs) and all(r.startswith("every-second@") for r in runs)
