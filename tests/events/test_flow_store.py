"""The flow tables of every store: admission is atomic, so a limit holds even when two
processes (here two store instances on one database) admit for the same key at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from _postgres import fresh_database, require_postgres
from wayline.persistence import MemoryStore, QueuedRun, SQLiteStore

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_stores(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """Two store instances on one database (one shared instance for memory)."""
    if kind == "memory":
        store = MemoryStore()
        await store.start()
        yield store, store
        await store.close()
        return
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "f.db")
        await store.start()
        yield store, store
        await store.close()
        return
    require_postgres()
    from wayline.persistence import PostgresStore

    with fresh_database() as url:
        a, b = PostgresStore(url), PostgresStore(url)
        await a.start()
        await b.start()
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_two_admitters_never_exceed_the_limit(kind: str, tmp_path: Path) -> None:
    async with two_stores(kind, tmp_path) as (a, b):
        for i in range(40):
            await a.flow.enqueue(QueuedRun(run_id=f"r{i:02}", group="g", key="k", priority=i % 3, limit=3))
        await a.flow.enqueue(QueuedRun(run_id="r00", group="g", key="k", limit=3))  # again: a no-op
        running: set[str] = set()
        most = 0
        order: list[str] = []

        async def worker(store: Any) -> None:
            nonlocal most
            for _ in range(60):
                for run_id in await store.flow.admit("g", "k"):
                    assert run_id not in running
                    running.add(run_id)
                    order.append(run_id)
                    most = max(most, len(running))
                await asyncio.sleep(0)
                if running:
                    done = sorted(running)[0]
                    running.discard(done)
                    await store.flow.release(done)

        await asyncio.gather(worker(a), worker(b))
        assert most <= 3
        assert sorted(order) == [f"r{i:02}" for i in range(40)]  # each admitted once
        # Priority first (2, then 1, then 0), arrival order within one.
        first = order[:3]
        assert all(int(r[1:]) % 3 == 2 for r in first)
        pos = await a.flow.position("nope")
        assert pos is None and await a.flow.queues() == []


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_a_withdrawal_takes_a_run_out_of_its_queue_never_out_of_a_slot(kind: str, tmp_path: Path) -> None:
    # The race a singleton "skip" lost: the poller's admission (store b) moved the new run into
    # the slot before its creator's own admission, which found nothing to admit and withdrew
    # the run; a release there gave the slot away and two runs of one key ran.
    async with two_stores(kind, tmp_path) as (a, b):
        await a.flow.enqueue(QueuedRun(run_id="s1", group="g", key="k", limit=1))
        await a.flow.enqueue(QueuedRun(run_id="s2", group="g", key="k", limit=1))
        assert await b.flow.admit("g", "k") == ["s1"]
        assert await a.flow.withdraw("s1") is False  # admitted: it keeps its slot
        assert await a.flow.holders("g", "k") == ["s1"]
        assert await a.flow.withdraw("s2") is True
        assert await a.flow.withdraw("s2") is False  # once
        assert await a.flow.queues() == []
        assert await a.flow.admit("g", "k") == []  # the slot is still held


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_stalled_are_the_runs_in_a_slot_still_queued(kind: str, tmp_path: Path) -> None:
    from wayline.persistence import RunRecord, RunStatus

    async with two_stores(kind, tmp_path) as (a, _):
        for i, status in enumerate([RunStatus.QUEUED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.QUEUED]):
            await a.create_run(RunRecord(run_id=f"r{i}", workflow="wf", created_at=1.0, status=status), [])
            await a.flow.enqueue(QueuedRun(run_id=f"r{i}", group="g", key="k", limit=3))
        assert await a.flow.stalled() == []  # queued, not admitted
        assert await a.flow.admit("g", "k") == ["r0", "r1", "r2"]
        # r2 holds its slot RUNNING (started); r3 waits in the queue; r0 and r1 never started.
        assert await a.flow.stalled() == ["r0", "r1"]
        await a.flow.release("r0")
        assert await a.flow.stalled() == ["r1"]
