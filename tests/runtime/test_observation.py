"""Observing live runs: history snapshots, result waiters, orphans, racing starts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import idle, parked, until
from wayline import (
    RetryPolicy,
    RunAlreadyFinishedError,
    RunCancelled,
    RunContext,
    RunStatus,
    activity,
    open_runtime,
    workflow,
)
from wayline.errors import RunConflictError
from wayline.persistence import AnyEvent, MemoryStore, RunRecord
from wayline.runtime import RuntimeStatistics
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

ran: Counter[str] = Counter()


@activity(name="tick")
async def tick(i: int) -> int:
    for _ in range(i % 3):
        await asyncio.sleep(0)
    return i


@workflow(name="long")
async def long(ctx: RunContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(tick, i)
        ctx.vars["i"] = i
    return total


def _key(e: Any) -> tuple[str, Any, Any]:
    return (type(e).__name__, getattr(e, "index", None), getattr(e, "attempt", None))


async def test_history_read_during_a_run_is_always_a_prefix_of_the_final_history(db: str) -> None:
    # 100 steps: the snapshot's event tail moves to the history table several times mid-run
    reads: list[list[Any]] = []
    async with open_runtime(db, workflows=[long], clock=VirtualClock()) as rt:
        handle = await rt.start(long, 100, run_id="h")
        done = asyncio.ensure_future(handle.result())
        while not done.done():
            reads.append([_key(e) async for e in rt.history("h")])
            await asyncio.sleep(0)
        assert await done == sum(range(100))
        final = [_key(e) async for e in rt.history("h")]
    assert len(final) == 1 + 2 * 100 + 1
    assert len(reads) > 5
    for snapshot in reads:
        assert snapshot == final[: len(snapshot)], "a history read missed or repeated events"


async def test_describe_of_a_live_run_shows_its_last_checkpoint(db: str) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()

    @activity(name="hold")
    async def hold() -> None:
        entered.set()  # step 1 is durable: the body went on only once it was
        await gate.wait()

    @workflow(name="held")
    async def held(ctx: RunContext) -> str:
        ctx.vars["phase"] = 1
        await ctx.run(tick, 1)
        ctx.vars["phase"] = 2
        await ctx.run(hold)
        return "done"

    async with open_runtime(db, workflows=[held]) as rt:
        handle = await rt.start(held, run_id="d")
        with anyio.fail_after(5):
            await entered.wait()
        info = await rt.describe("d")
        assert info.status is RunStatus.RUNNING
        # what the last checkpoint holds: after step 1, or (if the runtime records a step's
        # start) as step 2 begins; never anything the body has not reached
        assert info.vars in ({"phase": 1}, {"phase": 2})
        assert info.output is None and info.ended_at is None
        gate.set()
        assert await handle.result() == "done"
        assert (await rt.describe("d")).vars == {"phase": 2}


async def test_many_waiters_and_one_giving_up(db: str) -> None:
    gate = asyncio.Event()

    @activity(name="hold2")
    async def hold2() -> int:
        await gate.wait()
        return 7

    @workflow(name="held2")
    async def held2(ctx: RunContext) -> int:
        return await ctx.run(hold2)

    async with open_runtime(db, workflows=[held2]) as rt:
        handle = await rt.start(held2, run_id="w")
        waiters = [asyncio.ensure_future(rt.get_handle("w").result()) for _ in range(5)]
        quitter = asyncio.ensure_future(handle.result())
        await asyncio.sleep(0)  # one loop turn: each waiter has started and waits for the run
        quitter.cancel()
        gate.set()
        assert await asyncio.gather(*waiters) == [7] * 5
        assert quitter.cancelled()
        assert await handle.result() == 7


@workflow(name="wa")
async def wa(ctx: RunContext) -> str:
    return "a"


@workflow(name="wb")
async def wb(ctx: RunContext) -> str:
    return "b"


async def test_racing_starts_of_one_id_for_two_workflows(db: str) -> None:
    async with open_runtime(db, workflows=[wa, wb], clock=VirtualClock()) as rt:
        results = await asyncio.gather(rt.start(wa, run_id="x"), rt.start(wb, run_id="x"), return_exceptions=True)
        conflicts = [r for r in results if isinstance(r, RunConflictError)]
        assert len(conflicts) == 1, results
        winner = "a" if not isinstance(results[0], BaseException) else "b"
        assert await rt.get_handle("x").result() == winner
        assert (await rt.describe("x")).workflow == f"w{winner}"


@workflow(name="orphaned")
async def orphaned(ctx: RunContext) -> str:
    await ctx.sleep(10)
    return "x"


async def test_result_of_a_run_whose_workflow_is_not_registered_does_not_hang(tmp_path: Path) -> None:
    from wayline.errors import WorkflowNotFoundError

    path = tmp_path / "o.db"
    async with open_runtime(path, workflows=[orphaned], clock=VirtualClock(autojump=False)) as rt:
        await rt.start(orphaned, run_id="o")
        await parked(rt)  # on its 10 s sleep, which this clock never reaches
    async with open_runtime(path, workflows=[wa], clock=VirtualClock()) as rt:
        with anyio.fail_after(1), pytest.raises(WorkflowNotFoundError) as info:
            await rt.get_handle("o").result()
        assert info.value.run_id == "o"


@activity(name="down", retry=RetryPolicy(max_attempts=5, interval=3600.0))
async def down() -> None:
    ran["down"] += 1
    raise ConnectionError("down")


@workflow(name="backing")
async def backing(ctx: RunContext) -> None:
    await ctx.run(down)


async def test_cancel_during_a_retry_backoff(db: str) -> None:
    ran.clear()
    clock = VirtualClock(autojump=False)
    async with open_runtime(db, workflows=[backing], clock=clock) as rt:
        handle = await rt.start(backing, run_id="c")
        await parked(rt)  # in its hour-long retry backoff
        await rt.cancel("c", "enough")
        with anyio.fail_after(5), pytest.raises(RunCancelled):
            await handle.result()
        clock.advance(10 * 3600)  # the retry timer would have fired by now
        for _ in range(10):  # a retry scheduled after all would have started in these turns
            await asyncio.sleep(0)
        info = await rt.describe("c")
    assert ran["down"] == 1
    assert info.status is RunStatus.CANCELLED and info.waiting_for == ()


class GatedFinish(MemoryStore):
    """Holds the commit of a run's final checkpoint until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.final_pending = asyncio.Event()
        self.release = asyncio.Event()

    def checkpoint(self, record: RunRecord, events: Sequence[AnyEvent]) -> Awaitable[None]:
        done = super().checkpoint(record, events)
        if not record.status.finished:
            return done

        async def gated() -> None:
            self.final_pending.set()
            await self.release.wait()
            await done

        return gated()


