"""Retries, backoff on the virtual clock, non-retryable errors, timeouts, compensation."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from _support import event_types
from wayline import ActivityError, RetryPolicy, RunContext, RunFailed, activity, open_runtime, workflow
from wayline.errors import ActivityTimeoutError
from wayline.persistence import StepFailed, StepRetrying, StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


class Flaky:
    """Shared state for the activities below: the clock, attempt times, failures to raise."""

    clock: VirtualClock
    times: ClassVar[list[float]] = []
    fail_times = 0
    error: type[Exception] = ValueError


def _attempt() -> None:
    Flaky.times.append(Flaky.clock.time())
    if len(Flaky.times) <= Flaky.fail_times:
        raise Flaky.error(f"attempt {len(Flaky.times)} failed")


@pytest.fixture
def clock() -> VirtualClock:
    Flaky.clock = VirtualClock()
    Flaky.times = []
    Flaky.fail_times = 0
    Flaky.error = ValueError
    return Flaky.clock


def gaps() -> list[float]:
    return [b - a for a, b in zip(Flaky.times, Flaky.times[1:], strict=False)]


@activity(name="backoff", retry=RetryPolicy(max_attempts=4, interval=2.0, backoff_rate=3.0))
async def backoff_step() -> str:
    _attempt()
    return "done"


@activity(name="capped", retry=RetryPolicy(max_attempts=4, interval=10.0, backoff_rate=10.0, max_delay=50.0))
async def capped_step() -> str:
    _attempt()
    return "done"


@activity(name="jittery", retry=RetryPolicy(max_attempts=10, interval=1.0, backoff_rate=2.0, jitter="full"))
async def jittery_step() -> str:
    _attempt()
    return "done"


@activity(name="picky", retry=RetryPolicy(max_attempts=5, interval=1.0, non_retryable=(KeyError, "PermissionError")))
async def picky_step() -> str:
    _attempt()
    return "done"


def wf_for(step: Any, name: str) -> Any:
    @workflow(name=name)
    async def wf(ctx: RunContext) -> str:
        return await ctx.run(step)

    return wf


backoff_wf = wf_for(backoff_step, "backoff_wf")
capped_wf = wf_for(capped_step, "capped_wf")
jittery_wf = wf_for(jittery_step, "jittery_wf")
picky_wf = wf_for(picky_step, "picky_wf")
ALL = [backoff_wf, capped_wf, jittery_wf, picky_wf]


async def test_retries_until_success_with_exact_exponential_backoff(db: str, clock: VirtualClock) -> None:
    Flaky.fail_times = 3
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        assert await (await rt.start(backoff_wf, run_id="b")).result() == "done"
        events = [e async for e in rt.history("b")]
    assert len(Flaky.times) == 4
    # interval * backoff_rate ** (attempt - 1): 2, 6, 18 seconds of virtual time
    assert gaps() == pytest.approx([2.0, 6.0, 18.0], abs=1e-6)
    retrying = [e for e in events if isinstance(e, StepRetrying)]
    assert [(e.attempt, e.delay) for e in retrying] == [(2, 2.0), (3, 6.0), (4, 18.0)]
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert [(e.attempt, e.error, e.final) for e in failed] == [(n, "ValueError", False) for n in (1, 2, 3)]
    assert failed[0].cause == "attempt 1 failed"
    succeeded = [e for e in events if isinstance(e, StepSucceeded)]
    assert [(e.step, e.attempt, e.result) for e in succeeded] == [("backoff", 4, "done")]
    assert event_types(events) == (
        ["RunStarted"]
        + ["StepStarted", "StepFailed", "StepRetrying"] * 3
        + ["StepStarted", "StepSucceeded", "RunSucceeded"]
    )


async def test_exhausted_retries_fail_the_run_with_the_last_error(db: str, clock: VirtualClock) -> None:
    Flaky.fail_times = 100
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(backoff_wf, run_id="x")).result()
        events = [e async for e in rt.history("x")]
    assert len(Flaky.times) == 4  # max_attempts
    assert info.value.error == "ValueError"
    assert info.value.cause == "attempt 4 failed"
    final = [e for e in events if isinstance(e, StepFailed) and e.final]
    assert len(final) == 1 and final[0].attempt == 4
    assert event_types(events)[-1] == "RunFailed"


async def test_backoff_is_capped_by_max_delay(db: str, clock: VirtualClock) -> None:
    Flaky.fail_times = 3
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        await (await rt.start(capped_wf, run_id="c")).result()
    assert gaps() == pytest.approx([10.0, 50.0, 50.0], abs=1e-6)


async def test_full_jitter_stays_within_bounds_and_is_slept_exactly(db: str, clock: VirtualClock) -> None:
    Flaky.fail_times = 9
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        await (await rt.start(jittery_wf, run_id="j")).result()
        events = [e async for e in rt.history("j")]
    delays = [e.delay for e in events if isinstance(e, StepRetrying)]
    assert len(delays) == 9
    for k, d in enumerate(delays):
        assert 0.0 <= d <= 1.0 * 2.0**k
    assert gaps() == pytest.approx(delays, abs=1e-6)  # the clock slept what was recorded
    assert len(set(delays)) > 1  # drawn, not constant
    assert any(d < 2.0**k for k, d in enumerate(delays))


@pytest.mark.parametrize("error", [KeyError, PermissionError], ids=["by-type", "by-name"])
async def test_non_retryable_errors_fail_at_once(db: str, clock: VirtualClock, error: type[Exception]) -> None:
    Flaky.fail_times = 100
    Flaky.error = error
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(picky_wf, run_id="p")).result()
        events = [e async for e in rt.history("p")]
    assert len(Flaky.times) == 1
    assert info.value.error == error.__name__
    assert not any(isinstance(e, StepRetrying) for e in events)


async def test_retryable_error_of_the_picky_step_is_retried(db: str, clock: VirtualClock) -> None:
    Flaky.fail_times = 2  # ValueError: not in non_retryable
    async with open_runtime(db, workflows=ALL, clock=clock) as rt:
        assert await (await rt.start(picky_wf, run_id="p")).result() == "done"
    assert len(Flaky.times) == 3


# --- timeouts -------------------------------------------------------------------------------

hangs: list[float] = []


@activity(name="hang", timeout=5.0, retry=RetryPolicy(max_attempts=2, interval=1.0))
async def hang() -> None:
    hangs.append(Flaky.clock.time())
    await asyncio.Event().wait()  # never set: only the timeout ends it


@workflow(name="hanging")
async def hanging(ctx: RunContext) -> None:
    await ctx.run(hang)


@workflow(name="hanging_in_gather")
async def hanging_in_gather(ctx: RunContext) -> list[Any]:
    return await ctx.gather(ctx.run(hang), ctx.run(hang))


@pytest.mark.parametrize("wf", [hanging, hanging_in_gather], ids=["inline", "gather"])
async def test_activity_timeout_is_an_error_per_attempt_and_is_retried(db: str, clock: VirtualClock, wf: Any) -> None:
    hangs.clear()
    start = clock.time()
    async with open_runtime(db, workflows=[wf], clock=clock) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(wf, run_id="t")).result()
        events = [e async for e in rt.history("t")]
        ended = (await rt.describe("t")).ended_at
    assert info.value.error == "ActivityTimeoutError"
    assert "5s" in (info.value.cause or "")
    per_step = 2 if wf is hanging_in_gather else 1
    assert len(hangs) == 2 * per_step  # two attempts each
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert {e.error for e in failed} == {"ActivityTimeoutError"}
    assert ended == pytest.approx(start + 5 + 1 + 5, abs=1e-6)  # timeout, backoff, timeout


# --- compensation ---------------------------------------------------------------------------

ledger: list[str] = []


@activity(name="charge", retry=RetryPolicy(max_attempts=2, interval=0.5))
async def charge(amount: int) -> str:
    ledger.append(f"charge {amount}")
    raise ConnectionError("card network down")


@activity(name="release")
async def release(amount: int) -> str:
    ledger.append(f"release {amount}")
    return "released"


@workflow(name="saga")
async def saga(ctx: RunContext, amount: int) -> dict[str, Any]:
    try:
        await ctx.run(charge, amount)
    except ActivityError as exc:
        undo = await ctx.run(release, amount)
        return {"step": exc.step, "error": exc.error, "cause": exc.cause, "attempts": exc.attempts, "undo": undo}
    return {"charged": True}


async def test_activity_error_is_catchable_for_compensation(db: str, clock: VirtualClock) -> None:
    ledger.clear()
    async with open_runtime(db, workflows=[saga], clock=clock) as rt:
        out = await (await rt.start(saga, 7, run_id="s")).result()
    assert out == {
        "step": "charge",
        "error": "ConnectionError",
        "cause": "card network down",
        "attempts": 2,
        "undo": "released",
    }
    assert ledger == ["charge 7", "charge 7", "release 7"]


def test_activity_timeout_error_carries_the_step() -> None:
    err = ActivityTimeoutError("s", 2.5)
    assert (err.step, err.timeout) == ("s", 2.5)
    assert "2.5s" in str(err)


# --- RetryPolicy as data --------------------------------------------------------------------


def test_retry_policy_delays() -> None:
    p = RetryPolicy(max_attempts=5, interval=0.5, backoff_rate=2.0, max_delay=3.0)
    assert [p.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for n in range(1, 6):
        assert 0 <= RetryPolicy(interval=1.0, backoff_rate=2.0, jitter="full").delay(n) <= 2.0 ** (n - 1)


def test_retry_policy_non_retryable_matches_subclasses_and_names() -> None:
    p = RetryPolicy(non_retryable=(LookupError, "ZeroDivisionError"))
    assert not p.retryable(KeyError("k"))  # subclass of LookupError
    assert not p.retryable(ZeroDivisionError())
    assert p.retryable(ValueError())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"interval": -1.0},
        {"backoff_rate": 0.5},
        {"max_delay": -1.0},
        {"jitter": "half"},
    ],
)
def test_retry_policy_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_activity_timeout_must_be_positive() -> None:
    async def fn() -> None: ...

    with pytest.raises(ValueError, match="timeout"):
        activity(timeout=0)(fn)
    with pytest.raises(TypeError, match="needs a function"):
        activity(42)  # type: ignore[call-overload]


# --- an activity raising CancelledError on its own ------------------------------------------


@activity(name="self_cancelling", retry=RetryPolicy(max_attempts=2, interval=1.0))
async def self_cancelling() -> None:
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.cancel)
    await fut


@workflow(name="self_cancel_inline")
async def self_cancel_inline(ctx: RunContext) -> None:
    await ctx.run(self_cancelling)


@workflow(name="self_cancel_gather")
async def self_cancel_gather(ctx: RunContext) -> None:
    await ctx.gather(ctx.run(self_cancelling))


@pytest.mark.parametrize("wf", [self_cancel_inline, self_cancel_gather], ids=["inline", "gather"])
async def test_an_activity_raising_cancelled_error_fails_its_step(db: str, clock: VirtualClock, wf: Any) -> None:
    import anyio

    async with open_runtime(db, workflows=[wf], clock=clock) as rt:
        with anyio.fail_after(1), pytest.raises(RunFailed) as info:
            await (await rt.start(wf, run_id="sc")).result()
    assert info.value.error == "CancelledError"
