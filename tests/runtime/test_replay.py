"""Replay after a restart: journaled steps return their results; changed step order is caught."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from _support import find_crash
from wayline import RunContext, RunFailed, RunStatus, activity, open_runtime, workflow
from wayline.errors import NonDeterminismError
from wayline.persistence import SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

ran: Counter[str] = Counter()


@activity(name="a")
async def a() -> str:
    ran["a"] += 1
    return "A"


@activity(name="b")
async def b() -> str:
    ran["b"] += 1
    return "B"


@activity(name="c")
async def c() -> str:
    ran["c"] += 1
    return "C"


def make(name: str, *steps: Any) -> Any:
    @workflow(name=name)
    async def wf(ctx: RunContext) -> list[str]:
        out = []
        for s in steps:
            out.append(await ctx.run(s))
            ctx.vars["done"] = out[:]
        return out

    return wf


V1 = make("flow", a, b)
V2 = make("flow", a, c)


async def crash_run_after_write(path: Path, wf: Any, write: int) -> None:
    """Run ``wf`` on a fresh database, dying right after store write number ``write``."""
    store = FaultInjectingStore(SQLiteStore(path), crash_at=write, when="after")
    try:
        async with open_runtime(store, workflows=[wf], clock=VirtualClock()) as rt:
            await (await rt.start(wf, run_id="r")).result()
    except BaseException as exc:
        if find_crash(exc) is None:
            raise
    else:
        raise AssertionError("the run finished before the simulated crash")


async def test_changed_step_order_fails_the_run_with_non_determinism(tmp_path: Path) -> None:
    ran.clear()
    path = tmp_path / "nd.db"
    # writes: 1 create, 2 after step a, 3 after step b -> crash right after b is journaled
    await crash_run_after_write(path, V1, 3)
    assert ran == {"a": 1, "b": 1}
    async with open_runtime(path, workflows=[V2], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await rt.get_handle("r").result()
        desc = await rt.describe("r")
    assert info.value.error == "NonDeterminismError"
    cause = info.value.cause or ""
    assert "'b'" in cause and "'c'" in cause and "#1" in cause
    assert desc.status is RunStatus.FAILED
    assert ran == {"a": 1, "b": 1}  # c never ran, a was not re-run


async def test_a_step_that_never_completed_is_not_in_the_journal(tmp_path: Path) -> None:
    # Crash right after step a: b was never journaled, so new code may take another path.
    ran.clear()
    path = tmp_path / "nd2.db"
    await crash_run_after_write(path, V1, 2)
    async with open_runtime(path, workflows=[V2], clock=VirtualClock()) as rt:
        assert await rt.get_handle("r").result() == ["A", "C"]
    assert ran["a"] == 1 and ran["c"] == 1


def test_non_determinism_error_names_both_steps() -> None:
    err = NonDeterminismError("r", 1, "b", "c")
    assert (err.run_id, err.index, err.journaled, err.requested) == ("r", 1, "b", "c")
    assert "'b'" in str(err) and "'c'" in str(err)


async def test_journaled_steps_are_not_re_executed_and_vars_are_restored(tmp_path: Path) -> None:
    ran.clear()
    path = tmp_path / "replay.db"
    wf = make("three", a, b, c)
    await crash_run_after_write(path, wf, 3)  # a and b journaled
    async with open_runtime(path, workflows=[wf], clock=VirtualClock()) as rt:
        assert await rt.get_handle("r").result() == ["A", "B", "C"]
        desc = await rt.describe("r")
        kinds = [type(e).__name__ async for e in rt.history("r")]
    assert ran == {"a": 1, "b": 1, "c": 1}
    assert desc.vars == {"done": ["A", "B", "C"]}
    assert "RunResumed" in kinds
    assert kinds.count("StepSucceeded") == 3


async def test_closing_after_a_crash_leaves_no_unretrieved_exceptions(tmp_path: Path) -> None:
    import asyncio
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    gc.collect()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await crash_run_after_write(tmp_path / "u.db", V1, 3)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("exception") for c in reported] == []


def make_gather(name: str, first: Any, second: Any) -> Any:
    @workflow(name=name)
    async def wf(ctx: RunContext) -> list[str]:
        out = await ctx.gather(ctx.run(first), ctx.run(second))
        out.append(await ctx.run(c))
        return out

    return wf


async def test_changed_step_inside_a_gather_is_caught(tmp_path: Path) -> None:
    ran.clear()
    path = tmp_path / "g.db"
    # writes: 1 create, 2 and 3 the two gathered steps; crash right after both are journaled
    await crash_run_after_write(path, make_gather("par", a, b), 3)
    async with open_runtime(path, workflows=[make_gather("par", a, c)], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await rt.get_handle("r").result()
    assert info.value.error == "NonDeterminismError"
    assert "'b'" in (info.value.cause or "") and "'c'" in (info.value.cause or "")


def make_sleepy(name: str, sleep_first: bool) -> Any:
    @workflow(name=name)
    async def wf(ctx: RunContext) -> str:
        await ctx.run(a)
        if sleep_first:
            await ctx.sleep(5)
        else:
            await ctx.run(b)
        return await ctx.run(c)

    return wf


async def test_a_sleep_replaced_by_a_step_is_caught(tmp_path: Path) -> None:
    ran.clear()
    path = tmp_path / "s.db"
    # writes: 1 create, 2 step a, 3 the run blocks on its timer, 4 the timer fired
    await crash_run_after_write(path, make_sleepy("sl", True), 4)
    async with open_runtime(path, workflows=[make_sleepy("sl", False)], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await rt.get_handle("r").result()
    assert info.value.error == "NonDeterminismError"
    assert "wayline.sleep" in (info.value.cause or "") and "'b'" in (info.value.cause or "")


class Point(msgspec.Struct):
    x: int
    y: int


@activity(name="locate")
async def locate() -> Point:
    ran["locate"] += 1
    return Point(1, 2)


@workflow(name="uses_struct")
async def uses_struct(ctx: RunContext) -> list[Any]:
    p = await ctx.run(locate)
    after = await ctx.run(b)
    return [type(p).__name__, p.x + p.y, after]


async def test_a_struct_result_looks_the_same_after_replay(tmp_path: Path) -> None:
    ran.clear()
    async with open_runtime(tmp_path / "clean.db", workflows=[uses_struct], clock=VirtualClock()) as rt:
        clean = await (await rt.start(uses_struct, run_id="r")).result()
    path = tmp_path / "replay.db"
    await crash_run_after_write(path, uses_struct, 2)  # step "locate" journaled, then the crash
    async with open_runtime(path, workflows=[uses_struct], clock=VirtualClock()) as rt:
        assert await rt.get_handle("r").result() == clean


@activity(name="pair")
async def pair():  # type: ignore[no-untyped-def]  # no annotation: plain data both ways
    ran["pair"] += 1
    return (1, 2)


@workflow(name="shapes")
async def shapes(ctx: RunContext, inp) -> list[Any]:  # type: ignore[no-untyped-def]
    got = await ctx.run(pair)
    await ctx.run(b)
    return [type(got).__name__, type(inp).__name__, got == [1, 2]]


async def test_undeclared_results_and_input_have_the_same_shape_live_and_replayed(tmp_path: Path) -> None:
    ran.clear()
    async with open_runtime(tmp_path / "clean.db", workflows=[shapes], clock=VirtualClock()) as rt:
        clean = await (await rt.start(shapes, (3, 4), run_id="r")).result()
    path = tmp_path / "replay.db"
    store = FaultInjectingStore(SQLiteStore(path), crash_at=2, when="after")
    try:
        async with open_runtime(store, workflows=[shapes], clock=VirtualClock()) as rt:
            await (await rt.start(shapes, (3, 4), run_id="r")).result()
    except BaseException as exc:
        if find_crash(exc) is None:
            raise
    async with open_runtime(path, workflows=[shapes], clock=VirtualClock()) as rt:
        replayed = await rt.get_handle("r").result()
    assert replayed == clean
