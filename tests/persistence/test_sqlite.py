"""The SQLite store: file setup, schema and migrations, precise errors, group commit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from wayline import StoreError
from wayline._errors import DatabaseCorruptError, DatabaseLockedError, SchemaVersionError
from wayline.persistence import RunRecord, RunStarted, RunStatus, SQLiteStore, StepStarted, StepSucceeded
from wayline.persistence._schema import SCHEMA_VERSION

pytestmark = pytest.mark.anyio


def rec(run_id: str, **kw: Any) -> RunRecord:
    kw.setdefault("status", RunStatus.RUNNING)
    return RunRecord(run_id=run_id, workflow="wf", created_at=1.0, **kw)


def pragma(path: Path, name: str) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


async def test_new_database_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SQLiteStore(path)
    await store.start()
    try:
        await store.create_run(rec("r", history_seq=1), [RunStarted(ts=0.0, workflow="wf", version="1")])
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        # the WAL and shared-memory files hold the same data: they must not be wider
        for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            if extra.exists():
                assert stat.S_IMODE(os.stat(extra).st_mode) & 0o077 == 0, extra
    finally:
        await store.close()


async def test_wal_full_sync_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.start()
    try:
        assert pragma(path, "journal_mode") == "wal"  # persistent: seen by any connection
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert {"runs", "history"} <= tables(path)
        # synchronous is per connection: read it from the writer's own connection
        assert store._wconn is not None
        assert store._wconn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        await store.close()


async def test_synchronous_is_configurable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "n.db", synchronous="NORMAL")
    await store.start()
    try:
        assert store._wconn is not None
        assert store._wconn.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        await store.close()


async def test_migrates_a_version_0_database_and_keeps_foreign_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE app_data (x INTEGER)")
    conn.execute("INSERT INTO app_data VALUES (42)")
    conn.commit()
    conn.close()
    assert pragma(path, "user_version") == 0
    store = SQLiteStore(path)
    await store.start()
    try:
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert {"runs", "history", "app_data"} <= tables(path)
        await store.create_run(rec("r"), [])
        assert await store.get_run("r") == rec("r")
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT x FROM app_data").fetchall() == [(42,)]
    conn.close()


async def test_migrates_every_older_version_keeping_its_runs(tmp_path: Path) -> None:
    from wayline.persistence._schema import MIGRATIONS

    fixture = (Path(__file__).parent / "fixtures" / "run_record_v1.msgpack").read_bytes()
    for old in range(1, SCHEMA_VERSION):
        path = tmp_path / f"v{old}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        for number in range(1, old + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {old}")
        # a run as the first release stored it
        conn.execute(
            "INSERT INTO runs (run_id, workflow, status, created_at, wake_at, snapshot) VALUES (?, ?, ?, ?, ?, ?)",
            ("o-1", "order", "WAITING", 1.5, 3601.5, fixture),
        )
        conn.close()
        store = SQLiteStore(path)
        await store.start()
        try:
            assert pragma(path, "user_version") == SCHEMA_VERSION
            got = await store.get_run("o-1")
            assert got is not None and got.vars["order_id"] == "o-1"
            assert [r.run_id for r in await store.list_runs(statuses=[RunStatus.WAITING])] == ["o-1"]
        finally:
            await store.close()


async def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "re.db"
    for i in range(2):
        store = SQLiteStore(path)
        await store.start()
        try:
            await store.create_run(rec(f"r{i}"), [])
            assert [r.run_id for r in await store.list_runs()] == [f"r{j}" for j in range(i + 1)]
        finally:
            await store.close()
    assert pragma(path, "user_version") == SCHEMA_VERSION


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()
    store = SQLiteStore(path)
    with pytest.raises(SchemaVersionError) as info:
        await store.start()
    assert info.value.found == SCHEMA_VERSION + 7
    assert info.value.supported == SCHEMA_VERSION
    assert info.value.path == str(path)
    assert "upgrade wayline" in str(info.value)
    assert pragma(path, "user_version") == SCHEMA_VERSION + 7  # untouched


async def test_current_version_without_tables_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    with pytest.raises(DatabaseCorruptError, match="missing tables: ") as info:
        await SQLiteStore(path).start()
    assert "history" in str(info.value) and "runs" in str(info.value)


async def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is definitely not a SQLite database file" * 200)
    with pytest.raises(DatabaseCorruptError) as info:
        await SQLiteStore(path).start()
    assert info.value.path == str(path)
    assert "backup" in str(info.value)


async def test_locked_database_raises_database_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")  # rollback journal: EXCLUSIVE blocks everyone
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = SQLiteStore(path, busy_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(DatabaseLockedError) as info:
            await store.start()
        assert time.monotonic() - started < 5
        assert info.value.path == str(path)
        assert "0.2s" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # once the lock is gone the same file opens fine
    store = SQLiteStore(path, busy_timeout=0.2)
    await store.start()
    await store.close()


async def test_unwritable_location_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await SQLiteStore(tmp_path / "no" / "such" / "dir" / "x.db").start()


async def test_group_commit_batches_concurrent_checkpoints_and_returns_after_commit(tmp_path: Path) -> None:
    n = 1000
    path = tmp_path / "group.db"
    store = SQLiteStore(path)
    await store.start()
    # Count real transactions where the writer runs each (BEGIN ... COMMIT), with its size. Not
    # with a trace callback on its connection: the sqlite3 module expands the whole multi-row
    # statement for every trigger that fires on every row, which took this test 25 s, not 1.
    commits: list[int] = []
    writer = store._writes
    write_batch = writer._write_batch_blocking

    def counted(batch: Any) -> Any:
        commits.append(batch.size)
        return write_batch(batch)

    writer._write_batch_blocking = counted  # type: ignore[method-assign]
    observer = sqlite3.connect(path, isolation_level=None)  # not the store's connections
    decoder = msgspec.msgpack.Decoder(RunRecord)
    try:
        await asyncio.gather(*(store.create_run(rec(f"r{i}"), []) for i in range(n)))
        commits.clear()
        seen_unreadable: list[str] = []

        async def one(i: int) -> None:
            record = rec(f"r{i}", history_seq=1, vars={"i": i}, steps=1)
            await store.checkpoint(record, [StepSucceeded(ts=1.0, step="s", index=0, attempt=1, result=i)])
            # right after the await (no other await in between): committed and visible
            row = observer.execute("SELECT snapshot FROM runs WHERE run_id = ?", (f"r{i}",)).fetchone()
            hist = observer.execute("SELECT count(*) FROM history WHERE run_id = ?", (f"r{i}",)).fetchone()
            if decoder.decode(row[0]).vars != {"i": i} or hist[0] != 1:
                seen_unreadable.append(f"r{i}")
            if i % 50 == 0:  # and from a brand-new connection too
                fresh = sqlite3.connect(path)
                try:
                    snap = fresh.execute("SELECT snapshot FROM runs WHERE run_id = ?", (f"r{i}",)).fetchone()
                finally:
                    fresh.close()
                if decoder.decode(snap[0]).vars != {"i": i}:
                    seen_unreadable.append(f"fresh r{i}")

        await asyncio.gather(*(one(i) for i in range(n)))
        assert seen_unreadable == []
        assert sum(commits) == n  # every checkpoint, in a counted transaction
        assert 1 <= len(commits) <= n // 20, len(commits)  # far fewer transactions than writes
        assert store.pending == 0
    finally:
        observer.close()
        await store.close()


async def test_close_waits_for_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "drain.db"
    store = SQLiteStore(path)
    await store.start()
    tasks = [asyncio.ensure_future(store.create_run(rec(f"r{i}"), [])) for i in range(300)]
    await asyncio.sleep(0)  # submitted, maybe not committed
    await store.close()
    assert all(t.done() and t.exception() is None for t in tasks)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 300
    conn.close()


async def test_write_after_close_raises(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    await store.start()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.create_run(rec("r"), [])


async def test_history_is_readable_while_writes_are_in_flight(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "rw.db")
    await store.start()
    try:
        await store.create_run(rec("r", history_seq=1), [RunStarted(ts=0.0, workflow="wf", version="1")])
        writes = [
            asyncio.ensure_future(
                store.checkpoint(rec("r", history_seq=i + 2), [StepStarted(ts=0.0, step="s", index=i, attempt=1)])
            )
            for i in range(50)
        ]
        history = await store.get_history("r")
        assert history[0] == RunStarted(ts=0.0, workflow="wf", version="1")
        await asyncio.gather(*writes)
        assert len(await store.get_history("r")) == 51
    finally:
        await store.close()


class CommitBetweenReads(SQLiteStore):
    """Lands a given write between get_history's two reads, as a concurrent commit can."""

    between: Any = None

    async def get_run(self, run_id: str) -> RunRecord | None:
        hook, self.between = self.between, None
        if hook is not None:
            await hook()
        return await super().get_run(run_id)


