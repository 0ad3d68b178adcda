"""A family of runs through a crash at every store write: the restarted parent re-attaches to
its child, never starts a second one, and ends with the clean result (CONVENTIONS.md, Tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import crashed_at_every_write
from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

executions: Counter[str] = Counter()


@activity(name="count")
async def count(what: str, n: int) -> int:
    executions[what] += 1
    return n + 1


@workflow(name="kid")
async def kid(ctx: RunContext, n: int) -> int:
    n = await ctx.run(count, f"a:{ctx.run_id}", n)
    await ctx.sleep(30)
    return await ctx.run(count, f"b:{ctx.run_id}", n)


@workflow(name="mom")
async def mom(ctx: RunContext, n: int) -> dict[str, Any]:
    n = await ctx.run(count, "mom-a", n)
    first = await ctx.start_workflow(kid, n, run_id="the-run/kid")
    other = await ctx.run_workflow(kid, 100)  # the default id: "the-run/<position>"
    mine = await first.result()
    return {"mine": mine, "other": other, "last": await ctx.run(count, "mom-b", mine)}


async def run_once(store: Any) -> Any:
    async with open_runtime(store, workflows=[mom, kid], clock=VirtualClock()) as rt:
        return await (await rt.start(mom, 1, run_id="the-run")).result()


async def kids_in(path: Path) -> list[str]:
    store = SQLiteStore(path)
    await store.start()
    try:
        return sorted(r.run_id for r in await store.list_runs() if r.workflow == "kid")
    finally:
        await store.close()


async def test_a_parent_and_its_children_through_a_crash_at_every_write(tmp_path: Path) -> None:
    executions.clear()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    clean = await run_once(counter)
    clean_counts = Counter(executions)
    assert clean == {"mine": 4, "other": 102, "last": 5}
    assert await kids_in(tmp_path / "clean.db") == ["the-run/2", "the-run/kid"]
    assert counter.writes >= 12
    async for path, where in crashed_at_every_write(tmp_path, counter.writes, run_once, reset=executions.clear):
        assert await run_once(SQLiteStore(path)) == clean, where
        assert await kids_in(path) == ["the-run/2", "the-run/kid"], where  # never a second child
        missing = clean_counts - executions
        extra = executions - clean_counts
        assert not missing, f"{where}: steps never ran: {missing}"
        # Two children run beside their parent: at most one step of each in flight.
        assert max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"


@workflow(name="looper")
async def looper(ctx: RunContext, state: dict[str, Any]) -> dict[str, Any]:
    n = await ctx.run(count, f"loop:{state['n']}", state["n"])
    if n < 4:
        ctx.continue_as_new({"n": n, "sum": state["sum"] + n})
    return {"n": n, "sum": state["sum"] + n}


async def test_continue_as_new_through_a_crash_at_every_write(tmp_path: Path) -> None:
    async def once(store: Any) -> Any:
        async with open_runtime(store, workflows=[looper], clock=VirtualClock()) as rt:
            return await (await rt.start(looper, {"n": 0, "sum": 0}, run_id="loop")).result()

    executions.clear()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    clean = await once(counter)
    assert clean == {"n": 4, "sum": 10}
    assert dict(executions) == {"loop:0": 1, "loop:1": 1, "loop:2": 1, "loop:3": 1}
    async for path, where in crashed_at_every_write(tmp_path, counter.writes, once, reset=executions.clear):
        assert await once(SQLiteStore(path)) == clean, where
        assert set(executions) == {"loop:0", "loop:1", "loop:2", "loop:3"}, where
        assert max(executions.values()) <= 2, f"{where}: re-executed {executions}"
