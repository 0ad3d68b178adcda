"""Retention and purge: finished runs go with their history, inbox leftovers, metadata index
rows and the blobs no other run refers to; in small batches, in the background or on demand."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import (
    MemoryStore,
    RunRecord,
    RunStatus,
    SignalMessage,
    SQLiteStore,
    StepSucceeded,
    Store,
)
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

SHARED = {"doc": "s" * 40_000}  # offloaded: one blob for every run that holds it
OWN = {"doc": "o" * 40_000}


async def count(store: Store, table: str) -> int:
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    rows = await store._fetch(f"SELECT count(*) FROM wayline.{table}")  # type: ignore[attr-defined]
    return int(rows[0][0])


async def make(store: Store, run_id: str, created: float, ended: float | None, vars: dict[str, object]) -> None:
    rec = RunRecord(run_id=run_id, workflow="w", status=RunStatus.RUNNING, created_at=created, metadata={"k": "v"})
    await store.create_run(rec, [])
    await store.append_inbox(run_id, SignalMessage(name="late", payload=1))
    event = StepSucceeded(ts=created, step="s", index=0, attempt=1, result=1)
    status = RunStatus.SUCCEEDED if ended is not None else RunStatus.WAITING
    rec = msgspec.structs.replace(rec, vars=vars, history_seq=1, steps=1)
    await store.checkpoint(rec, [event])
    if ended is not None:
        done = msgspec.structs.replace(rec, status=status, ended_at=ended, history_seq=2)
        await store.checkpoint(done, [StepSucceeded(ts=ended, step="t", index=1, attempt=1, result=2)])


async def test_purge_takes_everything_of_the_runs_it_deletes(store: Store) -> None:
    await make(store, "old-1", 10.0, 20.0, {"a": SHARED})
    await make(store, "old-2", 11.0, 21.0, {"a": OWN})
    await make(store, "late", 12.0, 500.0, {"a": SHARED})  # created early, ended after the cutoff
    await make(store, "going", 13.0, None, {"a": OWN})  # not finished: never purged
    sql = not isinstance(store, MemoryStore)
    if sql:
        assert await count(store, "blobs") == 2 and await count(store, "run_blobs") == 4
    assert await store.purge_runs(before=100.0, dry_run=True) == ["old-1", "old-2"]
    assert len(await store.list_runs()) == 4
    assert await store.purge_runs(before=100.0, limit=1) == ["old-1"]
    assert await store.purge_runs(before=100.0) == ["old-2"]
    assert await store.purge_runs(before=100.0) == []
    assert [r.run_id for r in await store.list_runs()] == ["late", "going"]
    assert await store.get_run("old-1") is None and await store.get_history("old-1") == []
    assert [r.run_id for r in await store.list_runs(metadata={"k": "v"})] == ["late", "going"]
    assert [rid for _, rid, _ in await store.inbox_since(0)] == ["going"]  # "late" ended: its message went then
    if sql:
        # SHARED stays for "late"; OWN stays for "going"; nothing dangles
        assert await count(store, "blobs") == 2 and await count(store, "run_blobs") == 2
        assert await count(store, "run_metadata") == 2
    assert (await store.get_run("late")).vars == {"a": SHARED}  # type: ignore[union-attr]
    assert await store.purge_runs(before=1000.0, statuses=[RunStatus.FAILED]) == []
    assert await store.purge_runs(before=1000.0) == ["late"]
    if sql:
        assert await count(store, "blobs") == 1  # OWN, for the run still going
    with pytest.raises(ValueError, match="only finished runs can be purged, not WAITING"):
        await store.purge_runs(before=1000.0, statuses=[RunStatus.WAITING])


@activity(name="step")
async def step(i: int) -> int:
    return i


@workflow(name="short_lived", retention=timedelta(minutes=5))
async def short_lived(ctx: RunContext, i: int) -> int:
    ctx.vars["payload"] = {"i": i, "pad": "p" * 2000}
    await ctx.run(step, i)
    return i


@workflow(name="kept")
async def kept(ctx: RunContext, i: int) -> int:
    return await ctx.run(step, i)


async def test_rt_purge_and_background_retention(tmp_path: Path) -> None:
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with open_runtime(str(tmp_path / "r.db"), workflows=[short_lived, kept], clock=clock) as rt:
        for i in range(3):
            await (await rt.start(short_lived, i, run_id=f"s{i}")).result()
            await (await rt.start(kept, i, run_id=f"k{i}")).result()
        assert await rt.purge(before=clock.time() + 1, workflow="kept", dry_run=True) == 3
        assert await rt.purge(before=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=1), workflow="kept") == 3
        assert sorted(r.run_id for r in await rt.list_runs()) == ["s0", "s1", "s2"]
        with pytest.raises(ValueError, match="timezone-aware"):
            await rt.purge(before=datetime(2026, 1, 1))
        await rt.clock.sleep(4 * 60)
        assert len(await rt.list_runs()) == 3  # younger than their retention
        await rt.clock.sleep(3 * 60)  # past 5 minutes, and a purge pass came
        assert await rt.list_runs() == []


def file_size(path: Path) -> int:
    """The database file and its write-ahead log, in bytes."""
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))


async def test_a_steady_service_keeps_a_steady_file(tmp_path: Path) -> None:
    """An hour of virtual time, a run every 2 s, 5 minutes of retention: the database file
    (with its log) stops growing once the purge keeps pace."""
    path = tmp_path / "steady.db"
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    sizes: dict[int, int] = {}
    async with open_runtime(str(path), workflows=[short_lived], clock=clock) as rt:
        for second in range(0, 3600, 2):
            await rt.start(short_lived, second, run_id=f"r{second}")
            await rt.clock.sleep(2)
            if second % 600 == 598:
                sizes[second // 600 + 1] = file_size(path)
        assert len(await rt.list_runs()) <= 5 * 30 + 30  # 5 minutes of runs, and one pass's worth
    print("file size per 10 minutes:", sizes)
    assert sizes[6] <= sizes[2] * 1.1, sizes


async def test_cli_purge_with_a_dry_run(tmp_path: Path) -> None:
    path = str(tmp_path / "cli.db")
    async with open_runtime(path, workflows=[kept], clock=VirtualClock()) as rt:
        for i in range(4):
            await (await rt.start(kept, i, run_id=f"k{i}")).result()
    wayline = Path(sys.executable).with_name("wayline")

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(wayline), "runs", "purge", "--db", path, *args, stdout=-1, stderr=-1
        )
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("--before", "2999-01-01T00:00:00Z", "--dry-run")
    assert code == 0, err
    assert out.strip() == "4 runs would be purged (dry run: nothing deleted)"
    code, out, err = await cli("--before", "2999-01-01T00:00:00Z", "--workflow", "kept", "--json")
    assert code == 0, err
    assert json.loads(out) == {"purged": 4, "dry_run": False}
    code, out, err = await cli("--before", "soon")
    assert code == 2 and "--before 'soon'" in err
