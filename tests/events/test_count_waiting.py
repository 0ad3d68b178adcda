"""``Concurrency(count_waiting=False)``: a waiting run gives its slot back and queues for one
again when its wait ends."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from _support import idle
from wayline import Concurrency, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.errors import RunCancelled
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

#: (run id, what, virtual time), appended by the steps below.
LOG: list[tuple[str, str, float]] = []
#: Steps executing right now, and the most at once.
ACTIVE = {"now": 0, "max": 0}
#: The `work` step waits for this before it ends (set unless a test holds it).
GATE: dict[str, asyncio.Event] = {}


@activity(name="note")
async def note(run_id: str, what: str, at: float) -> None:
    LOG.append((run_id, what, at))


@activity(name="work")
async def work(run_id: str, at: float) -> None:
    ACTIVE["now"] += 1
    ACTIVE["max"] = max(ACTIVE["max"], ACTIVE["now"])
    LOG.append((run_id, "work", at))
    try:
        await GATE["work"].wait()
        for _ in range(5):  # a window in which a second step would overlap, were it let in
            await asyncio.sleep(0)
    finally:
        ACTIVE["now"] -= 1


@workflow(name="nap_then_work", concurrency=Concurrency(1, count_waiting=False))
async def nap_then_work(ctx: RunContext, n: int) -> int:
    await ctx.run(note, ctx.run_id, "before", ctx.now())
    await ctx.sleep(5)
    await ctx.run(work, ctx.run_id, ctx.now())
    return n


@pytest.fixture(autouse=True)
def _fresh() -> None:
    LOG.clear()
    ACTIVE.update(now=0, max=0)
    GATE["work"] = asyncio.Event()
    GATE["work"].set()


async def _until(predicate: object, rt: object, what: str) -> None:
    for _ in range(2000):
        if await predicate():  # type: ignore[operator]
            return
        await idle(rt)
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


async def test_waiting_runs_give_their_slot_back_and_queue_for_it_again(db: str) -> None:
    async with open_runtime(db, workflows=[nap_then_work], clock=VirtualClock()) as rt:
        t0 = rt.clock.time()
        GATE["work"].clear()
        for n in range(3):
            await rt.start(nap_then_work, n, run_id=f"r{n}")

        async def two_queued_one_working() -> bool:
            if len([e for e in LOG if e[1] == "work"]) != 1:
                return False
            infos = [await rt.describe(f"r{n}") for n in range(3)]
            return sum(1 for i in infos if any("woken, queued for its slot again" in w for w in i.waiting_for)) == 2

        await _until(two_queued_one_working, rt, "one run working, two woken and queued")
        # All three slept at once (limit 1): each gave its slot back when its sleep began.
        assert sorted(at - t0 for _, what, at in LOG if what == "before") == [0.0, 0.0, 0.0]
        infos = [await rt.describe(f"r{n}") for n in range(3)]
        queued = [i for i in infos if any("woken" in w for w in i.waiting_for)]
        assert all(i.status is RunStatus.WAITING for i in queued)
        assert "concurrency limit 1 reached (1 running, " in next(w for w in queued[0].waiting_for if "woken" in w)
        GATE["work"].set()
        assert sorted([await rt.get_handle(f"r{n}").result() for n in range(3)]) == [0, 1, 2]
    worked = [at - t0 for _, what, at in LOG if what == "work"]
    assert worked == pytest.approx([5.0, 5.0, 5.0], abs=0.01)  # all woken at 5, worked one at a time
    assert ACTIVE["max"] == 1


async def test_a_restart_keeps_the_limit_with_runs_waiting_and_woken(tmp_path: Path) -> None:
    path = str(tmp_path / "wayline.db")
    GATE["work"].clear()
    async with open_runtime(path, workflows=[nap_then_work], clock=VirtualClock()) as rt:
        for n in range(3):
            await rt.start(nap_then_work, n, run_id=f"r{n}")
        await _until(lambda: _async(len([e for e in LOG if e[1] == "work"]) == 1), rt, "one run working")
        await idle(rt)
    working = next(run_id for run_id, what, _ in LOG if what == "work")
    with sqlite3.connect(path) as conn:
        # The worker's run was woken and admitted (its record still says WAITING: its next
        # checkpoint had not come); the two others were woken and queued for their slot.
        assert [r[0] for r in conn.execute("SELECT run_id FROM flow_slots")] == [working]
        assert sorted(r[0] for r in conn.execute("SELECT run_id FROM flow_queue")) == sorted(
            {"r0", "r1", "r2"} - {working}
        )
        # The working run checkpointed RUNNING before its step: it keeps its slot on restart.
        statuses = {r[0]: r[1] for r in conn.execute("SELECT run_id, status FROM runs")}
        assert statuses == {r: "RUNNING" if r == working else "WAITING" for r in ("r0", "r1", "r2")}
        # A crash between an admission and the run's next checkpoint leaves a WAITING run in a
        # slot: over the limit, unless the restart gives that slot back.
        stale = min({"r0", "r1", "r2"} - {working})
        conn.execute("DELETE FROM flow_queue WHERE run_id = ?", (stale,))
        conn.execute("INSERT INTO flow_slots (run_id, grp, key) VALUES (?, 'nap_then_work', '')", (stale,))
    LOG.clear()
    ACTIVE.update(now=0, max=0)
    GATE["work"] = asyncio.Event()
    async with open_runtime(path, workflows=[nap_then_work], clock=VirtualClock()) as rt:
        await _until(lambda: _async(ACTIVE["now"] == 1), rt, "a run working after the restart")
        for _ in range(20):  # time for the stale run to wrongly go on, were its slot kept
            await idle(rt)
            await asyncio.sleep(0.001)
        assert ACTIVE["now"] == 1
        GATE["work"].set()
        assert sorted([await rt.get_handle(f"r{n}").result() for n in range(3)]) == [0, 1, 2]
        assert sorted(run_id for run_id, what, _ in LOG if what == "work") == ["r0", "r1", "r2"]
    assert ACTIVE["max"] == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_slots").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM flow_queue").fetchone()[0] == 0


async def _async(value: bool) -> bool:
    return value


async def test_a_run_queued_for_its_slot_can_be_cancelled(tmp_path: Path) -> None:
    async with open_runtime(str(tmp_path / "w.db"), workflows=[nap_then_work], clock=VirtualClock()) as rt:
        GATE["work"].clear()
        for n in range(2):
            await rt.start(nap_then_work, n, run_id=f"r{n}")

        async def queued() -> bool:
            infos = [await rt.describe(f"r{n}") for n in range(2)]
            return any(any("woken" in w for w in i.waiting_for) for i in infos) and ACTIVE["now"] == 1

        await _until(queued, rt, "one run working, one queued for its slot")
        working = next(run_id for run_id, what, _ in LOG if what == "work")
        other = "r1" if working == "r0" else "r0"
        await rt.cancel(other, "not needed")
        with pytest.raises(RunCancelled):
            await rt.get_handle(other).result()
        assert ACTIVE["max"] == 1  # it did not go on to its step without a slot
        GATE["work"].set()
        assert await rt.get_handle(working).result() in (0, 1)
    assert [run_id for run_id, what, _ in LOG if what == "work"] == [working]


@workflow(name="nap_twice", concurrency=Concurrency(1, count_waiting=False))
async def nap_twice(ctx: RunContext, n: int) -> int:
    await ctx.sleep(5)
    await ctx.run(work, ctx.run_id, ctx.now())
    await ctx.sleep(5)
    await ctx.run(work, ctx.run_id, ctx.now())
    return n


async def test_passivated_runs_give_their_slot_back_and_take_it_again(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    async with open_runtime(path, workflows=[nap_twice], clock=VirtualClock(), passivate_after=1) as rt:
        t0 = rt.clock.time()
        for n in range(3):
            await rt.start(nap_twice, n, run_id=f"p{n}")
        await rt.clock.sleep(2)
        assert rt.statistics().passivated == 3  # all three left memory while asleep
        assert sorted([await rt.get_handle(f"p{n}").result() for n in range(3)]) == [0, 1, 2]
    assert sorted(round(at - t0) for _, what, at in LOG if what == "work") == [5, 5, 5, 10, 10, 10]
    assert ACTIVE["max"] == 1
