"""wayline.testing: the virtual clock and the fault-injecting store users test with."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from _support import find_crash
from wayline.persistence import MemoryStore, RunRecord, RunStatus
from wayline.testing import FaultInjectingStore, SimulatedCrash, VirtualClock

pytestmark = pytest.mark.anyio


def test_virtual_clock_starts_at_a_fixed_time() -> None:
    assert VirtualClock().time() == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert VirtualClock(123.0).time() == 123.0
    assert VirtualClock(datetime(2030, 1, 1, tzinfo=UTC)).time() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2030, 1, 1))


def test_advance_fires_due_timers_in_order_and_skips_cancelled_ones() -> None:
    clock = VirtualClock(0.0, autojump=False)
    fired: list[str] = []
    clock.call_at(5.0, lambda: fired.append("b"))
    clock.call_at(1.0, lambda: fired.append("a"))
    cancelled = clock.call_at(3.0, lambda: fired.append("never"))
    clock.call_at(10.0, lambda: fired.append("c"))
    cancelled.cancel()
    assert clock.pending_timers == 3
    clock.advance(5.0)
    assert fired == ["a", "b"]
    assert clock.time() == 5.0
    assert clock.pending_timers == 1
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_autojump_makes_long_sleeps_instant_and_exact() -> None:
    clock = VirtualClock(0.0)
    driver = asyncio.ensure_future(clock.drive(lambda: True))
    try:
        order: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            order.append((name, clock.time()))

        await asyncio.wait_for(
            asyncio.gather(sleeper("month", 30 * 86400), sleeper("hour", 3600), sleeper("now", 0)), timeout=5
        )
        assert order == [("now", 0.0), ("hour", 3600.0), ("month", 30 * 86400.0)]
    finally:
        driver.cancel()
        await asyncio.gather(driver, return_exceptions=True)


async def test_autojump_waits_while_io_is_in_flight() -> None:
    clock = VirtualClock(0.0)
    busy = {"io": True}
    driver = asyncio.ensure_future(clock.drive(lambda: not busy["io"]))
    try:
        woke = asyncio.ensure_future(clock.sleep(60))
        for _ in range(100):  # the driver looks at the clock's timers on each turn of the loop
            await asyncio.sleep(0)
        assert not woke.done() and clock.time() == 0.0  # "I/O" in flight: time stands still
        busy["io"] = False
        await asyncio.wait_for(woke, timeout=5)
        assert clock.time() == 60.0
    finally:
        driver.cancel()
        await asyncio.gather(driver, return_exceptions=True)


def rec(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, workflow="wf", status=RunStatus.RUNNING)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_fault_injecting_store_crashes_at_the_chosen_write(when: str) -> None:
    inner = MemoryStore()
    store = FaultInjectingStore(inner, crash_at=2, when=when)  # type: ignore[arg-type]
    await store.start()
    await store.create_run(rec("a"), [])
    with pytest.raises(SimulatedCrash):
        await store.create_run(rec("b"), [])
    assert store.crashed and store.writes == 2
    # "before": the write never landed; "after": it did, and the caller never heard
    assert (await inner.get_run("b") is not None) == (when == "after")
    with pytest.raises(SimulatedCrash):  # a dead process does nothing more
        await store.get_run("a")
    with pytest.raises(SimulatedCrash):
        await store.checkpoint(rec("a"), [])
    await store.close()


async def test_fault_injecting_store_without_crash_counts_writes() -> None:
    store = FaultInjectingStore(MemoryStore())
    await store.start()
    for i in range(3):
        await store.create_run(rec(f"r{i}"), [])
    await store.checkpoint(rec("r0"), [])
    await store.get_run("r0")
    assert store.writes == 4 and not store.crashed
    await store.close()


def test_simulated_crash_is_not_an_exception() -> None:
    assert issubclass(SimulatedCrash, BaseException) and not issubclass(SimulatedCrash, Exception)


async def test_simulated_crash_unwinds_open_runtime(tmp_path: Path) -> None:
    from wayline import RunContext, activity, open_runtime, workflow
    from wayline.persistence import SQLiteStore

    @activity(name="x")
    async def x() -> int:
        return 1

    @workflow(name="w")
    async def w(ctx: RunContext) -> int:
        return await ctx.run(x)

    store = FaultInjectingStore(SQLiteStore(tmp_path / "c.db"), crash_at=2)
    with pytest.raises(BaseException) as info:
        async with open_runtime(store, workflows=[w], clock=VirtualClock()) as rt:
            await (await rt.start(w, run_id="r")).result()
    assert find_crash(info.value) is not None


async def test_crash_after_a_write_fires_even_when_writes_overlap() -> None:
    inner = MemoryStore()
    store = FaultInjectingStore(inner, crash_at=1, when="after")
    await store.start()
    await inner.create_run(rec("a"), [])
    await inner.create_run(rec("b"), [])
    first = asyncio.ensure_future(store.checkpoint(rec("a"), []))
    second = asyncio.ensure_future(store.checkpoint(rec("b"), []))  # starts before #1 completes
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], SimulatedCrash), results
    assert store.crashed
