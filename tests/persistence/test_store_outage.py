"""The SQLite store while its database cannot be written (here: another connection holds the
write lock past the busy timeout): checkpoints wait and go through later, creates and inbox
appends from outside a run fail at once, those of a run wait too, and health says why."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from wayline._errors import StoreUnavailableError
from wayline.persistence import WAIT_FOR_STORE, RunRecord, RunStatus, SignalMessage, SQLiteStore

pytestmark = pytest.mark.anyio


def rec(run_id: str, **kw: Any) -> RunRecord:
    return RunRecord(run_id=run_id, workflow="wf", status=RunStatus.RUNNING, created_at=1.0, **kw)


class Lock:
    """Another connection's write transaction on the database, held until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold)
        self.thread.start()

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.held.set()
            self.release.wait()
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def failed_batches(reader: InMemoryMetricReader) -> int:
    """How many group commits failed so far, from the store's batch-size histogram."""
    data = reader.get_metrics_data()
    count = 0
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "wayline.checkpoint.batch_size":
                    for point in metric.data.data_points:
                        if (point.attributes or {}).get("error.type") == "commit_failed":
                            count += point.count
    return count


async def test_a_lock_held_past_the_timeout_holds_checkpoints_and_refuses_api_writes(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    reader = InMemoryMetricReader()
    store = SQLiteStore(path, busy_timeout=0.2, meter_provider=MeterProvider(metric_readers=[reader]))
    await store.start()
    lock: Lock | None = None
    try:
        await store.create_run(rec("r"), [])
        lock = Lock(path)
        await anyio.to_thread.run_sync(lock.held.wait)

        held = asyncio.ensure_future(store.checkpoint(rec("r", vars={"step": 1}), []))
        for _ in range(2):
            await asyncio.sleep(0)  # its batch is with the writer thread, waiting for the lock
        # A create queued while that batch is being tried, and one of a run (which waits).
        late = asyncio.ensure_future(store.create_run(rec("late"), []))

        async def in_a_run() -> RunRecord | None:
            WAIT_FOR_STORE.set(True)
            return await store.create_run(rec("child"), [])

        child = asyncio.ensure_future(in_a_run())
        with pytest.raises(StoreUnavailableError) as info:
            await late  # refused once the batch failed: nothing stored, said at once
        assert "locked" in str(info.value) and "Nothing was stored" in str(info.value)
        assert failed_batches(reader) == 1  # refused at the first failure, not held for a retry
        health = store.health()
        assert health.status == "degraded" and health.cause == "locked" and health.since is not None, health
        assert health.held == 2, health  # the checkpoint and the run's create
        assert not held.done() and not child.done()
        # while the retry waits, new API writes are refused without a try
        with pytest.raises(StoreUnavailableError):
            await store.create_run(rec("new"), [])
        with pytest.raises(StoreUnavailableError):
            await store.append_inbox("r", SignalMessage(name="s", payload=1, ts=1.0))

        lock.release.set()
        with anyio.fail_after(10):
            await held  # committed by a retry
            assert await child is None  # created
        assert store.health().ok, store.health()
        assert (await store.get_run("r")) == rec("r", vars={"step": 1})
        assert await store.get_run("child") is not None
        assert await store.get_run("late") is None and await store.get_run("new") is None
        assert await store.create_run(rec("new"), []) is None  # and new writes go through again
    finally:
        if lock is not None:
            lock.release.set()
            await anyio.to_thread.run_sync(lock.thread.join)
        await store.close()


async def test_closing_while_the_database_cannot_be_written_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "closing.db"
    store = SQLiteStore(path, busy_timeout=0.1)
    await store.start()
    lock = Lock(path)
    try:
        await anyio.to_thread.run_sync(lock.held.wait)
        held = asyncio.ensure_future(store.checkpoint(rec("r"), []))
        for _ in range(2):
            await asyncio.sleep(0)
        with anyio.fail_after(10):
            await store.close()  # one last try, then the held write fails as in a crash
        assert held.done() and isinstance(held.exception(), Exception)
    finally:
        lock.release.set()
        await anyio.to_thread.run_sync(lock.thread.join)
