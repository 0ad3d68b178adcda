"""Eternal runs: ``ctx.continue_as_new`` ends a segment and continues the same run id with a
fresh journal and history; signals not consumed yet carry over."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import RunContext, RunStatus, activity, open_runtime, workflow
from wayline.history import ContinuedAsNew, RunStarted, StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@activity(name="tick")
async def tick(n: int) -> int:
    return n + 1


@workflow(name="counter")
async def counter(ctx: RunContext, state: dict[str, Any]) -> dict[str, Any]:
    n = await ctx.run(tick, state["n"])
    await ctx.sleep(1)
    if n < state["until"]:
        ctx.continue_as_new({"n": n, "until": state["until"]})
    return {"n": n, "segment_input": state}


async def _history(rt: Any, run_id: str) -> list[Any]:
    return [e async for e in rt.history(run_id)]


async def test_a_run_continues_as_new_under_the_same_id_with_a_fresh_history(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[counter], clock=VirtualClock()) as rt:
        out = await (await rt.start(counter, {"n": 0, "until": 5}, run_id="c")).result()
        info = await rt.describe("c")
        events = await _history(rt, "c")
    assert out == {"n": 5, "segment_input": {"n": 4, "until": 5}}
    assert info.status is RunStatus.SUCCEEDED and info.input == {"n": 4, "until": 5}
    # Only the last segment's history: it starts with ContinuedAsNew, not RunStarted.
    assert [type(e) for e in events][:1] == [ContinuedAsNew]
    assert not [e for e in events if isinstance(e, RunStarted)]
    assert [(e.segment, e.input) for e in events if isinstance(e, ContinuedAsNew)] == [(4, {"n": 4, "until": 5})]
    assert [e.result for e in events if isinstance(e, StepSucceeded) and e.step == "tick"] == [5]


@workflow(name="inbox-loop")
async def inbox_loop(ctx: RunContext, seen: list[str]) -> list[str]:
    item = await ctx.wait_signal("item")
    seen = [*seen, item]
    if item != "stop":
        ctx.continue_as_new(seen)
    return seen


async def test_signals_sent_ahead_carry_over_to_the_next_segments(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[inbox_loop], clock=VirtualClock()) as rt:
        handle = await rt.start(inbox_loop, [], run_id="loop")
        for item in ["a", "b", "c", "stop"]:  # all sent before the run takes the first
            await rt.signal("loop", "item", item)
        with anyio.fail_after(10):
            assert await handle.result() == ["a", "b", "c", "stop"]


async def test_a_restart_resumes_the_segment_it_was_in(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[inbox_loop], clock=VirtualClock()) as rt:
        await rt.start(inbox_loop, [], run_id="loop")
        await rt.signal("loop", "item", "a")
        await rt.signal("loop", "item", "b")
        await rt.clock.sleep(1)
    async with open_runtime(db, workflows=[inbox_loop], clock=VirtualClock()) as rt:
        await rt.signal("loop", "item", "stop")
        with anyio.fail_after(10):
            assert await rt.get_handle("loop").result() == ["a", "b", "stop"]
        assert (await rt.describe("loop")).input == ["a", "b"]


async def _history_rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM history").fetchone()[0])


async def test_a_thousand_segments_keep_memory_and_history_flat(tmp_path: Path) -> None:
    # 1,000 iterations here keep the test quick; `python -m benchmarks continue-as-new` runs
    # 100,000 and reports the same figures.
    import tracemalloc

    db = tmp_path / "w.db"
    rows: list[int] = []
    async with open_runtime(db, workflows=[counter], clock=VirtualClock()) as rt:
        handle = await rt.start(counter, {"n": 0, "until": 1000}, run_id="eternal")
        tracemalloc.start()
        try:
            sizes = []
            for _ in range(10):
                await rt.clock.sleep(100)  # 100 segments of one step and a 1 s sleep
                gc.collect()
                sizes.append(tracemalloc.get_traced_memory()[0])
                rows.append(await _history_rows(db))
                assert len(await _history(rt, "eternal")) <= 8
        finally:
            tracemalloc.stop()
        out = await handle.result()
    assert out["n"] == 1000
    assert max(rows) <= 2  # the rows of each segment are written over by the next
    # Flat: the last readings are no higher than the first ones plus a little noise.
    assert max(sizes[5:]) < max(sizes[:5]) + 256 * 1024, sizes