async def test_history_read_is_atomic_against_a_tail_flush(tmp_path: Path) -> None:
    store = CommitBetweenReads(tmp_path / "race.db")
    await store.start()
    try:
        events = (RunStarted(ts=0.0, workflow="wf", version="1"), StepStarted(ts=1.0, step="s", index=0, attempt=1))
        await store.create_run(rec("r", tail=events), [])
        # the run's next checkpoint moves its tail into history row 0

        async def flush_tail() -> None:
            await store.checkpoint(rec("r", history_seq=1, tail=()), list(events))

        store.between = flush_tail
        seen = await store.get_history("r")
        assert await store.get_history("r") == list(events)  # true both before and after
        assert seen == list(events)
    finally:
        await store.close()


# Run in a child process: the bug makes the store hang, and a hung store's threads would
# keep the test process from exiting.
_DISK_FULL_SCRIPT = """
import asyncio, os, sys
from wayline._errors import StoreUnavailableError
from wayline.persistence import RunRecord, RunStatus, SQLiteStore

def rec(run_id, **kw):
    return RunRecord(run_id=run_id, workflow="wf", status=RunStatus.RUNNING, created_at=1.0, **kw)

async def main(path):
    store = SQLiteStore(path)
    await store.start()
    await store.create_run(rec("kept", vars={"v": 1}), [])
    pages = store._wconn.execute("PRAGMA page_count").fetchone()[0]
    store._wconn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is nearly full
    big = "x" * 200_000
    try:
        await store.create_run(rec("huge", input=big), [])
    except StoreUnavailableError as exc:  # a create fails at once, storing nothing
        assert "full" in str(exc) and "nothing was stored" in str(exc).lower(), exc
    else:
        raise AssertionError("no error on a full database")
    assert await store.get_run("huge") is None  # rolled back whole
    assert await store.get_run("kept") == rec("kept", vars={"v": 1})
    # a checkpoint is not failed: it waits, held, while the database cannot take it
    held = asyncio.ensure_future(store.checkpoint(rec("kept", vars={"v": big}), []))
    while store.health().held == 0:
        await asyncio.sleep(0)
    health = store.health()
    assert health.status == "degraded" and health.cause == "disk_full", health
    assert not held.done()
    assert await store.get_run("kept") == rec("kept", vars={"v": 1})
    store._wconn.execute("PRAGMA max_page_count = 1073741823")  # space was freed
    await held  # committed by a retry
    assert store.health().ok, store.health()
    assert (await store.get_run("kept")).vars == {"v": big}
    await store.create_run(rec("huge", input=big), [])
    assert (await store.get_run("huge")).input == big
    await store.close()

try:
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 20))
except BaseException:
    import traceback
    traceback.print_exc()
    print("FAILED", flush=True)
    os._exit(3)  # a store left open keeps the process from exiting
print("OK", flush=True)
"""


