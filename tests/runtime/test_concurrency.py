"""ctx.gather / ctx.map, concurrency limits, tolerated failures, isolation between runs."""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar

import pytest

from wayline import ActivityError, RetryPolicy, RunContext, RunFailed, RunStatus, activity, open_runtime, workflow
from wayline.persistence import StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


class Load:
    clock: VirtualClock
    running = 0
    peak = 0
    done: ClassVar[list[Any]] = []


@pytest.fixture
def clock() -> VirtualClock:
    Load.clock = VirtualClock()
    Load.running = Load.peak = 0
    Load.done = []
    return Load.clock


@activity(name="work")
async def work(item: Any) -> Any:
    Load.running += 1
    Load.peak = max(Load.peak, Load.running)
    try:
        seconds = item["sleep"] if isinstance(item, dict) else 1.0
        await Load.clock.sleep(seconds)
        if isinstance(item, dict) and item.get("fail"):
            raise RuntimeError(f"item {item['id']} failed")
        Load.done.append(item["id"] if isinstance(item, dict) else item)
        return item["id"] * 10 if isinstance(item, dict) else item * 10
    finally:
        Load.running -= 1


@workflow(name="gatherer")
async def gatherer(ctx: RunContext) -> list[Any]:
    # finishing order is 3, 2, 1 (shortest sleep first); results stay in argument order
    return await ctx.gather(
        ctx.run(work, {"id": 1, "sleep": 3.0}),
        ctx.run(work, {"id": 2, "sleep": 2.0}),
        ctx.run(work, {"id": 3, "sleep": 1.0}),
    )


async def test_gather_runs_concurrently_and_keeps_argument_order(db: str, clock: VirtualClock) -> None:
    t0 = clock.time()
    async with open_runtime(db, workflows=[gatherer], clock=clock) as rt:
        assert await (await rt.start(gatherer, run_id="g")).result() == [10, 20, 30]
        info = await rt.describe("g")
        events = [e async for e in rt.history("g")]
    assert Load.done == [3, 2, 1]
    assert Load.peak == 3
    assert info.ended_at == pytest.approx(t0 + 3.0, abs=1e-6)  # concurrent: 3 s, not 6
    assert info.steps == 3
    assert sorted(e.index for e in events if isinstance(e, StepSucceeded)) == [0, 1, 2]


@workflow(name="mapper")
async def mapper(ctx: RunContext, inp: dict[str, Any]) -> Any:
    kwargs = {k: v for k, v in inp.items() if k != "items"}
    return await ctx.map(work, inp["items"], **kwargs)


@pytest.mark.parametrize(("limit", "expected_time"), [(3, 4.0), (1, 10.0), (None, 1.0)])
async def test_map_respects_max_concurrency(
    db: str, clock: VirtualClock, limit: int | None, expected_time: float
) -> None:
    t0 = clock.time()
    async with open_runtime(db, workflows=[mapper], clock=clock) as rt:
        out = await (await rt.start(mapper, {"items": list(range(10)), "max_concurrency": limit}, run_id="m")).result()
        info = await rt.describe("m")
    assert out == [i * 10 for i in range(10)]
    assert Load.peak == (limit or 10)
    assert info.ended_at == pytest.approx(t0 + expected_time, abs=1e-6)


def items_with_failures(n: int, failing: set[int]) -> list[dict[str, Any]]:
    return [{"id": i, "sleep": 1.0, "fail": i in failing} for i in range(n)]


async def test_map_tolerates_failures_within_the_percentage(db: str, clock: VirtualClock) -> None:
    items = items_with_failures(10, {3, 7})
    async with open_runtime(db, workflows=[mapper], clock=clock) as rt:
        out = await (await rt.start(mapper, {"items": items, "tolerated_failure_percentage": 20}, run_id="m")).result()
    assert [r for i, r in enumerate(out) if i not in (3, 7)] == [i * 10 for i in range(10) if i not in (3, 7)]
    assert out[3] == {"error": "RuntimeError", "cause": "item 3 failed"}
    assert out[7] == {"error": "RuntimeError", "cause": "item 7 failed"}


async def test_map_tolerates_failures_within_the_count(db: str, clock: VirtualClock) -> None:
    items = items_with_failures(4, {0})
    async with open_runtime(db, workflows=[mapper], clock=clock) as rt:
        out = await (await rt.start(mapper, {"items": items, "tolerated_failure_count": 1}, run_id="m")).result()
    assert out[0]["error"] == "RuntimeError" and out[1:] == [10, 20, 30]


