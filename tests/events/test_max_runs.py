"""``open_runtime(max_runs=N)`` on SQLite and in memory: at most N runs at once, the others
QUEUED durably in arrival order, composed with a workflow's own ``Concurrency``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import idle
from wayline import Concurrency, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.errors import RunCancelled
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

#: (label, run id, start or end, virtual time), appended by the steps below.
LOG: list[tuple[str, str, str, float]] = []


@activity(name="mark_cap")
async def mark(label: str, run_id: str, what: str, at: float) -> None:
    LOG.append((label, run_id, what, at))


@workflow(name="job")
async def job(ctx: RunContext, n: int) -> int:
    await ctx.run(mark, "", ctx.run_id, "start", ctx.now())
    await ctx.sleep(10)
    await ctx.run(mark, "", ctx.run_id, "end", ctx.now())
    return n


@workflow(name="keyed", concurrency=Concurrency(1, key=lambda x: x["k"]))
async def keyed(ctx: RunContext, x: dict[str, Any]) -> str:
    await ctx.run(mark, x["k"], ctx.run_id, "start", ctx.now())
    await ctx.sleep(10)
    await ctx.run(mark, x["k"], ctx.run_id, "end", ctx.now())
    return str(x["k"])


def overlap(log: list[tuple[str, str, str, float]], label: str | None = None) -> int:
    """The most runs (of ``label``, or all) between their start and end marks at one moment."""
    spans: dict[str, list[float]] = {}
    for lab, run_id, what, at in log:
        if label is None or lab == label:
            spans.setdefault(run_id, [0.0, 0.0])[0 if what == "start" else 1] = at
    points = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    level = best = 0
    for _, step in points:  # an end at t sorts before a start at t
        level += step
        best = max(best, level)
    return best


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    LOG.clear()


@pytest.fixture(params=["memory", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield ":memory:" if request.param == "memory" else str(tmp_path / "wayline.db")


async def test_runs_beyond_max_runs_wait_queued_and_start_in_arrival_order(db: str) -> None:
    async with open_runtime(db, workflows=[job], clock=VirtualClock(), max_runs=2) as rt:
        for n in range(5):
            await rt.start(job, n, run_id=f"j{n}")
        queued = await rt.list_runs(status=RunStatus.QUEUED)
        assert [r.run_id for r in queued] == ["j2", "j3", "j4"]
        why = (await rt.describe("j4")).waiting_for
        assert why == ("a runtime slot: max_runs=2 reached (2 running, 2 queued ahead, priority 0)",)
        assert [await rt.get_handle(f"j{n}").result() for n in range(5)] == [0, 1, 2, 3, 4]
    assert overlap(LOG) == 2
    assert [run_id for _, run_id, what, _ in LOG if what == "start"] == ["j0", "j1", "j2", "j3", "j4"]


async def test_max_runs_and_a_concurrency_limit_compose(db: str) -> None:
    async with open_runtime(db, workflows=[keyed], clock=VirtualClock(), max_runs=2) as rt:
        for run_id, k in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"), ("a3", "a"), ("c2", "c")]:
            await rt.start(keyed, {"k": k}, run_id=run_id)
        # a1 and b1 hold their key's slot and a runtime slot; c1 holds its key's and waits for
        # a runtime one; a2, a3 and c2 wait for their key.
        assert (await rt.describe("c1")).waiting_for[0].startswith("a runtime slot: max_runs=2 reached")
        assert (await rt.describe("a2")).waiting_for[0].startswith("a slot: concurrency limit 1 for key 'a'")
        assert {r.run_id for r in await rt.list_runs(status=RunStatus.QUEUED)} == {"a2", "a3", "c1", "c2"}
        for run_id in ("a1", "a2", "a3", "b1", "c1", "c2"):
            await rt.get_handle(run_id).result()
    assert overlap(LOG) == 2
    assert all(overlap(LOG, k) == 1 for k in "abc")
    assert len(LOG) == 12


async def test_runs_queued_by_max_runs_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "wayline.db")
    async with open_runtime(path, workflows=[job], clock=VirtualClock(), max_runs=1) as rt:
        for n in range(3):
            await rt.start(job, n, run_id=f"j{n}")
        await idle(rt)
        assert [r.status for r in await rt.list_runs()] == [RunStatus.WAITING, RunStatus.QUEUED, RunStatus.QUEUED]
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT run_id FROM flow_slots")] == ["wayline.max_runs:j0"]
        assert [r[0] for r in conn.execute("SELECT run_id FROM flow_queue ORDER BY seq")] == [
            "wayline.max_runs:j1",
            "wayline.max_runs:j2",
        ]
        # A crash between a run's creation and its enqueue: the restart queues it again.
        conn.execute("DELETE FROM flow_queue WHERE run_id = 'wayline.max_runs:j2'")
    async with open_runtime(path, workflows=[job], clock=VirtualClock(), max_runs=1) as rt:
        assert [await rt.get_handle(f"j{n}").result() for n in range(3)] == [0, 1, 2]
    assert overlap(LOG) == 1
    assert [run_id for _, run_id, what, _ in LOG if what == "start"] == ["j0", "j1", "j2"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_slots").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM flow_queue").fetchone()[0] == 0


@workflow(name="leaf")
async def leaf(ctx: RunContext, n: int) -> int:
    await ctx.sleep(1)
    return n * 10


@workflow(name="parent")
async def parent(ctx: RunContext, n: int) -> int:
    return int(await ctx.run_workflow(leaf, n))


async def test_a_child_runs_on_its_parents_slot_and_a_queued_run_can_be_cancelled(db: str) -> None:
    async with open_runtime(db, workflows=[parent, leaf, job], clock=VirtualClock(), max_runs=1) as rt:
        first = await rt.start(parent, 1, run_id="p1")
        await rt.start(parent, 2, run_id="p2")
        doomed = await rt.start(job, 9, run_id="doomed")
        await rt.cancel("doomed", "not needed")
        with pytest.raises(RunCancelled):
            await doomed.result()
        # With a limit of one, a parent waiting for its child would wait forever, were the
        # child to need a runtime slot of its own.
        assert await first.result() == 10
        assert await rt.get_handle("p2").result() == 20
    assert not [e for e in LOG if e[1] == "doomed"]  # cancelled while queued: it never started


@workflow(name="napper", concurrency=Concurrency(1, count_waiting=False))
async def napper(ctx: RunContext, n: int) -> int:
    await ctx.run(mark, "n", ctx.run_id, "start", ctx.now())
    await ctx.sleep(5)
    await ctx.run(mark, "n", ctx.run_id, "end", ctx.now())
    return n


async def test_max_runs_with_count_waiting_false_gives_both_slots_back_while_waiting(db: str) -> None:
    # Were the runtime slot kept while asleep, a woken run (holding it) would wait for its key's
    # slot, held by a run that waits for the runtime slot: neither would go on.
    async with open_runtime(db, workflows=[napper], clock=VirtualClock(), max_runs=1) as rt:
        t0 = rt.clock.time()
        for n in range(3):
            await rt.start(napper, n, run_id=f"n{n}")
        assert sorted([await rt.get_handle(f"n{n}").result() for n in range(3)]) == [0, 1, 2]
    assert sorted(round(at - t0) for _, _, what, at in LOG if what == "start") == [0, 0, 0]  # all slept at once
    assert sorted(round(at - t0) for _, _, what, at in LOG if what == "end") == [5, 5, 5]