def test_full_database_raises_store_error_and_loses_nothing_committed(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path / "full.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "OK", (done.stdout, done.stderr[-2000:])


@pytest.mark.parametrize("query", ["DUE_RUNS", "NEXT_WAKE"])
async def test_timer_queries_read_the_wake_index_not_every_waiting_run(tmp_path: Path, query: str) -> None:
    # Through runs_by_status they would scan all waiting runs at each timer wake-up
    # (200 ms with a million of them); through runs_by_wake only the due ones.
    from wayline.persistence import _sqlite_sql

    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.start()
    await store.close()
    sql = getattr(_sqlite_sql, query)
    params = (1.0, RunStatus.WAITING.value, 10)[: sql.count("?")]
    conn = sqlite3.connect(path)
    try:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()
    assert "USING INDEX runs_by_wake" in plan, plan


def test_stores_opening_one_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # Each store migrates from its own writer thread; a migration another store applied after
    # this one read the version must be skipped, not applied twice ("already exists").
    from wayline.persistence._sqlite_connect import open_write_connection

    for attempt in range(30):
        path = tmp_path / f"new{attempt}.db"
        count = 6
        ready = threading.Barrier(count)
        errors: list[BaseException] = []
        conns: list[sqlite3.Connection] = []

        def open_writer(
            ready: threading.Barrier, errors: list[BaseException], conns: list[sqlite3.Connection], path: Path = path
        ) -> None:
            ready.wait()
            try:
                conns.append(open_write_connection(str(path), "FULL", 5.0))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_writer, args=(ready, errors, conns)) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for conn in conns:
            conn.close()
        assert errors == []
        assert pragma(path, "user_version") == SCHEMA_VERSION