async def test_map_fails_beyond_the_tolerance(db: str, clock: VirtualClock) -> None:
    items = items_with_failures(10, {3, 7})
    async with open_runtime(db, workflows=[mapper], clock=clock) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(mapper, {"items": items, "tolerated_failure_percentage": 10}, run_id="m")).result()
    assert info.value.error == "RuntimeError"
    assert "failed" in (info.value.cause or "")


@workflow(name="gather_catch")
async def gather_catch(ctx: RunContext) -> dict[str, Any]:
    try:
        await ctx.gather(ctx.run(work, {"id": 1, "sleep": 1.0}), ctx.run(work, {"id": 2, "sleep": 1.0, "fail": True}))
    except ActivityError as exc:
        return {"step": exc.step, "cause": exc.cause}
    return {}


async def test_gather_failure_raises_activity_error_in_the_body(db: str, clock: VirtualClock) -> None:
    async with open_runtime(db, workflows=[gather_catch], clock=clock) as rt:
        assert await (await rt.start(gather_catch, run_id="gc")).result() == {"step": "work", "cause": "item 2 failed"}


async def test_empty_map_and_gather(db: str, clock: VirtualClock) -> None:
    @workflow(name="empty")
    async def empty(ctx: RunContext) -> Any:
        return [await ctx.map(work, []), await ctx.gather()]

    async with open_runtime(db, workflows=[empty], clock=clock) as rt:
        assert await (await rt.start(empty, run_id="e")).result() == [[], []]


async def test_map_and_gather_argument_validation() -> None:
    ctx = RunContext("r", "wf", "1", VirtualClock())
    with pytest.raises(ValueError, match="max_concurrency"):
        ctx.map(work, [1], max_concurrency=0)
    with pytest.raises(TypeError, match=r"ctx\.run"):
        ctx.gather(work)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs an @activity or a function"):
        ctx.run(42)  # type: ignore[arg-type]


@workflow(name="small_map")
async def small_map(ctx: RunContext) -> list[Any]:
    return await ctx.map(work, list(range(4)))


async def test_runtime_wide_activity_limit(db: str, clock: VirtualClock) -> None:
    async with open_runtime(db, workflows=[small_map], clock=clock, max_concurrent_activities=3) as rt:
        handles = [await rt.start(small_map, run_id=f"r{i}") for i in range(5)]
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [[0, 10, 20, 30]] * 5
    assert Load.peak == 3


# --- isolation ------------------------------------------------------------------------------


@activity(name="jitter")
async def jitter(run_id: str, i: int) -> str:
    for _ in range(random.randrange(4)):
        await asyncio.sleep(0)
    return f"{run_id}:{i}"


@workflow(name="isolated")
async def isolated(ctx: RunContext, n: int) -> dict[str, Any]:
    ctx.vars["me"] = ctx.run_id
    ctx.vars["seen"] = []
    for i in range(n):
        got = await ctx.run(jitter, ctx.run_id, i)
        assert ctx.vars["me"] == ctx.run_id
        ctx.vars["seen"].append(got)
    return dict(ctx.vars)


async def test_concurrent_runs_never_see_each_others_vars(db: str) -> None:
    random.seed(1234)
    n_runs, n_steps = 40, 5
    async with open_runtime(db, workflows=[isolated], clock=VirtualClock()) as rt:
        handles = [await rt.start(isolated, n_steps, run_id=f"run-{i}") for i in range(n_runs)]
        results = await asyncio.gather(*(h.result() for h in handles))
        infos = [await rt.describe(f"run-{i}") for i in range(n_runs)]
    for i, (out, info) in enumerate(zip(results, infos, strict=True)):
        me = f"run-{i}"
        expected = {"me": me, "seen": [f"{me}:{k}" for k in range(n_steps)]}
        assert out == expected
        assert info.vars == expected
        assert info.status is RunStatus.SUCCEEDED


retry_attempts: dict[int, int] = {}


@activity(name="wobbly", retry=RetryPolicy(max_attempts=3, interval=5.0))
async def wobbly(item: int) -> int:
    Load.running += 1
    Load.peak = max(Load.peak, Load.running)
    try:
        retry_attempts[item] = retry_attempts.get(item, 0) + 1
        await Load.clock.sleep(1.0)
        if item % 2 == 0 and retry_attempts[item] == 1:
            raise ConnectionError("first attempt of even items fails")
        return item
    finally:
        Load.running -= 1


