"""Recovery in waves: a restart loads unfinished runs a bounded number at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from _support import parked
from wayline import RunContext, open_runtime, workflow
from wayline.persistence import MemoryStore
from wayline.runtime import _runs

pytestmark = pytest.mark.anyio


@workflow(name="parked_for_go")
async def parked_for_go(ctx: RunContext, n: int) -> int:
    return n + await ctx.wait_signal("go")


class CountingStore:
    """The memory store, counting how many runs read their inbox at once (a recovered run's
    first read), with a yield inside each read so that reads can overlap."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.reading = 0
        self.peak = 0
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_inbox(self, run_id: str) -> Any:
        self.reading += 1
        self.reads += 1
        self.peak = max(self.peak, self.reading)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return await self.inner.get_inbox(run_id)
        finally:
            self.reading -= 1

    async def close(self) -> None:
        return None  # kept open for the next runtime: the "restart"


async def test_unfinished_runs_are_recovered_a_wave_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runs, "RECOVERY_WAVE", 4)
    store = CountingStore()
    n = 11  # two full waves and a partial one
    async with open_runtime(store, workflows=[parked_for_go]) as rt:
        for i in range(n):
            await rt.start(parked_for_go, i, run_id=f"p{i}")
        await rt.signal("p0", "go", 100)  # one finishes before the restart: not recovered
        assert await rt.get_handle("p0").result() == 100
    store.peak = store.reads = 0
    async with open_runtime(store, workflows=[parked_for_go]) as rt:
        for i in range(1, n):
            await rt.signal(f"p{i}", "go", 1000)
        assert [await rt.get_handle(f"p{i}").result() for i in range(1, n)] == [1000 + i for i in range(1, n)]
    assert store.reads == n - 1  # every unfinished run was recovered, once
    assert 2 <= store.peak <= 4  # loads overlapped, but never more than one wave at once


@workflow(name="wave_child")
async def wave_child(ctx: RunContext, _: None) -> str:
    return await ctx.wait_signal("go")


@workflow(name="wave_parent")
async def wave_parent(ctx: RunContext, _: None) -> str:
    await ctx.wait_signal("make")
    child = await ctx.start_workflow(wave_child, run_id="z-child")
    await ctx.wait_signal("send")
    await child.signal("go", "went")
    return await child.result()


class SlowLoads(CountingStore):
    """A recovered run's first read takes a few turns of the loop (as a real store's thread
    hand-off does), so a wave takes a while and work that runs meanwhile gets ahead of it."""

    async def get_inbox(self, run_id: str) -> Any:
        for _ in range(20):
            await asyncio.sleep(0)
        return await super().get_inbox(run_id)


async def test_a_message_to_a_run_of_a_later_wave_is_neither_lost_nor_applied_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run of the first wave messages a run whose wave has not been spawned yet: the message
    # loads that run at once (from its current record), and its wave must then leave it alone:
    # spawning it again from the record listed before the message came would run it twice,
    # the second time from a stale snapshot whose inbox message the first has already applied.
    monkeypatch.setattr(_runs, "RECOVERY_WAVE", 1)
    store = SlowLoads()
    fillers = [f"m-filler-{i:02}" for i in range(30)]  # waves between the parent and its child
    flows = [wave_parent, wave_child, parked_for_go]
    async with open_runtime(store, workflows=flows) as rt:
        await rt.start(wave_parent, run_id="a-parent")
        for i, run_id in enumerate(fillers):
            await rt.start(parked_for_go, i, run_id=run_id)
        await rt.signal("a-parent", "make")
        await parked(rt, runs=len(fillers) + 2)  # the child exists and waits for "go"
    # Listed oldest first: the parent, the fillers, then the child. The parent's "send" is in
    # its inbox at the restart, so the parent signals the child during the first wave.
    async with open_runtime(store, workflows=flows, worker=False) as client:
        await client.signal("a-parent", "send")
    async with open_runtime(store, workflows=flows) as rt:
        assert await rt.get_handle("a-parent").result() == "went"
        assert await rt.get_handle("z-child").result() == "went"
        for run_id in fillers:
            await rt.signal(run_id, "go", 1000)
        assert [await rt.get_handle(run_id).result() for run_id in fillers] == [1000 + i for i in range(30)]
        kinds = [type(ev).__name__ async for ev in rt.history("z-child")]
        assert kinds.count("RunSucceeded") == 1, kinds  # the child ran to its end once
        assert kinds.count("SignalReceived") == 1, kinds  # and took its "go" once
        assert rt.statistics().live_runs == 0
    async with open_runtime(store, workflows=flows) as rt:  # nothing left to recover
        assert rt.statistics().live_runs == 0
        assert (await rt.describe("z-child")).status.value == "SUCCEEDED"
        assert (await rt.describe("a-parent")).status.value == "SUCCEEDED"
