"""Crash at every store write, then restart on the same database (CONVENTIONS.md, Tests).

A clean run counts the writes W. Then, for each write N in 1..W, a fresh database is run
with the process "dying" just before or just after write N; a plain runtime reopened on the
same file must finish the run with the clean result, having re-executed at most the one
step that was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import find_crash
from wayline import (
    Cancelled,
    RetryPolicy,
    RunAlreadyFinishedError,
    RunCancelled,
    RunContext,
    RunStatus,
    activity,
    open_runtime,
    workflow,
)
from wayline.persistence import SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

executions: Counter[str] = Counter()


@activity(name="step")
async def step(i: int, acc: int) -> int:
    executions[f"step{i}"] += 1
    return acc * 3 + i


@workflow(name="five")
async def five(ctx: RunContext, seed: int) -> dict[str, Any]:
    acc = seed
    for i in range(5):
        acc = await ctx.run(step, i, acc)
        ctx.vars[f"after{i}"] = acc
    return {"acc": acc, "vars": dict(ctx.vars)}


flaky_failures: Counter[int] = Counter()


@activity(name="flaky", retry=RetryPolicy(max_attempts=3, interval=5.0))
async def flaky(i: int) -> int:
    executions[f"flaky{i}"] += 1
    if flaky_failures[i] < 1:
        flaky_failures[i] += 1
        raise ConnectionError("transient")
    return i


@workflow(name="mixed")
async def mixed(ctx: RunContext) -> list[Any]:
    a = await ctx.run(step, 0, 1)
    await ctx.sleep(60)
    b = await ctx.run(flaky, 1)
    both = await ctx.gather(ctx.run(step, 2, a), ctx.run(step, 3, b))
    return [a, b, both]


WORKFLOWS = [five, mixed]
# case -> (workflow, input, steps that can be in flight at once: the most a crash can lose)
CASES = {"five": (five, 7, 1), "mixed": (mixed, None, 2)}


async def run_once(store: Any, wf: Any, inp: Any) -> Any:
    async with open_runtime(store, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        return await (await rt.start(wf, inp, run_id="the-run")).result()


def reset() -> None:
    executions.clear()
    flaky_failures.clear()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_crash_at_every_write_then_restart_gives_the_clean_result(tmp_path: Path, case: str) -> None:
    wf, inp, in_flight = CASES[case]
    reset()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    clean_result = await run_once(counter, wf, inp)
    clean_counts = Counter(executions)
    writes = counter.writes
    assert writes >= 6  # create + one checkpoint per step + the end, at least

    for n in range(1, writes + 1):
        for when in ("before", "after"):
            reset()
            path = tmp_path / f"crash-{n}-{when}.db"
            faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
            try:
                await run_once(faulty, wf, inp)
            except BaseException as exc:
                if find_crash(exc) is None:
                    raise
            else:
                pytest.fail(f"no crash at write {n} ({when})")
            assert faulty.crashed and faulty.writes == n

            # restart: a plain store on the same file; start again with the same run id
            # (idempotent: if the create had committed, this resumes that run)
            result = await run_once(SQLiteStore(path), wf, inp)
            where = f"crash at write {n} ({when})"
            assert result == clean_result, where
            extra = executions - clean_counts
            missing = clean_counts - executions
            assert not missing, f"{where}: steps never ran: {missing}"
            assert sum(extra.values()) <= in_flight, f"{where}: re-executed {extra}"
            assert max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"


async def test_fault_injecting_store_counts_and_kills(tmp_path: Path) -> None:
    reset()
    store = FaultInjectingStore(SQLiteStore(tmp_path / "x.db"), crash_at=2, when="before")
    with pytest.raises(BaseException) as info:
        await run_once(store, five, 1)
    assert find_crash(info.value) is not None
    assert store.crashed and store.writes == 2
    with pytest.raises(ValueError):
        FaultInjectingStore(SQLiteStore(tmp_path / "y.db"), when="during")  # type: ignore[arg-type]


# --- cancellation is durable too -------------------------------------------------------------


class Probe:
    entered: asyncio.Event


@activity(name="forever")
async def forever() -> None:
    executions["forever"] += 1
    Probe.entered.set()
    await asyncio.Event().wait()


@activity(name="cleanup")
async def cleanup(reason: str | None) -> str:
    executions["cleanup"] += 1
    return f"cleaned after {reason}"


@workflow(name="cancellable")
async def cancellable(ctx: RunContext, mode: str) -> str:
    await ctx.run(step, 0, 1)
    try:
        if mode == "gather":
            await ctx.gather(ctx.run(step, 1, 1), ctx.run(forever))
        else:
            await ctx.run(forever)
    except Cancelled as exc:
        ctx.vars["cleanup"] = await ctx.run(cleanup, exc.reason)
        raise
    return "not cancelled"


async def cancel_scenario(store: Any, mode: str) -> None:
    """Start (or resume) the run, cancel it once it blocks, and expect it to end CANCELLED."""
    Probe.entered = asyncio.Event()
    async with open_runtime(store, workflows=[cancellable], clock=VirtualClock()) as rt:
        handle = await rt.start(cancellable, mode, run_id="c")
        result = asyncio.ensure_future(handle.result())
        entered = asyncio.ensure_future(Probe.entered.wait())
        try:
            await asyncio.wait({result, entered}, return_when=asyncio.FIRST_COMPLETED)
            if not result.done():
                with contextlib.suppress(RunAlreadyFinishedError):
                    await rt.cancel("c", "stop")
            with pytest.raises(RunCancelled):
                await result
        finally:
            for fut in (result, entered):
                fut.cancel()
            await asyncio.gather(result, entered, return_exceptions=True)


@pytest.mark.parametrize("mode", ["step", "gather"])
async def test_crash_at_every_write_of_a_cancelled_run(tmp_path: Path, mode: str) -> None:
    reset()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    await cancel_scenario(counter, mode)
    clean_counts = Counter(executions)
    writes = counter.writes
    expected = {"step0": 1, "forever": 1, "cleanup": 1} | ({"step1": 1} if mode == "gather" else {})
    assert clean_counts == expected
    assert writes >= 5  # create, step, the cancel itself, cleanup, the end

    for n in range(1, writes + 1):
        for when in ("before", "after"):
            reset()
            path = tmp_path / f"cancel-{n}-{when}.db"
            faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
            try:
                await cancel_scenario(faulty, mode)
            except BaseException as exc:
                if find_crash(exc) is None:
                    raise
            else:
                pytest.fail(f"no crash at write {n} ({when})")
            await cancel_scenario(SQLiteStore(path), mode)
            where = f"crash at write {n} ({when})"
            async with open_runtime(path, workflows=[cancellable], clock=VirtualClock()) as rt:
                info = await rt.describe("c")
                kinds = [type(e).__name__ async for e in rt.history("c")]
            assert info.status is RunStatus.CANCELLED, where
            assert info.vars == {"cleanup": "cleaned after stop"}, where
            assert kinds[-1] == "RunCancelled" and kinds.count("RunCancelled") == 1, where
            extra = executions - clean_counts
            assert not (clean_counts - executions), f"{where}: missing {clean_counts - executions}"
            assert sum(extra.values()) <= (2 if mode == "gather" else 1), f"{where}: re-executed {extra}"
            assert max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"
