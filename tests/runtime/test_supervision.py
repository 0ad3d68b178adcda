"""Run actors under supervision: transient store failures heal, crash loops end FAILED."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from _support import event_types
from wayline import RunContext, RunFailed, RunStatus, StoreError, activity, open_runtime, workflow
from wayline.actors import SupervisorSpec
from wayline.persistence import AnyEvent, MemoryStore, RunRecord, RunStatus as Status
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


class BrokenDiskStore:
    """A store whose checkpoints from the second step on fail ``failures`` times, then work."""

    def __init__(self, failures: int) -> None:
        self.inner = MemoryStore()
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # everything else: the real store

    def checkpoint(self, record: RunRecord, events: Sequence[AnyEvent]) -> Any:
        if self.failures > 0 and record.status is Status.RUNNING and record.steps >= 2:
            self.failures -= 1
            raise StoreError("disk full (simulated)")
        return self.inner.checkpoint(record, events)


ran: Counter[str] = Counter()


@activity(name="s")
async def s(i: int) -> int:
    ran[f"s{i}"] += 1
    return i


@workflow(name="three")
async def three(ctx: RunContext) -> list[int]:
    return [await ctx.run(s, i) for i in range(3)]


async def test_transient_store_failures_are_healed_by_restarts() -> None:
    ran.clear()
    store = BrokenDiskStore(failures=2)
    async with open_runtime(store, workflows=[three], clock=VirtualClock()) as rt:
        assert await (await rt.start(three, run_id="t")).result() == [0, 1, 2]
        kinds = event_types([e async for e in rt.history("t")])
    assert store.failures == 0
    assert ran["s0"] == 1  # checkpointed before the failures: never re-run
    assert ran["s1"] == 3  # its checkpoint failed twice
    assert sum(ran.values()) == 3 + 2  # each failed checkpoint costs one re-run
    assert kinds.count("RunResumed") >= 1  # the restart that committed says so


async def test_a_crash_loop_fails_the_run_instead_of_dropping_it() -> None:
    ran.clear()
    store = BrokenDiskStore(failures=1000)
    spec = SupervisorSpec(intensity=2, period=60.0)
    async with open_runtime(store, workflows=[three], clock=VirtualClock(), supervisor=spec) as rt:
        store_left = store.failures
        with pytest.raises(RunFailed) as info:
            await (await rt.start(three, run_id="t")).result()
        desc = await rt.describe("t")
    assert info.value.error == "CrashLoop"
    assert "StoreError" in (info.value.cause or "") and "disk full" in (info.value.cause or "")
    assert desc.status is RunStatus.FAILED
    assert store_left - store.failures == 3  # intensity 2: the third crash gives up


class OneRunBrokenStore(BrokenDiskStore):
    """Every checkpoint of run "victim" fails (even the crash-loop FAILED record)."""

    def __init__(self) -> None:
        super().__init__(failures=0)

    def checkpoint(self, record: RunRecord, events: Sequence[AnyEvent], *args: Any) -> Any:
        if record.run_id == "victim":
            raise StoreError("the victim's rows sit on a bad sector (simulated)")
        return self.inner.checkpoint(record, events, *args)


async def test_a_run_that_cannot_even_be_failed_does_not_take_the_runtime_down() -> None:
    ran.clear()
    store = OneRunBrokenStore()
    spec = SupervisorSpec(intensity=1, period=60.0)
    async with open_runtime(store, workflows=[three], clock=VirtualClock(), supervisor=spec) as rt:
        victim = await rt.start(three, run_id="victim")
        healthy = await rt.start(three, run_id="healthy")
        assert await healthy.result() == [0, 1, 2]
        await rt.clock.sleep(60)  # virtual: the victim's restarts and its giving up happen meanwhile
        assert (await rt.describe("victim")).status is RunStatus.RUNNING  # unwritable: stays as stored
        assert victim.run_id == "victim"

@activity(name="hangs")
async def hangs() -> None:
    await asyncio.get_running_loop().create_future()  # never done: the run is mid-step


@workflow(name="hanging")
async def hanging(ctx: RunContext) -> None:
    await ctx.run(hangs)


async def test_a_loop_torn_down_under_the_runtime_is_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    """What asyncio.run (or a test runner whose test timed out) does when the loop's main
    task dies: it cancels every task at once. The runs' tasks are cancelled by the teardown,
    not by a library they awaited: no crash, no restart, nothing in the history."""
    started = asyncio.Event()
    hosted: list[Any] = []
    runner = asyncio.all_tasks()  # the test runner's own tasks: not part of this teardown

    async def host() -> None:
        async with open_runtime(MemoryStore(), workflows=[hanging], clock=VirtualClock()) as rt:
            hosted.append(rt)
            await rt.start(hanging, run_id="h")
            started.set()
            await asyncio.get_running_loop().create_future()

    task = asyncio.ensure_future(host())
    await started.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # the run is in its step
    me = asyncio.current_task()
    for other in asyncio.all_tasks() - runner:
        if other is not me:
            other.cancel()  # as asyncio.runners._cancel_all_tasks does
    with pytest.raises(asyncio.CancelledError):
        await task
    crashes = [r.getMessage() for r in caplog.records if "crash" in r.getMessage()]
    assert crashes == []
