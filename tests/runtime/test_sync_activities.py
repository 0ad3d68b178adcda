"""Sync (``def``) activities run in the runtime's bounded worker threads, with the retries,
timeouts and cancellation of async ones; per-call options set at the call site with
``activity.options(...)``."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from typing import Any

import pytest

from _support import until
from wayline import (
    RetryPolicy,
    RunCancelled,
    RunContext,
    RunFailed,
    activity,
    open_runtime,
    step_info,
    workflow,
)
from wayline.errors import InvalidArgumentError
from wayline.history import StepStarted, StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

calls: Counter[str] = Counter()


@activity(name="blocking_add")
def blocking_add(a: int, b: int) -> dict[str, Any]:
    info = step_info()
    return {"sum": a + b, "thread": threading.current_thread().name, "step": info.step, "attempt": info.attempt}


@activity(name="flaky", retry=RetryPolicy(max_attempts=3, interval=2.0))
def flaky(key: str) -> str:
    calls[key] += 1
    if calls[key] < 3:
        raise ConnectionError(f"attempt {calls[key]} of {key} failed")
    return f"{key} after {calls[key]}"


release = threading.Event()


@activity(name="stuck", timeout=5.0)
def stuck() -> str:
    calls["stuck"] += 1
    release.wait(30)  # a blocking call that does not return in time
    return "late"


@workflow(name="adds")
async def adds(ctx: RunContext, n: int) -> Any:
    return await ctx.run(blocking_add, n, 1)


@workflow(name="retries")
async def retries(ctx: RunContext, key: str) -> str:
    return await ctx.run(flaky, key)


@workflow(name="times_out")
async def times_out(ctx: RunContext) -> str:
    return await ctx.run(stuck)


async def test_a_def_activity_runs_in_a_worker_thread_and_is_journaled(db: str) -> None:
    async with open_runtime(db, workflows=[adds]) as rt:
        out = await (await rt.start(adds, 41, run_id="a")).result()
        events = [e async for e in rt.history("a")]
    assert out["sum"] == 42 and out["step"] == "blocking_add" and out["attempt"] == 1
    assert out["thread"].startswith("wayline-activity") and out["thread"] != threading.current_thread().name
    assert [type(e).__name__ for e in events if isinstance(e, StepStarted | StepSucceeded)] == [
        "StepStarted",
        "StepSucceeded",
    ]


async def test_a_def_activity_is_retried_like_an_async_one(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[retries], clock=clock) as rt:
        t0 = clock.time()
        key = f"k-{uuid.uuid4().hex}"
        assert await (await rt.start(retries, key)).result() == f"{key} after 3"
        assert clock.time() - t0 == pytest.approx(2.0 + 4.0)  # the policy's backoff, virtual
    assert calls[key] == 3


async def test_a_def_activity_times_out_and_the_run_goes_on_without_it(db: str) -> None:
    release.clear()
    calls["stuck"] = 0
    try:
        async with open_runtime(db, workflows=[times_out], clock=VirtualClock()) as rt:
            with pytest.raises(RunFailed) as info:
                await (await rt.start(times_out, run_id="t")).result()
        assert info.value.error == "ActivityTimeoutError"
        assert calls["stuck"] == 1
    finally:
        release.set()  # the thread, which cannot be interrupted, ends now


@workflow(name="cancellable")
async def cancellable(ctx: RunContext) -> str:
    return await ctx.run(activity(name="wait_for_release")(lambda: release.wait(30)))


async def test_cancelling_a_run_in_a_def_activity_ends_the_run_at_once(tmp_path: Any) -> None:
    release.clear()
    try:
        async with open_runtime(tmp_path / "c.db", workflows=[cancellable]) as rt:
            handle = await rt.start(cancellable, run_id="c")
            await until(lambda: len([t for t in threading.enumerate() if t.name.startswith("wayline-activity")]) > 0)
            await rt.cancel("c", reason="no longer needed")
            with pytest.raises(RunCancelled):
                await handle.result()
            assert not release.is_set()  # the run ended while the thread still blocked
    finally:
        release.set()


gate = threading.Event()
busy = {"now": 0, "most": 0}
busy_lock = threading.Lock()


@activity(name="hold")
def hold(i: int) -> int:
    with busy_lock:
        busy["now"] += 1
        busy["most"] = max(busy["most"], busy["now"])
    gate.wait(30)
    with busy_lock:
        busy["now"] -= 1
    return i * 10


@workflow(name="fan")
async def fan(ctx: RunContext, n: int) -> list[Any]:
    return await ctx.map(hold, range(n))


async def test_the_worker_threads_are_bounded_by_activity_threads(tmp_path: Any) -> None:
    gate.clear()
    busy.update(now=0, most=0)
    try:
        async with open_runtime(tmp_path / "f.db", workflows=[fan], activity_threads=2) as rt:
            handle = await rt.start(fan, 6)
            await until(lambda: busy["now"] == 2)
            await asyncio.sleep(0)  # let the loop try to start more: there is no thread for them
            assert busy["now"] == 2
            gate.set()
            assert await handle.result() == [0, 10, 20, 30, 40, 50]
        assert busy["most"] == 2
    finally:
        gate.set()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
async def test_activity_threads_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="activity_threads"):
        async with open_runtime(":memory:", activity_threads=bad):
            pass


# --- per-call options ---------------------------------------------------------------------------


@activity(name="charge")
async def charge(
    amount: float,
    *,
    timeout: int = 0,  # noqa: ASYNC109 - the point: an argument of the activity's own called timeout
    name: str = "",
    retry: str = "",
) -> dict[str, Any]:
    calls["charge"] += 1
    if calls["charge"] == 1:
        raise ConnectionError("the gateway dropped the call")
    return {"amount": amount, "timeout": timeout, "name": name, "retry": retry, "step": step_info().step}


@workflow(name="pays")
async def pays(ctx: RunContext, amount: float) -> Any:
    quick = charge.options(retry=RetryPolicy(max_attempts=2, interval=1.0), timeout=30, name="charge-eu")
    # The activity's own arguments called timeout, name and retry go to the activity.
    return await ctx.run(quick, amount, timeout=7, name="card", retry="own")


async def test_options_at_the_call_site_do_not_clash_with_the_activity_arguments(db: str) -> None:
    calls["charge"] = 0
    async with open_runtime(db, workflows=[pays], clock=VirtualClock()) as rt:
        out = await (await rt.start(pays, 9.5, run_id="p")).result()
        steps = [e.step for e in [e async for e in rt.history("p")] if isinstance(e, StepStarted)]
    # Retried by the call's policy (the decorator's would not retry), named by the call.
    assert out == {"amount": 9.5, "timeout": 7, "name": "card", "retry": "own", "step": "charge-eu"}
    assert calls["charge"] == 2 and steps == ["charge-eu", "charge-eu"]
    # The activity itself keeps its own settings.
    assert (charge.name, charge.retry.max_attempts, charge.timeout) == ("charge", 1, None)


@activity(name="slow", timeout=None)
async def slow() -> str:
    await asyncio.Event().wait()
    return "never"


@workflow(name="bounded")
async def bounded(ctx: RunContext) -> str:
    return await ctx.run(slow.options(timeout=3))


async def test_a_timeout_given_at_the_call_site_applies(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[bounded], clock=clock) as rt:
        t0 = clock.time()
        with pytest.raises(RunFailed) as info:
            await (await rt.start(bounded)).result()
        assert clock.time() - t0 == pytest.approx(3.0)
    assert info.value.error == "ActivityTimeoutError"


@pytest.mark.parametrize(
    ("options", "argument"),
    [({"retry": 3}, "retry"), ({"timeout": 0}, "timeout"), ({"timeout": "5"}, "timeout"), ({"name": ""}, "name")],
)
def test_bad_options_are_refused(options: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        charge.options(**options)
    assert info.value.argument == argument
