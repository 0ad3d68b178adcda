"""A purge under load, with the process dying at every store write (before it, and after it
committed), then a restart on the same SQLite file: nothing dangles, nothing is orphaned, the
runs that stay read back whole, and the purge finishes what it started."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from _support import find_crash
from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore, StepSucceeded
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

SHARED = "s" * 40_000  # offloaded; every run holds it


@activity(name="produce")
async def produce(i: int) -> str:
    return f"{i}" * 30_000  # offloaded; each run's own


@workflow(name="holder")
async def holder(ctx: RunContext, i: int) -> int:
    ctx.vars["shared"] = SHARED
    ctx.vars["own"] = await ctx.run(produce, i)
    if i == 0:
        await ctx.wait_signal("go")  # one run keeps going: its blobs must stay
    return i


async def workload(store: Any) -> None:
    async with open_runtime(store, workflows=[holder], clock=VirtualClock()) as rt:
        handles = [await rt.start(holder, i, run_id=f"r{i}") for i in range(4)]
        for handle in handles[1:]:
            await handle.result()
        await rt.clock.sleep(1)
        await rt.purge(before=rt.clock.time() + 10)


def check(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        dangling = conn.execute("SELECT count(*) FROM run_blobs WHERE digest NOT IN (SELECT digest FROM blobs)")
        assert dangling.fetchone() == (0,)
        orphans = conn.execute("SELECT count(*) FROM blobs WHERE digest NOT IN (SELECT digest FROM run_blobs)")
        assert orphans.fetchone() == (0,)
        stale = conn.execute("SELECT count(*) FROM run_blobs WHERE run_id NOT IN (SELECT run_id FROM runs)")
        assert stale.fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM history WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone() == (0,)
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [("r0",)]
    finally:
        conn.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("when", ["before", "after"])
async def test_purge_with_a_crash_at_every_write(tmp_path: Path, when: str) -> None:
    clean = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"))
    await workload(clean)
    check(tmp_path / "clean.db")
    total = clean.writes
    assert total > 10
    for n in range(1, total + 1):
        path = tmp_path / f"{when}-{n}.db"
        faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
        try:
            await workload(faulty)
        except BaseException as exc:
            if find_crash(exc) is None:
                raise
        # the restart: the same workload again on the same file (idempotent run ids), a purge
        async with open_runtime(str(path), workflows=[holder], clock=VirtualClock()) as rt:
            for i in range(1, 4):
                await (await rt.start(holder, i, run_id=f"r{i}")).result()
            await rt.start(holder, 0, run_id="r0")
            await rt.clock.sleep(1)
            await rt.purge(before=rt.clock.time() + 10)
            kept = await rt.store.get_run("r0")
            assert kept is not None and kept.vars["shared"] == SHARED, n
            assert kept.vars["own"] == "0" * 30_000, n
            results = [e.result for e in await rt.store.get_history("r0") if isinstance(e, StepSucceeded)]
            assert results == ["0" * 30_000], n
        check(path)
