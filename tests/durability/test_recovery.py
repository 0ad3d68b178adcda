"""Recovery on open: every unfinished run in the database is resumed by a new runtime."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import idle
from wayline import RetryPolicy, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

ran: Counter[str] = Counter()
GATE = {"open": False}


@activity(name="first")
async def first(x: int) -> int:
    ran[f"first{x}"] += 1
    return x


@activity(name="gate")
async def gate(x: int) -> int:
    ran[f"gate{x}"] += 1
    if not GATE["open"]:
        await asyncio.Event().wait()  # the process "dies" while this step is in flight
    return x * 100


@workflow(name="gated")
async def gated(ctx: RunContext, x: int) -> int:
    a = await ctx.run(first, x)
    ctx.vars["a"] = a
    return a + await ctx.run(gate, x)


@workflow(name="sleepy")
async def sleepy(ctx: RunContext) -> str:
    await ctx.run(first, -1)
    await ctx.sleep(3600)
    return "woke"


@activity(name="retrying", retry=RetryPolicy(max_attempts=5, interval=600.0))
async def retrying() -> str:
    ran["retrying"] += 1
    if ran["retrying"] < 2:
        raise ConnectionError("down")
    return "recovered"


@workflow(name="backing_off")
async def backing_off(ctx: RunContext) -> str:
    return await ctx.run(retrying)


@workflow(name="orphan")
async def orphan(ctx: RunContext) -> str:
    await ctx.run(gate, 999)
    return "never"


WORKFLOWS = [gated, sleepy, backing_off]
N = 20


async def wait_until(predicate: Any) -> None:
    """Once ``predicate()`` holds: checked each turn of the event loop (time stands still on
    the test's clock, which never jumps)."""
    with anyio.fail_after(10):
        while not await predicate():  # noqa: ASYNC110 - polls state the runtime owns
            await asyncio.sleep(0)


async def test_every_unfinished_run_is_recovered_and_completed(tmp_path: Path, caplog: Any) -> None:
    ran.clear()
    GATE["open"] = False
    path = tmp_path / "r.db"
    t0 = VirtualClock().time()
    clock = VirtualClock(t0, autojump=False)  # timers stay pending in the first process
    async with open_runtime(path, workflows=[*WORKFLOWS, orphan], clock=clock) as rt:
        for i in range(N):
            await rt.start(gated, i, run_id=f"g{i}")
        await rt.start(sleepy, run_id="s")
        await rt.start(backing_off, run_id="b")
        await rt.start(orphan, run_id="o")

        async def settled() -> bool:
            gates = sum(1 for i in range(N) if ran[f"gate{i}"])
            s, b = await rt.describe("s"), await rt.describe("b")
            return gates == N and ran["gate999"] == 1 and s.status is RunStatus.WAITING and bool(b.waiting_for)

        await wait_until(settled)
        unfinished = await rt.list_runs(status=["RUNNING", "WAITING", "PENDING"])
        assert len(unfinished) == N + 3
    # the process is gone; a new one opens the same file, 10 minutes later
    GATE["open"] = True
    with caplog.at_level(logging.ERROR, logger="wayline"):
        async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock(t0 + 600)) as rt:
            results = [await rt.get_handle(f"g{i}").result() for i in range(N)]
            assert await rt.get_handle("s").result() == "woke"
            assert await rt.get_handle("b").result() == "recovered"
            infos = {i.run_id: i for i in await rt.list_runs()}
    assert results == [i + i * 100 for i in range(N)]
    for i in range(N):
        assert ran[f"first{i}"] == 1  # journaled before the crash: not run again
        assert ran[f"gate{i}"] == 2  # in flight at the crash: run again (at least once)
        assert infos[f"g{i}"].vars == {"a": i}
        assert infos[f"g{i}"].status is RunStatus.SUCCEEDED
    assert ran["first-1"] == 1
    assert ran["retrying"] == 2
    # the timer kept its deadline: t0 + 3600, not restart time + 3600
    assert infos["s"].ended_at == pytest.approx(t0 + 3600, abs=1e-6)
    # a run whose workflow this process does not know is left alone, and said so
    assert infos["o"].status in (RunStatus.RUNNING, RunStatus.WAITING)
    assert any("orphan" in r.getMessage() for r in caplog.records)


async def test_recovered_runs_report_a_resume_in_their_history(tmp_path: Path) -> None:
    ran.clear()
    GATE["open"] = False
    path = tmp_path / "h.db"
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        await rt.start(gated, 1, run_id="g")
        await idle(rt)  # its step runs, and waits at the gate
    GATE["open"] = True
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        assert await rt.get_handle("g").result() == 101
        kinds = [type(e).__name__ async for e in rt.history("g")]
    assert kinds.count("RunResumed") == 1
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunSucceeded"
    assert kinds.count("StepSucceeded") == 2


async def test_recover_false_leaves_unfinished_runs_alone(tmp_path: Path) -> None:
    ran.clear()
    GATE["open"] = False
    path = tmp_path / "nr.db"
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        await rt.start(gated, 3, run_id="g")
        await idle(rt)  # its step runs, and waits at the gate
    GATE["open"] = True
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock(), worker=False) as rt:
        await idle(rt)  # a run it resumed (it must not) would have run its step by now
        info = await rt.describe("g")
        assert info.status is RunStatus.RUNNING
        assert [i.run_id for i in await rt.list_runs(status="RUNNING")] == ["g"]
    assert ran["gate3"] == 1  # nothing was resumed
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        assert await rt.get_handle("g").result() == 303
    assert ran["gate3"] == 2
