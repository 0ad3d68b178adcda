"""Durable timers on the virtual clock, and cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from _support import event_types, idle, until
from wayline import (
    Cancelled,
    RunAlreadyFinishedError,
    RunCancelled,
    RunContext,
    RunStatus,
    activity,
    open_runtime,
    workflow,
)
from wayline.persistence import StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

DAY = 86400.0


@activity(name="note")
async def note(x: Any) -> Any:
    return x


@workflow(name="month_sleeper")
async def month_sleeper(ctx: RunContext) -> float:
    t0 = ctx.now()
    await ctx.run(note, "before")
    await ctx.sleep(30 * DAY)
    await ctx.run(note, "after")
    return ctx.now() - t0


async def test_thirty_day_sleep_is_instant_and_exact(db: str) -> None:
    clock = VirtualClock()
    t0 = clock.time()
    started = time.monotonic()
    async with open_runtime(db, workflows=[month_sleeper], clock=clock) as rt:
        slept = await (await rt.start(month_sleeper, run_id="s")).result()
        info = await rt.describe("s")
        events = [e async for e in rt.history("s")]
    assert time.monotonic() - started < 5
    assert slept == pytest.approx(30 * DAY, abs=1e-6)
    assert info.ended_at == pytest.approx(t0 + 30 * DAY, abs=1e-6)
    assert [e.step for e in events if isinstance(e, StepSucceeded)] == ["note", "wayline.sleep", "note"]


async def test_sleep_until_a_datetime(db: str) -> None:
    start = datetime(2030, 5, 1, tzinfo=UTC)
    target = start + timedelta(days=2, hours=3)

    @workflow(name="until")
    async def until(ctx: RunContext) -> float:
        await ctx.sleep_until(target)
        return ctx.now()

    async with open_runtime(db, workflows=[until], clock=VirtualClock(start)) as rt:
        assert await (await rt.start(until, run_id="u")).result() == pytest.approx(target.timestamp(), abs=1e-6)
    with pytest.raises(ValueError, match="timezone-aware"):
        RunContext("r", "w", "1", VirtualClock()).sleep_until(datetime(2030, 1, 1))


async def test_zero_and_negative_sleeps_return_at_once(db: str) -> None:
    @workflow(name="short")
    async def short(ctx: RunContext) -> float:
        t0 = ctx.now()
        await ctx.sleep(0)
        await ctx.sleep(-5)
        return ctx.now() - t0

    async with open_runtime(db, workflows=[short], clock=VirtualClock()) as rt:
        assert await (await rt.start(short, run_id="z")).result() == 0


async def test_a_sleeping_run_is_recorded_as_waiting_on_its_timer(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[month_sleeper], clock=clock) as rt:
        await rt.start(month_sleeper, run_id="s")
        await idle(rt)  # parked on its timer, a month away: the clock stops short of it
        info = await rt.describe("s")
        assert info.status is RunStatus.WAITING
        assert len(info.waiting_for) == 1 and info.waiting_for[0].startswith("timer:")


async def test_a_durable_timer_keeps_its_deadline_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "timer.db"
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    clock = VirtualClock(t0)
    async with open_runtime(path, workflows=[month_sleeper], clock=clock) as rt:
        await rt.start(month_sleeper, run_id="s")
        await idle(rt)  # parked on its timer, and the timer is durable
    # the process comes back 10 days later: 20 days of the 30 are left
    later = VirtualClock(t0 + 10 * DAY)
    async with open_runtime(path, workflows=[month_sleeper], clock=later) as rt:
        await rt.get_handle("s").result()
        info = await rt.describe("s")
    assert info.ended_at == pytest.approx(t0 + 30 * DAY, abs=1e-6)


# --- cancellation ---------------------------------------------------------------------------


class Probe:
    entered: asyncio.Event
    log: ClassVar[list[str]] = []


@pytest.fixture(autouse=True)
def _probe() -> None:
    Probe.entered = asyncio.Event()
    Probe.log = []


@activity(name="forever")
async def forever() -> None:
    Probe.log.append("forever started")
    Probe.entered.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        Probe.log.append("forever cancelled")
        raise


@activity(name="cleanup")
async def cleanup(reason: str | None) -> str:
    Probe.log.append(f"cleanup {reason}")
    return "cleaned"


@workflow(name="compensating")
async def compensating(ctx: RunContext, mode: str) -> str:
    ctx.vars["stage"] = "working"
    try:
        if mode == "step":
            await ctx.run(forever)
        elif mode == "gather":
            await ctx.gather(ctx.run(forever), ctx.run(forever))
        else:
            Probe.entered.set()
            await ctx.sleep(DAY)
    except Cancelled as exc:
        ctx.vars["stage"] = "compensated"
        await ctx.run(cleanup, exc.reason)
        raise
    return "finished"


@workflow(name="plain_cancel")
async def plain_cancel(ctx: RunContext) -> str:
    await ctx.run(forever)
    return "finished"


async def _cancel_when_entered(rt: Any, run_id: str) -> None:
    with anyio.fail_after(5):
        await Probe.entered.wait()  # set as the step starts to wait forever
    await rt.cancel(run_id, "user asked")


@pytest.mark.parametrize("mode", ["step", "gather", "sleep"])
async def test_cancel_runs_the_bodys_cleanup_step_then_ends_cancelled(db: str, mode: str) -> None:
    async with open_runtime(db, workflows=[compensating]) as rt:
        handle = await rt.start(compensating, mode, run_id="c")
        await _cancel_when_entered(rt, "c")
        with anyio.fail_after(2), pytest.raises(RunCancelled) as info:
            await handle.result()
        assert info.value.reason == "user asked"
        desc = await rt.describe("c")
        events = [e async for e in rt.history("c")]
    assert desc.status is RunStatus.CANCELLED
    assert desc.vars == {"stage": "compensated"}
    assert "cleanup user asked" in Probe.log
    if mode != "sleep":
        assert "forever cancelled" in Probe.log
    assert event_types(events)[-1] == "RunCancelled"
    assert [e.step for e in events if isinstance(e, StepSucceeded)][-1] == "cleanup"


async def test_cancel_without_cleanup_cancels_the_running_step(db: str) -> None:
    async with open_runtime(db, workflows=[plain_cancel]) as rt:
        handle = await rt.start(plain_cancel, run_id="p")
        await _cancel_when_entered(rt, "p")
        with anyio.fail_after(5), pytest.raises(RunCancelled) as info:
            await handle.result()
        assert info.value.run_id == "p" and info.value.reason == "user asked"
        desc = await rt.describe("p")
        events = [e async for e in rt.history("p")]
        with pytest.raises(RunAlreadyFinishedError) as again:
            await rt.cancel("p")
    assert again.value.status == "CANCELLED"
    assert desc.status is RunStatus.CANCELLED
    assert desc.error == "Cancelled" and desc.cause == "user asked"
    assert Probe.log == ["forever started", "forever cancelled"]
    assert event_types(events)[-1] == "RunCancelled"


async def test_cancel_a_sleeping_run(db: str) -> None:
    @workflow(name="nap")
    async def nap(ctx: RunContext) -> str:
        Probe.entered.set()
        await ctx.sleep(DAY)
        return "woke"

    async with open_runtime(db, workflows=[nap]) as rt:
        handle = await rt.start(nap, run_id="n")
        await _cancel_when_entered(rt, "n")
        with anyio.fail_after(5), pytest.raises(RunCancelled):
            await handle.result()
        assert (await rt.describe("n")).status is RunStatus.CANCELLED


async def test_cancel_of_a_finished_run_raises(db: str) -> None:
    @workflow(name="quick")
    async def quick(ctx: RunContext) -> int:
        return 1

    async with open_runtime(db, workflows=[quick], clock=VirtualClock()) as rt:
        await (await rt.start(quick, run_id="q")).result()
        with pytest.raises(RunAlreadyFinishedError) as info:
            await rt.cancel("q", "too late")
    assert info.value.run_id == "q" and info.value.status == "SUCCEEDED"


async def test_cancelled_run_stays_cancelled_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with open_runtime(path, workflows=[plain_cancel]) as rt:
        handle = await rt.start(plain_cancel, run_id="p")
        await _cancel_when_entered(rt, "p")
        with anyio.fail_after(5), pytest.raises(RunCancelled):
            await handle.result()
    Probe.log.clear()
    async with open_runtime(path, workflows=[plain_cancel]) as rt:
        with pytest.raises(RunCancelled):
            await rt.get_handle("p").result()
    assert Probe.log == []  # not recovered, not re-run


@workflow(name="swallower")
async def swallower(ctx: RunContext) -> str:
    try:
        await ctx.run(forever)
    except Cancelled:
        pass  # swallowing the cancellation does not un-cancel the run
    return "carried on"


async def test_a_run_that_swallows_its_cancellation_still_ends_cancelled(db: str) -> None:
    async with open_runtime(db, workflows=[swallower]) as rt:
        handle = await rt.start(swallower, run_id="s")
        await _cancel_when_entered(rt, "s")
        with anyio.fail_after(5), pytest.raises(RunCancelled):
            await handle.result()
        info = await rt.describe("s")
    assert info.status is RunStatus.CANCELLED and info.output is None


@workflow(name="napper")
async def napper(ctx: RunContext) -> str:
    try:
        await ctx.sleep(DAY)
    except Cancelled as exc:
        ctx.vars["cleanup"] = await ctx.run(cleanup, exc.reason)
        raise
    return "woke"


async def test_cancel_a_passivated_run(db: str) -> None:
    clock = VirtualClock(autojump=False)  # the timer stays pending: the run sits passivated
    async with open_runtime(db, workflows=[napper], clock=clock, passivate_after=0.0) as rt:
        handle = await rt.start(napper, run_id="p")
        # Parked on its day-long sleep and gone from memory (passivation is due at once).
        await until(lambda: rt.statistics().passivated == 1)
        await rt.cancel("p", "not needed")
        with anyio.fail_after(5), pytest.raises(RunCancelled):
            await handle.result()
        info = await rt.describe("p")
        resumed = [e.reason async for e in rt.history("p") if type(e).__name__ == "RunResumed"]
    assert resumed, "the run was never passivated and reloaded"
    assert info.status is RunStatus.CANCELLED
    assert info.vars == {"cleanup": "cleaned"}
    assert Probe.log == ["cleanup not needed"]
