"""Passivation: waiting runs leave memory and come back on their timer or a message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wayline import RunCancelled, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.persistence import InboxMessage, SQLiteStore
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

DAY = 86400.0


@activity(name="note")
async def note(x: str) -> str:
    return x


@workflow(name="sleeper")
async def sleeper(ctx: RunContext) -> str:
    ctx.vars["phase"] = "sleeping"
    await ctx.sleep(30 * DAY)
    return await ctx.run(note, "woke")


@workflow(name="waiter")
async def waiter(ctx: RunContext) -> str:
    got: str = await ctx.wait_signal("go")
    return got


async def test_waiting_runs_leave_memory_and_come_back(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[sleeper, waiter], clock=clock, passivate_after=60) as rt:
        t0 = clock.time()
        sleeping = await rt.start(sleeper, run_id="s")
        signalled = await rt.start(waiter, run_id="w")
        cancelled = await rt.start(waiter, run_id="c")
        await clock.sleep(120)
        assert rt.statistics().live_runs == 0  # every run waits: none is in memory
        info = await rt.describe("s")
        assert info.status is RunStatus.WAITING and info.waiting_for == ("timer:sleep:0",)
        assert info.vars == {"phase": "sleeping"}
        await rt.signal("w", "go", "hello")  # a message reloads its run
        assert await signalled.result() == "hello"
        await rt.cancel("c", "bye")
        with pytest.raises(RunCancelled):
            await cancelled.result()
        assert await sleeping.result() == "woke"  # its timer reloads it, on time
        assert (await rt.describe("s")).ended_at == pytest.approx(t0 + 30 * DAY)


async def test_a_restart_leaves_waiting_runs_in_the_store_until_they_are_due(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    clock = VirtualClock()
    async with open_runtime(path, workflows=[sleeper, waiter], clock=clock, passivate_after=60) as rt:
        t0 = clock.time()
        await rt.start(sleeper, run_id="s")
        await rt.start(waiter, run_id="w")
        await clock.sleep(120)
    later = VirtualClock(clock.time() + DAY)
    async with open_runtime(path, workflows=[sleeper, waiter], clock=later, passivate_after=60) as rt:
        assert rt.statistics().live_runs == 0  # nothing due yet, so nothing loaded
        await rt.signal("w", "go", "after restart")
        assert await rt.get_handle("w").result() == "after restart"
        assert await rt.get_handle("s").result() == "woke"
        assert (await rt.describe("s")).ended_at == pytest.approx(t0 + 30 * DAY)  # its original deadline


@workflow(name="two_signals")
async def two_signals(ctx: RunContext) -> list[str]:
    first: str = await ctx.wait_signal("go")
    second: str = await ctx.wait_signal("later")
    return [first, second]


async def test_a_signal_kept_for_a_later_wait_does_not_reload_the_run(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[two_signals], clock=clock, passivate_after=60) as rt:
        handle = await rt.start(two_signals, run_id="t")
        await rt.signal("t", "later", "early")  # kept in the inbox until the second wait
        await clock.sleep(3600)
        assert rt.statistics().live_runs == 0  # passivated once, and not reloaded every 60 s since
        resumes = [e async for e in rt.history("t") if type(e).__name__ == "RunResumed"]
        assert resumes == []
        await rt.signal("t", "go", "now")
        assert await handle.result() == ["now", "early"]


class LatePoller(SQLiteStore):
    """The inbox poller's reads after its first wait at a gate: its next read comes only
    once the test opens it (on a loaded machine, real time passes while virtual hours do)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.read = asyncio.Event()  # set after each read
        self.polls = 0

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        if self.polls:
            await self.gate.wait()
        rows = await super().inbox_since(seq, limit)
        self.polls += 1
        self.read.set()
        return rows


async def test_the_poller_finding_a_kept_signal_again_does_not_reload_the_run(tmp_path: Path) -> None:
    """The poller delivers every inbox message, those sent here too. A signal the run kept
    for a later wait is still in its inbox when the run leaves memory: found again then, it
    must not reload the run (it did: 'woken by a message' in the history)."""
    clock = VirtualClock()
    store = LatePoller(tmp_path / "p.db")
    opened = open_runtime(store, workflows=[two_signals], clock=clock, passivate_after=60, inbox_poll_interval=0.001)
    async with opened as rt:
        handle = await rt.start(two_signals, run_id="t")
        await rt.signal("t", "later", "early")
        await clock.sleep(3600)
        assert rt.statistics().live_runs == 0
        assert store.polls == 1  # its read at startup, before the signal
        store.gate.set()
        for _ in range(2):  # it has read the signal again, and delivered it before its next read
            store.read.clear()
            await store.read.wait()
        await clock.sleep(3600)
        assert rt.statistics().live_runs == 0
        assert [e async for e in rt.history("t") if type(e).__name__ == "RunResumed"] == []
        await rt.signal("t", "go", "now")  # a new message still reloads it, and it has both
        assert await handle.result() == ["now", "early"]