@workflow(name="wobbly_map")
async def wobbly_map(ctx: RunContext, n: int) -> list[int]:
    return await ctx.map(wobbly, list(range(n)), max_concurrency=2)


async def test_map_concurrency_limit_holds_across_retries(db: str, clock: VirtualClock) -> None:
    retry_attempts.clear()
    async with open_runtime(db, workflows=[wobbly_map], clock=clock) as rt:
        assert await (await rt.start(wobbly_map, 6, run_id="w")).result() == list(range(6))
    assert Load.peak <= 2
    assert retry_attempts == {0: 2, 1: 1, 2: 2, 3: 1, 4: 2, 5: 1}


@activity(name="solo")
async def solo(i: int) -> int:
    Load.running += 1
    Load.peak = max(Load.peak, Load.running)
    try:
        await Load.clock.sleep(1.0)
        return i
    finally:
        Load.running -= 1


@workflow(name="inline_steps")
async def inline_steps(ctx: RunContext, i: int) -> list[int]:
    return [await ctx.run(solo, i), await ctx.run(solo, i + 1)]


async def test_runtime_wide_limit_applies_to_inline_steps(db: str, clock: VirtualClock) -> None:
    t0 = clock.time()
    async with open_runtime(db, workflows=[inline_steps], clock=clock, max_concurrent_activities=2) as rt:
        handles = [await rt.start(inline_steps, i * 10, run_id=f"r{i}") for i in range(4)]
        assert await asyncio.gather(*(h.result() for h in handles)) == [[i * 10, i * 10 + 1] for i in range(4)]
        ended = max([(await rt.describe(f"r{i}")).ended_at or 0 for i in range(4)])
    assert Load.peak == 2
    assert ended == pytest.approx(t0 + 4.0, abs=1e-6)  # 8 one-second steps, two at a time


late_attempts: list[int] = []


@activity(name="stubborn", timeout=1.0, retry=RetryPolicy(max_attempts=2, interval=1.0))
async def stubborn() -> str:
    late_attempts.append(len(late_attempts) + 1)
    if len(late_attempts) == 1:
        try:
            await Load.clock.sleep(10)
        except asyncio.CancelledError:
            return "late result of the timed-out attempt"  # swallows the cancel: must be ignored
    return "second attempt"


@workflow(name="stubborn_wf")
async def stubborn_wf(ctx: RunContext) -> list[str]:
    return await ctx.gather(ctx.run(stubborn), ctx.run(work, {"id": 1, "sleep": 0.5}))


async def test_a_late_result_of_a_timed_out_attempt_is_ignored(db: str, clock: VirtualClock) -> None:
    late_attempts.clear()
    async with open_runtime(db, workflows=[stubborn_wf], clock=clock) as rt:
        assert await (await rt.start(stubborn_wf, run_id="s")).result() == ["second attempt", 10]
        events = [e async for e in rt.history("s")]
    assert late_attempts == [1, 2]
    failed = [e for e in events if type(e).__name__ == "StepFailed"]
    assert [(e.attempt, e.error) for e in failed] == [(1, "ActivityTimeoutError")]


@activity(name="four_seconds", timeout=5.0)
async def four_seconds(i: int) -> int:
    await Load.clock.sleep(4.0)
    return i


@workflow(name="timed_inline")
async def timed_inline(ctx: RunContext, i: int) -> int:
    return await ctx.run(four_seconds, i)


@workflow(name="timed_map")
async def timed_map(ctx: RunContext) -> list[int]:
    return await ctx.map(four_seconds, [0, 1, 2])


@pytest.mark.parametrize("shape", ["inline", "map"])
async def test_waiting_for_the_activity_limit_does_not_count_toward_the_timeout(
    db: str, clock: VirtualClock, shape: str
) -> None:
    async with open_runtime(db, workflows=[timed_inline, timed_map], clock=clock, max_concurrent_activities=1) as rt:
        if shape == "inline":
            handles = [await rt.start(timed_inline, i, run_id=f"r{i}") for i in range(3)]
            assert await asyncio.gather(*(h.result() for h in handles)) == [0, 1, 2]
        else:
            assert await (await rt.start(timed_map, run_id="m")).result() == [0, 1, 2]
