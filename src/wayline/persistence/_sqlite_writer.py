"""Group commit: the writer thread that owns the write connection, and the queue it drains.

Callers enqueue already-encoded rows and await a future; the writer takes everything queued,
writes it in a single transaction, commits (one fsync for the whole batch under
``synchronous=FULL``) and resolves every caller's future. One thread hop per batch, not per
statement, is what lets thousands of runs checkpoint per fsync.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from .._errors import DatabaseDeletedError, StoreError, StoreUnavailableError
from ._metrics import CheckpointMetrics
from ._records import RunStatus
from ._sqlite_connect import retry_locked
from ._sqlite_errors import outage, translate
from ._sqlite_ownership import Identity, file_gone, readable_copy
from ._sqlite_sql import (
    APPEND_INBOX,
    INSERT_BLOB_HEAD,
    INSERT_HISTORY_HEAD,
    INSERT_HISTORY_TAIL,
    INSERT_RUN_BLOB_HEAD,
    RUN_WIDTH,
    UPSERT_RUN_HEAD,
    UPSERT_RUN_TAIL,
    UPSERT_SNAPSHOT_TAIL,
    chunks,
    insert_rows,
    marks,
)
from ._store import HEALTHY, WAIT_FOR_STORE, StoreHealth

T = TypeVar("T")

log = logging.getLogger("wayline.store")

# Queue length at which a batch starts at once, overlapping the loop's work, instead of at
# the end of the current loop iteration.
EAGER_BATCH = 2048

HistoryRow = tuple[str, int, bytes]
#: A write's new blobs (digest, size, data) and new references (run_id, digest), if any.
BlobRows = tuple[list[tuple[str, int, bytes]], list[tuple[str, str]]] | None


class Batch:
    """The writes queued for one transaction.

    Checkpoints, the bulk of the traffic, are kept as flat lists of rows (the runs upsert,
    the history inserts, the inbox deletions) plus one waiter each: no object per
    checkpoint beyond its row and its future. Creates and inbox appends, which answer each
    caller with a result of its own, keep one entry each.
    """

    __slots__ = ("appends", "blobs", "consumed", "creates", "ended", "history", "refs", "runs", "size", "waiters")

    def __init__(self) -> None:
        self.blobs: list[tuple[str, int, bytes]] = []  # (digest, size, data): large values, stored once
        self.refs: list[tuple[str, str]] = []  # (run_id, digest): a run refers to a blob
        self.runs: list[tuple[Any, ...]] = []  # checkpointed runs' rows
        self.history: list[HistoryRow] = []
        self.consumed: list[int] = []
        self.ended: list[str] = []  # runs whose checkpoint finishes them: their inbox goes
        self.waiters: list[asyncio.Future[None]] = []
        # (row, history row or None, future resolved with the existing snapshot or None,
        # whether it waits through an outage)
        self.creates: list[tuple[tuple[Any, ...], HistoryRow | None, asyncio.Future[Any], bool]] = []
        # ((run_id, message), future resolved with the seq, whether it waits through an outage)
        self.appends: list[tuple[tuple[str, bytes], asyncio.Future[Any], bool]] = []
        self.size = 0

    def futures(self) -> list[asyncio.Future[Any]]:
        return [*self.waiters, *(c[2] for c in self.creates), *(a[1] for a in self.appends)]

    def hold(self, later: Batch) -> list[asyncio.Future[Any]]:
        """Keep what waits through an outage (checkpoints, and the creates and appends of
        runs), followed by ``later``'s writes, as the one batch to retry; returns the futures
        of the writes that must fail fast instead (taken out of this batch)."""
        creates, appends = self.creates + later.creates, self.appends + later.appends
        refused = [c[2] for c in creates if not c[3]] + [a[1] for a in appends if not a[2]]
        self.creates = [c for c in creates if c[3]]
        self.appends = [a for a in appends if a[2]]
        self.runs += later.runs
        self.history += later.history
        self.blobs += later.blobs
        self.refs += later.refs
        self.consumed += later.consumed
        self.ended += later.ended
        self.waiters += later.waiters
        self.size += later.size - len(refused)
        return refused


class WriterThread:
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
            # Not held until the next job: a batch's rows and futures (thousands of runs'
            # snapshots) would stay in memory for as long as the store is idle.
            del job, fn, done
            result = error = None


class GroupCommit:
    """The write side of the store: a queue of writes, drained one transaction at a time by
    the writer thread, which owns the write connection.

    When a batch fails because the database cannot be written *now* (disk full, an I/O
    error, a lock held too long), its checkpoints are not failed: the runs awaiting them
    would crash, spend their restart budget and end FAILED, though nothing is wrong with
    them. The batch is held instead and tried again with backoff, with every checkpoint
    queued meanwhile, until a commit succeeds; the runs wait on their checkpoint as on a slow
    disk. Creates and inbox appends made outside a run fail at once, storing nothing (an API
    caller must learn it now, not after the disk is freed), and so does every new one while
    the retry waits. `health` says what is going on. If the database file is deleted or
    replaced, nothing more is written at all.
    """

    #: Backoff between retries of a held batch: from 0.1 s (a lock that was just released)
    #: doubling to 2 s, so that a freed disk is noticed within 2 s while a long outage costs
    #: one failed transaction every 2 s.
    RETRY_FIRST = 0.1
    RETRY_MAX = 2.0

    def __init__(
        self, path: str, busy_timeout: float, metrics: CheckpointMetrics | None, idle_checkpoint: float | None
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.idle_checkpoint = idle_checkpoint
        self.conn: sqlite3.Connection | None = None
        self._file: tuple[str, Identity] | None = None  # the file opened, to notice it deleted or replaced
        self.pending = 0  # writes queued or being written
        self._writer: WriterThread | None = None
        self._queue = Batch()
        # Runs whose committed row is RUNNING with no wake time (what the writer thread last
        # wrote for them: it is the only writer of the runs table). A checkpoint that keeps
        # them so writes only the snapshot (`UPSERT_SNAPSHOT_TAIL`). Touched on the writer
        # thread alone; a run leaves it when it waits or ends, so it holds the runs stepping.
        self._stepping: set[str] = set()
        self._written: list[tuple[Any, ...]] = []  # the runs rows of the open transaction
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight = False  # a batch is being written by the writer thread
        self._flush_scheduled = False
        self._drained: asyncio.Future[None] | None = None
        self._open = False
        self._metrics = metrics
        self._queued_at = 0.0  # when the oldest queued write was queued (metrics only)
        self._batch_queued_at = 0.0  # the same, for the batch being written
        self._health = HEALTHY
        self._paused = False  # held writes wait for the retry timer
        self._retry_delay = self.RETRY_FIRST
        self._retry_timer: asyncio.TimerHandle | None = None
        self.gone: DatabaseDeletedError | None = None  # the file was deleted: nothing more is written
        self._announced: str | None = None  # the outage cause last logged
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_flush = 0.0  # loop time of the last batch handed to the writer

    # --- lifecycle ---------------------------------------------------------------------

    def watch(self, path: str, identity: Identity | None) -> None:
        """Check before each commit that ``path`` (absolute, symlinks resolved) is still the
        file with ``identity``."""
        self._file = None if identity is None else (path, identity)

    async def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the writer thread and open the write connection with ``connect`` there."""
        loop = asyncio.get_running_loop()
        self._writer = WriterThread(loop)
        self.conn = await self._writer.call(connect)
        self._loop = loop
        self._open = True

    async def close(self) -> None:
        """Write everything queued, then close the connection and end the thread.

        Writes that cannot be committed (the database is still unwritable after one last
        try, or gone) fail with the store's error: they are lost exactly as in a crash, and
        the runs resume from their last committed checkpoint on the next start.
        """
        for timer in (self._retry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._retry_timer = self._idle_timer = None
        self._paused = False
        if self._open and self.gone is not None:
            self._fail_all(self._queue, self.gone)
            self.pending -= self._queue.size
            self._queue = Batch()
        if self._open and (self._inflight or self._queue.size):
            self._drained = asyncio.get_running_loop().create_future()
            self._open = False
            if not self._inflight:
                self._flush()
            await self._drained
        self._open = False
        if self._writer is not None:
            writer, self._writer = self._writer, None
            if self.conn is not None:
                conn, self.conn = self.conn, None
                await writer.call(conn.close)
            writer.stop()

    def health(self) -> StoreHealth:
        health = self._health
        if health.ok:
            return health
        return StoreHealth(health.status, health.cause, health.reason, health.since, self.pending)

    # --- submitting writes -------------------------------------------------------------

    def _batch(self, fail_fast: bool) -> Batch:
        """The batch to add one write to; call `_queued` once it is added. A write that
        would fail fast is refused here while the store cannot write."""
        if not self._open:
            raise StoreError(f"database {self.path!r} is closed", path=self.path)
        if fail_fast:
            if self.gone is not None:
                raise self.gone
            health = self._health
            if self._paused and health.reason is not None:
                raise StoreUnavailableError(self.path, health.reason, health.since or time.time())
        return self._queue

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one write transaction of its own on the writer thread,
        between two batches: for the few writes that are not checkpoints (schedules). It
        fails fast, as a create from outside a run does, while the store cannot write.

        Raises:
            StoreError: closed, gone, unavailable, or the transaction failed (rolled back).
        """
        self._batch(fail_fast=True)  # refuses while closed, gone or held
        assert self._writer is not None

        def run() -> T:
            conn = self.conn
            assert conn is not None
            # What ``fn`` writes is not known here: if it touches a run's row, a later
            # checkpoint must not assume the row is as the last checkpoint left it.
            self._stepping.clear()
            self._check_file()
            retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.busy_timeout)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        self.pending += 1
        try:
            return await self._writer.call(run)
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc
        finally:
            self.pending -= 1

    def create(
        self, row: tuple[Any, ...], history: HistoryRow | None, blobs: BlobRows = None, message: bytes | None = None
    ) -> asyncio.Future[bytes | None]:
        """Insert a run unless it exists; the future gets the existing snapshot, or None.
        ``message`` (encoded) goes to the run's inbox in the same batch, so the same
        transaction (creates are applied first)."""
        waits = WAIT_FOR_STORE.get()
        batch = self._batch(not waits)
        if blobs is not None:
            batch.blobs += blobs[0]
            batch.refs += blobs[1]
        assert self._loop is not None
        fut: asyncio.Future[bytes | None] = self._loop.create_future()
        batch.creates.append((row, history, fut, waits))
        if message is not None:
            appended: asyncio.Future[int | None] = self._loop.create_future()
            # Its outcome is the create's (one transaction): nobody awaits it.
            appended.add_done_callback(lambda f: f.cancelled() or f.exception())
            batch.appends.append(((row[0], message), appended, waits))
            batch.size += 1  # counted here: `_queued` below must not flush between the two
            self.pending += 1
        self._queued()
        return fut

    def checkpoint(
        self,
        row: tuple[Any, ...],
        history: HistoryRow | None,
        consumed: Sequence[int],
        ended: bool,
        blobs: BlobRows = None,
    ) -> asyncio.Future[None]:
        """Replace a run's row, add its history row, delete the consumed inbox messages (and
        every message of a run that ``ended``), store new blobs and the run's references."""
        batch = self._batch(False)
        if blobs is not None:
            batch.blobs += blobs[0]
            batch.refs += blobs[1]
        if history is not None:
            batch.history.append(history)
        if consumed:
            batch.consumed.extend(consumed)
        if ended:
            batch.ended.append(row[0])
        batch.runs.append(row)
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        batch.waiters.append(fut)
        self._queued()
        return fut

    def append(self, run_id: str, data: bytes) -> asyncio.Future[int | None]:
        """Store a message for an unfinished run; the future gets its seq, or None."""
        waits = WAIT_FOR_STORE.get()
        batch = self._batch(not waits)
        assert self._loop is not None
        fut: asyncio.Future[int | None] = self._loop.create_future()
        batch.appends.append(((run_id, data), fut, waits))
        self._queued()
        return fut

    def _queued(self) -> None:
        queue = self._queue
        if self._metrics is not None and not queue.size:
            self._queued_at = time.perf_counter()
        queue.size += 1
        self.pending += 1
        if self._inflight or self._paused or self.gone is not None:
            return  # joins the next batch: written when this one commits, or at the retry
        if queue.size >= EAGER_BATCH:
            # Enough to be worth a transaction: start writing now, on the other core, while
            # the event loop goes on producing the next batch.
            self._flush()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if self._paused or self.gone is not None or self._inflight:
            return
        if self._queue.size:
            self._flush()
        elif self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
        elif self.idle_checkpoint is not None and self._idle_timer is None:
            assert self._loop is not None
            self._idle_timer = self._loop.call_later(self.idle_checkpoint, self._when_idle)

    # --- writing a batch ---------------------------------------------------------------

    def _flush(self) -> None:
        """Write everything queued as one transaction, in the writer thread.

        The whole transaction (BEGIN, the inserts, COMMIT and its fsync) runs there, on the
        other core, while the event loop goes on producing the next batch. The inserts are a
        few multi-row statements (see `insert_rows`), and SQLite releases the GIL while it
        executes each, so the loop waits for the writer only at those few hand-offs.
        """
        batch, self._queue = self._queue, Batch()
        self._inflight = True
        self._batch_queued_at = self._queued_at
        assert self._writer is not None and self._loop is not None
        self._last_flush = self._loop.time()
        self._writer.submit(partial(self._write_batch_blocking, batch), partial(self._flushed, batch))

    def _check_file(self) -> None:
        """In the writer thread, before each transaction: is the database still the file it
        opened? Writing on after ``rm wayline.db*`` would commit into a file no name reaches,
        all lost at exit, while the runtime went on accepting runs."""
        if self._file is None:
            return
        gone = file_gone(*self._file)
        if gone is None:
            return
        conn = self.conn
        assert conn is not None
        try:
            # Everything committed into the unlinked main file, so that a copy of it (from
            # /proc/<pid>/fd while this process lives) holds it all, the log included.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        raise DatabaseDeletedError(self.path, gone, readable_copy(self._file[0]) if gone == "deleted" else None)

    def _write_batch_blocking(self, batch: Batch) -> list[Any]:
        conn = self.conn
        assert conn is not None
        self._check_file()
        retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.busy_timeout)
        try:
            if batch.size:
                results = self._insert(batch)
            else:
                # The probe after an outage with nothing held: rewriting the header's
                # user_version (to the same value) commits one real frame, so it fails as
                # long as SQLite cannot write.
                results = []
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            self._written = []  # rolled back: the rows are as they were
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        written, self._written = self._written, []
        self._committed(written)
        return results

    def _committed(self, rows: list[tuple[Any, ...]]) -> None:
        """Note which runs' rows are now RUNNING with no wake time (see ``_stepping``)."""
        stepping = self._stepping
        running = RunStatus.RUNNING
        for row in rows:
            if row[2] == running and row[4] is None:  # a create's row has the status's value
                stepping.add(row[0])
            else:
                stepping.discard(row[0])

    def _split(self, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The checkpoint rows that must write every column, and those that keep a stepping
        run stepping (only its snapshot changes). A run with two rows in one batch (a batch
        held through an outage) writes both in full, in order."""
        stepping = self._stepping
        if not stepping:
            return rows, []
        running = RunStatus.RUNNING
        full: list[tuple[Any, ...]] = []
        snapshot_only: list[tuple[Any, ...]] = []
        unique = len({row[0] for row in rows}) == len(rows)
        for row in rows:
            if unique and row[2] is running and row[4] is None and row[0] in stepping:
                snapshot_only.append(row)
            else:
                full.append(row)
        return full, snapshot_only

    def _insert(self, batch: Batch) -> list[Any]:
        """Apply a batch inside the open transaction. Returns the results of its creates
        (the existing snapshot if the run exists, else None), then of its inbox appends
        (the new message's seq)."""
        conn = self.conn
        assert conn is not None
        results: list[Any] = []
        runs, snapshot_only = self._split(batch.runs)
        history = batch.history
        if batch.creates:
            # A run exists if it is in the database or created earlier in this same batch.
            # A run's checkpoints only follow its committed create, so creates go first.
            existing = self._existing([create[0][0] for create in batch.creates])
            created: list[tuple[Any, ...]] = []
            started: list[HistoryRow] = []
            for row, events, _, _ in batch.creates:
                found = existing.get(row[0])
                results.append(found)
                if found is None:
                    existing[row[0]] = row[5]
                    created.append(row)
                    if events is not None:
                        started.append(events)
            runs = created + runs
            history = started + history
        if batch.blobs:
            insert_rows(conn, INSERT_BLOB_HEAD, "", 3, batch.blobs)
        if batch.refs:
            insert_rows(conn, INSERT_RUN_BLOB_HEAD, "", 2, batch.refs)
        insert_rows(conn, UPSERT_RUN_HEAD, UPSERT_RUN_TAIL, RUN_WIDTH, runs)
        insert_rows(conn, UPSERT_RUN_HEAD, UPSERT_SNAPSHOT_TAIL, RUN_WIDTH, snapshot_only)
        self._written = runs + snapshot_only
        insert_rows(conn, INSERT_HISTORY_HEAD, INSERT_HISTORY_TAIL, 3, history)
        if batch.consumed:
            for chunk in chunks(batch.consumed, 10000):
                conn.execute(f"DELETE FROM inbox WHERE seq IN ({marks(len(chunk))})", chunk)
        if batch.ended:
            for chunk in chunks(batch.ended, 10000):
                conn.execute(f"DELETE FROM inbox WHERE run_id IN ({marks(len(chunk))})", chunk)
        for (run_id, data), _, _ in batch.appends:  # inbox appends are few: one statement each, for their seq
            cursor = conn.execute(APPEND_INBOX, (run_id, data, run_id))
            results.append(cursor.lastrowid if cursor.rowcount else None)
        return results

    def _existing(self, run_ids: list[str]) -> dict[str, bytes]:
        """Snapshots of those of ``run_ids`` that already exist (usually none)."""
        conn = self.conn
        assert conn is not None
        found: dict[str, bytes] = {}
        for chunk in chunks(list(dict.fromkeys(run_ids)), 10000):
            sql = f"SELECT run_id, snapshot FROM runs WHERE run_id IN ({marks(len(chunk))})"
            for run_id, snapshot in conn.execute(sql, chunk):
                found[run_id] = snapshot
        return found

    def _flushed(self, batch: Batch, results: list[Any] | None, exc: BaseException | None) -> None:
        """Back on the event loop: wake every caller of the batch, then write the next."""
        self._inflight = False
        if self._metrics is not None:
            self._metrics.committed(batch.size, time.perf_counter() - self._batch_queued_at, ok=exc is None)
        if exc is None:
            self.pending -= batch.size
            for fut in batch.waiters:
                if not fut.done():
                    fut.set_result(None)
            if batch.creates or batch.appends:
                callers = [c[2] for c in batch.creates] + [a[1] for a in batch.appends]
                assert results is not None
                for fut, result in zip(callers, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
            if not self._health.ok:
                self._recovered()
        elif isinstance(exc, DatabaseDeletedError):
            self._lost(batch, exc)
            return
        else:
            cause = outage(exc, self.path, self.busy_timeout)
            if cause is not None and self._open:
                self._hold(batch, *cause)
                return
            self.pending -= batch.size
            error = translate(exc, self.path, self.busy_timeout) if isinstance(exc, sqlite3.Error) else exc
            self._fail_all(batch, error)
        self._next()

    def _next(self) -> None:
        """The writer is free again: write what is queued, or see whether it is idle."""
        if self._queue.size >= EAGER_BATCH:
            self._flush()
        elif self._queue.size or self._drained is None:
            # The runs just woken go first: each queues its next checkpoint before this
            # flush runs, so they share one transaction instead of trickling in tiny ones.
            self._schedule_flush()
        elif not self._drained.done():
            self._drained.set_result(None)

    def _fail_all(self, batch: Batch, error: BaseException) -> None:
        for fut in batch.futures():
            if not fut.done():
                fut.set_exception(error)

    # --- keeping the log short -----------------------------------------------------------

    def _when_idle(self) -> None:
        """No batch for ``idle_checkpoint`` seconds: copy the WAL into the database file and
        truncate it, in the writer thread.

        Committed state that lives only in the WAL is at the mercy of one damaged frame
        (SQLite stops replaying there); the automatic checkpoint every 1,000 pages bounds it
        while writes go on, and this empties it once they pause. Truncating (not just
        copying) leaves no frames behind, so none can be mistaken for damage either.

        Why 1 s (`SQLiteStore`'s default): while any run steps, commits come every few ms
        (a lone sequential run commits every ~0.5 ms), so a second without one means the
        runtime is idle or every run waits; the checkpoint then costs one pass over the WAL
        on the writer thread (measured: 25 ms at 1-4 MiB, 130 ms at 16 MiB), which a commit
        arriving meanwhile waits for, once per quiet spell.
        """
        self._idle_timer = None
        if self._inflight or self._queue.size or self._paused or self.gone is not None or not self._open:
            return  # the writer is busy: the next quiet spell arms this again
        assert self._loop is not None and self._writer is not None and self.idle_checkpoint is not None
        left = self._last_flush + self.idle_checkpoint - self._loop.time()
        if left > 0:
            self._idle_timer = self._loop.call_later(left, self._when_idle)
            return
        self._inflight = True
        self._writer.submit(self._truncate_wal, self._truncated)

    def _truncate_wal(self) -> tuple[int, int, int]:
        conn = self.conn
        assert conn is not None
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(busy), int(frames), int(copied)

    def _truncated(self, result: tuple[int, int, int] | None, exc: BaseException | None) -> None:
        self._inflight = False
        if exc is not None:
            # Disk full, say: the log keeps everything meanwhile, and a later pause retries.
            log.debug("idle checkpoint of %r failed: %s", self.path, exc)
        elif result is not None:
            busy, frames, copied = result
            if busy and self.idle_checkpoint is not None and self._loop is not None and self._idle_timer is None:
                # a reader (another process) held the log: try again after another pause
                self._idle_timer = self._loop.call_later(self.idle_checkpoint, self._when_idle)
            log.debug("idle checkpoint of %r: %d of %d frames copied, busy=%d", self.path, copied, frames, busy)
        self._next()

    # --- when the database cannot be written -------------------------------------------

    def _hold(self, batch: Batch, cause: str, reason: str) -> None:
        """The batch failed for a reason that may pass: keep what waits, fail the rest with
        `StoreUnavailableError`, and try again after the backoff."""
        since = self._health.since if not self._health.ok and self._health.since is not None else time.time()
        self._health = StoreHealth("degraded", cause, reason, since)
        refused = batch.hold(self._queue)
        self._queue = batch
        self.pending -= len(refused)
        error = StoreUnavailableError(self.path, reason, since)
        for fut in refused:
            if not fut.done():
                fut.set_exception(error)
        # Said once per cause, and only when runs wait: a refused call has its exception.
        if batch.size and self._announced != cause:
            self._announced = cause
            log.warning(
                "%s (since %s). Runs wait and go on once writes succeed again; new runs and "
                "messages are refused meanwhile",
                reason,
                time.strftime("%H:%M:%S", time.localtime(since)),
            )
        self._paused = True
        assert self._loop is not None
        self._retry_timer = self._loop.call_later(self._retry_delay, self._retry)
        self._retry_delay = min(self._retry_delay * 2, self.RETRY_MAX)

    def _retry(self) -> None:
        """The backoff is over: write what is held (with whatever joined it), or, if nothing
        is, an empty transaction that tells whether the database accepts writes again."""
        self._retry_timer = None
        self._paused = False
        if not self._inflight:
            self._flush()  # an empty batch is the probe: `_write_batch_blocking` writes a frame

    def _recovered(self) -> None:
        health = self._health
        self._health = HEALTHY
        self._retry_delay = self.RETRY_FIRST
        if self._announced is not None:
            self._announced = None
            took = f" after {time.time() - health.since:.1f}s" if health.since is not None else ""
            log.warning("database %r accepts writes again%s; the runs that waited go on", self.path, took)

    def _lost(self, batch: Batch, error: DatabaseDeletedError) -> None:
        """The database file is gone: hold every write for good (the runs stop where they
        are, no step runs again for nothing), and refuse every new create and append."""
        if self.gone is None:
            log.critical("%s", error)
        self.gone = error
        self._health = StoreHealth("failed", "deleted", str(error), time.time())
        refused = batch.hold(self._queue)
        self._queue = batch
        self.pending -= len(refused)
        for fut in refused:
            if not fut.done():
                fut.set_exception(error)