async def test_cancel_racing_with_the_runs_end_does_not_leak_actor_errors() -> None:
    store = GatedFinish()
    async with open_runtime(store, workflows=[wa], clock=VirtualClock()) as rt:
        handle = await rt.start(wa, run_id="r")
        with anyio.fail_after(5):
            await store.final_pending.wait()
        cancelling = asyncio.ensure_future(rt.cancel("r", "late"))
        await until(lambda: rt.statistics().mailbox_depth == 1)  # queued behind the finishing message
        store.release.set()
        assert await handle.result() == "a"
        try:
            await cancelling
        except RunAlreadyFinishedError:
            pass  # the documented outcome for a run that ended first


@workflow(name="sig")
async def sig(ctx: RunContext) -> Any:
    return await ctx.wait_signal("go")


async def test_statistics_count_what_is_in_memory(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[sig], clock=clock, passivate_after=60) as rt:
        assert rt.statistics() == RuntimeStatistics()
        handles = [await rt.start(sig, run_id=f"s{i}") for i in range(3)]
        await idle(rt)  # all three park on their signal
        stats = rt.statistics()
        assert (stats.live_runs, stats.waiting_runs, stats.passivated) == (3, 3, 0)
        await clock.sleep(120)  # they only wait: past passivate_after they leave memory
        stats = rt.statistics()
        assert (stats.live_runs, stats.waiting_runs, stats.passivated) == (0, 0, 3)
        await rt.signal("s0", "go", 0)  # reloads it
        assert await handles[0].result() == 0
        assert rt.statistics().passivated == 2
