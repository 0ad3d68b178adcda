"""Recovery in waves: a restart loads unfinished runs a bounded number at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
