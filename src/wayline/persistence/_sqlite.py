"""The default store: one SQLite file in WAL mode, with group commit.

Writes go through one dedicated writer thread with its own connection. Callers enqueue
already-encoded rows and await a future; the writer takes everything queued, writes it in a
single transaction, commits (one fsync for the whole batch under ``synchronous=FULL``) and
resolves every caller's future. One thread hop per batch, not per statement, is what lets
thousands of runs checkpoint per fsync. Reads use a separate aiosqlite connection, so they
never wait behind a commit (WAL lets readers run beside the writer).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

import aiosqlite
import msgspec
from opentelemetry.metrics import MeterProvider

from .._errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    DatabaseOwnedError,
    PayloadError,
    SchemaVersionError,
    StoreError,
)
from ._codec import decode_events, decode_inbox, decode_record, encode, encode_raw
from ._leases import SingleOwner
from ._metrics import CheckpointMetrics, resolve_meter_provider
from ._records import UNFINISHED, AnyEvent, InboxMessage, RunRecord, RunStatus
from ._schema import MIGRATIONS, REQUIRED_TABLES, SCHEMA_VERSION

log = logging.getLogger("wayline.store")

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# One row per run: a create inserts it, a checkpoint replaces its mutable columns.
_UPSERT_RUN_HEAD = "INSERT INTO runs (run_id, workflow, status, created_at, wake_at, snapshot) VALUES "
_UPSERT_RUN_TAIL = (
    " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, wake_at = excluded.wake_at, "
    "snapshot = excluded.snapshot"
)
_INSERT_HISTORY_HEAD = "INSERT INTO history (run_id, seq, events) VALUES "
# A message is stored only for a run that exists and has not finished, in the transaction that
# stores it: the final checkpoint of a run deletes its messages, and none can come after.
_APPEND_INBOX = (
    "INSERT INTO inbox (run_id, message) SELECT ?, ? "
    "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ? AND status IN ("
    + ", ".join(f"'{status.value}'" for status in UNFINISHED)
    + "))"
)
# The timer index. The unary + on status keeps SQLite off runs_by_status, which it would pick
# for the equality and which scans every waiting run (200 ms at a million, at each timer
# wake-up); runs_by_wake reads only the runs that are due.
DUE_RUNS = (
    "SELECT run_id, wake_at FROM runs WHERE wake_at IS NOT NULL AND wake_at <= ? AND +status = ? "
    "ORDER BY wake_at LIMIT ?"
)
NEXT_WAKE = "SELECT MIN(wake_at) FROM runs WHERE wake_at IS NOT NULL AND wake_at > ? AND +status = ?"
# Bound parameters per statement: SQLite's default limit since 3.32 is 32766. Few, large
# statements matter: the writer thread re-takes the GIL after every statement, and while the
# event loop is busy each re-take can wait a whole switch interval (5 ms).
_MAX_PARAMS = 30000
# Queue length at which a batch starts at once, overlapping the loop's work, instead of at
# the end of the current loop iteration.
_EAGER_BATCH = 2048


def _encodable(value: Any) -> bool:
    try:
        encode_raw(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _insert_rows(conn: sqlite3.Connection, head: str, tail: str, width: int, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with as few multi-row statements as possible."""
    if not rows:
        return
    one = _row_marks(width)
    if len(rows) == 1:
        # A run stepping alone pays this on every step: no list building, and one text that
        # the sqlite3 module's statement cache keeps compiled.
        conn.execute(head + one + tail, rows[0])
        return
    limit = min(_MAX_PARAMS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    for chunk in _chunks(rows, max(1, limit // width)):
        sql = head + ", ".join([one] * len(chunk)) + tail
        conn.execute(sql, [value for row in chunk for value in row])


@functools.cache
def _row_marks(width: int) -> str:
    return "(" + ", ".join("?" * width) + ")"


class _Batch:
    """The writes queued for one transaction.

    Checkpoints, the bulk of the traffic, are kept as flat lists of rows (the runs upsert,
    the history inserts, the inbox deletions) plus one waiter each: no object per
    checkpoint beyond its row and its future. Creates and inbox appends, which answer each
    caller with a result of its own, keep one entry each.
    """

    __slots__ = ("appends", "consumed", "creates", "ended", "history", "runs", "size", "waiters")

    def __init__(self) -> None:
        self.runs: list[tuple[Any, ...]] = []  # checkpointed runs' rows
        self.history: list[tuple[str, int, bytes]] = []
        self.consumed: list[int] = []
        self.ended: list[str] = []  # runs whose checkpoint finishes them: their inbox goes
        self.waiters: list[asyncio.Future[None]] = []
        # (row, history row or None, future resolved with the existing snapshot or None)
        self.creates: list[tuple[tuple[Any, ...], tuple[str, int, bytes] | None, asyncio.Future[Any]]] = []
        self.appends: list[tuple[tuple[str, bytes], asyncio.Future[Any]]] = []  # future gets the seq
        self.size = 0

    def futures(self) -> list[asyncio.Future[Any]]:
        return [*self.waiters, *(c[2] for c in self.creates), *(a[1] for a in self.appends)]


class _WriterThread:
    """The thread that owns the write connection: it runs the jobs it is given one at a time
    and reports each outcome to the event loop.

    A plain thread on a `queue.SimpleQueue` rather than a `ThreadPoolExecutor`: a job costs
    one queue put there and one ``call_soon_threadsafe`` back, with no concurrent future,
    work item or condition variable in between. For one run stepping alone, that hand-off
    is paid on every step, next to a single fsync.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]] | None]
        self._jobs = queue.SimpleQueue()
        # A daemon: if the process exits without closing the store, whatever was committed is
        # durable and the rest is lost exactly as in a crash, instead of hanging the exit.
        self._thread = threading.Thread(target=self._work, name="wayline-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``fn()`` on the thread, then ``done(result, None)`` or ``done(None, exc)`` on
        the event loop."""
        self._jobs.put((fn, done))

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn()`` on the thread; a future of its result."""
        fut: asyncio.Future[T] = self._loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

        self.submit(fn, done)
        return fut

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread (blocks until it has)."""
        self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, done = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:
                error = exc
            try:
                self._loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


class SQLiteStore(SingleOwner):
    """A `Store` on one SQLite file.

    Args:
        path: the database file; created with owner-only permissions (0600) if missing.
        synchronous: SQLite's ``synchronous`` pragma. ``FULL`` (the default) fsyncs every
            commit, so a committed checkpoint survives power loss, not only a process crash.
        busy_timeout: seconds to wait for a lock held by another connection before failing
            with `DatabaseLockedError`.
        meter_provider: where the group commit reports its latency and batch sizes
            (OpenTelemetry); the global provider by default, nothing if none is configured.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._writer: _WriterThread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue = _Batch()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight = False  # a batch is being written by the writer thread
        self._flush_scheduled = False
        self._drained: asyncio.Future[None] | None = None
        self._closing = False
        self._open = False
        self._pending = 0
        self._owner_fd: int | None = None
        provider = resolve_meter_provider(meter_provider)
        self._metrics = CheckpointMetrics(provider) if provider is not None else None
        self._queued_at = 0.0  # when the oldest queued write was queued (metrics only)
        self._batch_queued_at = 0.0  # the same, for the batch being written

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._pending

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = _WriterThread(loop)
        try:
            await self._writer.call(self._open_writer)
            self._reader = await aiosqlite.connect(self.path, timeout=self.busy_timeout)
        except BaseException:
            await self._release()
            raise
        self._closing = False
        self._loop = loop
        self._open = True

    def claim_ownership(self) -> None:
        """Become the one runtime that runs this database's runs, until `close`.

        An advisory lock on ``<path>.owner`` (flock: the kernel drops it when the process dies,
        even by SIGKILL). Clients that only start, signal or read runs do not claim it.

        Raises:
            DatabaseOwnedError: another runtime holds it.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no guard
            return
        # The real path: the same file reached through a symlink must meet the same lock.
        fd = os.open(os.path.realpath(self.path) + ".owner", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DatabaseOwnedError(self.path) from None
        self._owner_fd = fd

    async def close(self) -> None:
        self._closing = True
        if self._open and (self._inflight or self._queue.size):
            self._drained = asyncio.get_running_loop().create_future()
            if not self._inflight:
                self._flush()
            await self._drained
        self._open = False
        await self._release()

    async def _release(self) -> None:
        if self._owner_fd is not None:
            fd, self._owner_fd = self._owner_fd, None
            os.close(fd)  # closing the descriptor drops its flock
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            if self._wconn is not None:
                conn, self._wconn = self._wconn, None
                await writer.call(conn.close)
            writer.stop()

    def _open_writer(self) -> None:
        """Runs in the writer thread: create the file, set pragmas, migrate."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create database {self.path!r}: {exc}", path=self.path) from exc
        else:
            os.close(fd)
        try:
            # Zero busy timeout: waits for other processes' locks are done by `_retry_locked`
            # in the writer thread, which checks its deadline between tries.
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # A group commit of thousands of snapshots touches thousands of pages: a 32 MiB
            # page cache (SQLite's default is 2 MiB) keeps them in memory between batches
            # (~20% less insert time at 10,000 runs). It grows only as pages are used.
            conn.execute("PRAGMA cache_size = -32768")
            # Copy the WAL back into the database every 4,096 pages (16 MiB) rather than
            # 1,000: one such batch can exceed 1,000 pages, so every commit would pay for a
            # checkpoint; batched, the pages rewritten by successive batches are copied once.
            conn.execute("PRAGMA wal_autocheckpoint = 4096")
            self._retry_locked(lambda: self._migrate(conn))
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._wconn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(self.path, version, SCHEMA_VERSION)
        if version > 0:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = REQUIRED_TABLES - tables
            # Tables added by migrations not applied yet are legitimately absent.
            if missing and version == SCHEMA_VERSION:
                raise DatabaseCorruptError(self.path, f"missing tables: {', '.join(sorted(missing))}")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another connection opening the same new
                # file may have applied this migration since the version was first read.
                if conn.execute("PRAGMA user_version").fetchone()[0] < number:
                    for statement in MIGRATIONS[number - 1]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _translate(self, exc: BaseException) -> StoreError:
        """Turn a sqlite3 error into the precise `StoreError` a user can act on."""
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return DatabaseLockedError(self.path, self.busy_timeout)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return DatabaseCorruptError(self.path, str(exc))
        if "full" in text:
            return StoreError(
                f"database {self.path!r}: disk or database full ({exc}); free space and retry — "
                "the failed write was rolled back and nothing committed was lost",
                path=self.path,
            )
        return StoreError(f"database {self.path!r}: {exc}", path=self.path)

    # --- writes (group commit) -----------------------------------------------------------

    def _submit(self) -> _Batch:
        """The batch to add one write to; call `_queued` once it is added."""
        if self._closing or not self._open:
            raise StoreError(f"database {self.path!r} is closed", path=self.path)
        return self._queue

    def _queued(self) -> None:
        queue = self._queue
        if self._metrics is not None and not queue.size:
            self._queued_at = time.perf_counter()
        queue.size += 1
        self._pending += 1
        if self._inflight:
            return  # joins the next batch, written as soon as this one commits
        if queue.size >= _EAGER_BATCH:
            # Enough to be worth a transaction: start writing now, on the other core, while
            # the event loop goes on producing the next batch.
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if not self._inflight and self._queue.size:
            self._flush()
        elif not self._inflight and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _retry_locked(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` (in the writer thread), retrying while another connection holds the lock."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def _flush(self) -> None:
        """Write everything queued as one transaction, in the writer thread.

        The whole transaction (BEGIN, the inserts, COMMIT and its fsync) runs there, on the
        other core, while the event loop goes on producing the next batch. The inserts are a
        few multi-row statements (see `_insert_rows`), and SQLite releases the GIL while it
        executes each, so the loop waits for the writer only at those few hand-offs.
        """
        batch, self._queue = self._queue, _Batch()
        self._inflight = True
        self._batch_queued_at = self._queued_at
        assert self._writer is not None
        self._writer.submit(partial(self._write_batch_blocking, batch), partial(self._flushed, batch))

    def _fail_batch(self, batch: _Batch, exc: BaseException) -> None:
        self._inflight = False
        self._pending -= batch.size
        if self._metrics is not None:
            self._metrics.committed(batch.size, time.perf_counter() - self._batch_queued_at, ok=False)
        self._fail(batch, exc)
        self._schedule_flush()

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        error = self._translate(exc) if isinstance(exc, sqlite3.Error) else exc
        for fut in batch.futures():
            if not fut.done():
                fut.set_exception(error)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)

    def _commit(self, results: list[Any]) -> list[Any]:
        conn = self._wconn
        assert conn is not None
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _write_batch_blocking(self, batch: _Batch) -> list[Any]:
        conn = self._wconn
        assert conn is not None
        self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            results = self._insert(batch)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return self._commit(results)

    def _flushed(self, batch: _Batch, results: list[Any] | None, exc: BaseException | None) -> None:
        """Back on the event loop: wake every caller of the batch, then write the next."""
        self._inflight = False
        self._pending -= batch.size
        if self._metrics is not None:
            self._metrics.committed(batch.size, time.perf_counter() - self._batch_queued_at, ok=exc is None)
        if exc is None:
            for fut in batch.waiters:
                if not fut.done():
                    fut.set_result(None)
            if batch.creates or batch.appends:
                callers = [c[2] for c in batch.creates] + [a[1] for a in batch.appends]
                assert results is not None
                for fut, result in zip(callers, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        else:
            self._fail(batch, exc)
        if self._queue.size >= _EAGER_BATCH:
            self._flush()
        elif self._queue.size or self._drained is None:
            # The runs just woken go first: each queues its next checkpoint before this
            # flush runs, so they share one transaction instead of trickling in tiny ones.
            self._schedule_flush()
        elif not self._drained.done():
            self._drained.set_result(None)

    async def create_run(self, record: RunRecord, events: Sequence[AnyEvent]) -> RunRecord | None:
        snapshot = encode(record, what=f"input of run {record.run_id!r}", run_id=record.run_id)
        rows = encode(list(events), what=f"history of run {record.run_id!r}", run_id=record.run_id) if events else None
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        row = (record.run_id, record.workflow, record.status.value, record.created_at, record.wake_at, snapshot)
        self._submit().creates.append((row, None if rows is None else (record.run_id, 0, rows), fut))
        self._queued()
        existing = await fut
        return None if existing is None else decode_record(existing)

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        # A plain function returning the commit future: with thousands of runs waiting on
        # commits, one coroutine frame fewer per waiting run is measurable GC work saved.
        run_id = record.run_id
        try:
            snapshot = encode_raw(record)
            rows = encode_raw(list(events)) if events else None
        except (TypeError, ValueError, OverflowError) as exc:
            # The message is only built here: this runs for every step of every run.
            what = "history" if _encodable(record) else "state"
            raise PayloadError(f"{what} of run {run_id!r}", str(exc), run_id=run_id) from exc
        batch = self._submit()
        if rows is not None:
            batch.history.append((run_id, record.history_seq - 1, rows))
        if consumed:
            batch.consumed.extend(consumed)
        if record.status.finished:
            batch.ended.append(run_id)
        # The status member is a str; a run with no waits has no wake time (the common case).
        wake_at = record.wake_at if record.waits else None
        batch.runs.append((run_id, record.workflow, record.status, record.created_at, wake_at, snapshot))
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        batch.waiters.append(fut)
        self._queued()
        return fut

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        data = encode(message, what=f"a message for run {run_id!r}", run_id=run_id)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._submit().appends.append(((run_id, data), fut))
        self._queued()
        seq: int | None = await fut
        return seq

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        rows = await self._fetch(
            "SELECT seq, run_id, message FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(s, run_id, decode_inbox(data)) for s, run_id, data in rows]

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        rows = await self._fetch(DUE_RUNS, (until, RunStatus.WAITING.value, limit))
        return [(run_id, wake_at) for run_id, wake_at in rows]

    async def next_wake(self, after: float) -> float | None:
        rows = await self._fetch(NEXT_WAKE, (after, RunStatus.WAITING.value))
        return rows[0][0] if rows else None

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        rows = await self._fetch("SELECT seq, message FROM inbox WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(seq, decode_inbox(data)) for seq, data in rows]

    def _insert(self, batch: _Batch) -> list[Any]:
        """Apply a batch inside the open transaction. Returns the results of its creates
        (the existing snapshot if the run exists, else None), then of its inbox appends
        (the new message's seq)."""
        conn = self._wconn
        assert conn is not None
        results: list[Any] = []
        runs = batch.runs
        history = batch.history
        if batch.creates:
            # A run exists if it is in the database or created earlier in this same batch.
            # A run's checkpoints only follow its committed create, so creates go first.
            existing = self._existing([row[0] for row, _, _ in batch.creates])
            created: list[tuple[Any, ...]] = []
            started: list[tuple[str, int, bytes]] = []
            for row, events, _ in batch.creates:
                found = existing.get(row[0])
                results.append(found)
                if found is None:
                    existing[row[0]] = row[5]
                    created.append(row)
                    if events is not None:
                        started.append(events)
            runs = created + runs
            history = started + history
        _insert_rows(conn, _UPSERT_RUN_HEAD, _UPSERT_RUN_TAIL, 6, runs)
        _insert_rows(conn, _INSERT_HISTORY_HEAD, "", 3, history)
        if batch.consumed:
            for chunk in _chunks(batch.consumed, 10000):
                conn.execute(f"DELETE FROM inbox WHERE seq IN ({', '.join('?' * len(chunk))})", chunk)
        if batch.ended:
            for chunk in _chunks(batch.ended, 10000):
                conn.execute(f"DELETE FROM inbox WHERE run_id IN ({', '.join('?' * len(chunk))})", chunk)
        for (run_id, data), _ in batch.appends:  # inbox appends are few: one statement each, for their seq
            cursor = conn.execute(_APPEND_INBOX, (run_id, data, run_id))
            results.append(cursor.lastrowid if cursor.rowcount else None)
        return results

    def _existing(self, run_ids: list[str]) -> dict[str, bytes]:
        """Snapshots of those of ``run_ids`` that already exist (usually none)."""
        conn = self._wconn
        assert conn is not None
        found: dict[str, bytes] = {}
        for chunk in _chunks(list(dict.fromkeys(run_ids)), 10000):
            marks = ", ".join("?" * len(chunk))
            for run_id, snapshot in conn.execute(f"SELECT run_id, snapshot FROM runs WHERE run_id IN ({marks})", chunk):
                found[run_id] = snapshot
        return found

    # --- reads ---------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._reader is None:
            raise StoreError(f"database {self.path!r} is closed", path=self.path)
        self._pending += 1
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            self._pending -= 1

    def _decode(self, run_id: str, data: bytes) -> RunRecord:
        try:
            return decode_record(data)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self.path, f"the snapshot of run {run_id!r} cannot be decoded: {exc}") from exc

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch("SELECT snapshot FROM runs WHERE run_id = ?", (run_id,))
        return self._decode(run_id, rows[0][0]) if rows else None

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        # One statement, so one read snapshot: rows and tail cannot straddle a checkpoint
        # that moves the tail into a new row.
        rows = await self._fetch(
            "SELECT 0, seq, events FROM history WHERE run_id = ? "
            "UNION ALL SELECT 1, 0, snapshot FROM runs WHERE run_id = ? ORDER BY 1, 2",
            (run_id, run_id),
        )
        out: list[AnyEvent] = []
        try:
            for kind, _, data in rows:
                out.extend(decode_events(data) if kind == 0 else decode_record(data).tail)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self.path, f"the history of run {run_id!r} cannot be decoded: {exc}") from exc
        return out

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        marks = ", ".join("?" * len(statuses))
        rows = await self._fetch(f"SELECT COUNT(*) FROM runs WHERE status IN ({marks})", [s.value for s in statuses])
        return int(rows[0][0])

    async def list_runs(
        self,
        *,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(s.value for s in statuses)
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        condition = " WHERE " + " AND ".join(where) if where else ""
        order = " ORDER BY created_at DESC, run_id DESC" if newest_first else " ORDER BY created_at, run_id"
        if limit is None:
            sql = "SELECT run_id, snapshot FROM runs" + condition + order
        else:
            # The rows are picked without their snapshots (a sort would carry every matching
            # snapshot along), then only the chosen ones are read.
            sql = (
                "SELECT run_id, snapshot FROM runs WHERE rowid IN "
                f"(SELECT rowid FROM runs{condition}{order} LIMIT ?){order}"
            )
            params.append(limit)
        out = []
        for run_id, data in await self._fetch(sql, params):
            try:
                out.append(self._decode(run_id, data))
            except DatabaseCorruptError as exc:
                # One damaged row must not hide (or stop the recovery of) every other run;
                # reading that run alone still raises.
                log.error("%s; it is left out of the listing", exc, extra={"run_id": run_id})
        return out
