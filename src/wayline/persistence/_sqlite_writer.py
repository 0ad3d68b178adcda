"""Group commit: the writer thread that owns the write connection, and the queue it drains.

Callers enqueue already-encoded rows and await a future; the writer takes everything queued,
writes it in a single transaction, commits (one fsync for the whole batch under
``synchronous=FULL``) and resolves every caller's future. One thread hop per batch, not per
statement, is what lets thousands of runs checkpoint per fsync.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from .._errors import StoreError
from ._metrics import CheckpointMetrics
from ._sqlite_connect import retry_locked
from ._sqlite_errors import translate
from ._sqlite_sql import (
    APPEND_INBOX,
    INSERT_HISTORY_HEAD,
    UPSERT_RUN_HEAD,
    UPSERT_RUN_TAIL,
    chunks,
    insert_rows,
    marks,
)

T = TypeVar("T")

# Queue length at which a batch starts at once, overlapping the loop's work, instead of at
# the end of the current loop iteration.
EAGER_BATCH = 2048

HistoryRow = tuple[str, int, bytes]


class Batch:
    """The writes queued for one transaction.

    Checkpoints, the bulk of the traffic, are kept as flat lists of rows (the runs upsert,
    the history inserts, the inbox deletions) plus one waiter each: no object per
    checkpoint beyond its row and its future. Creates and inbox appends, which answer each
    caller with a result of its own, keep one entry each.
    """

    __slots__ = ("appends", "consumed", "creates", "ended", "history", "runs", "size", "waiters")

    def __init__(self) -> None:
        self.runs: list[tuple[Any, ...]] = []  # checkpointed runs' rows
        self.history: list[HistoryRow] = []
        self.consumed: list[int] = []
        self.ended: list[str] = []  # runs whose checkpoint finishes them: their inbox goes
        self.waiters: list[asyncio.Future[None]] = []
        # (row, history row or None, future resolved with the existing snapshot or None)
        self.creates: list[tuple[tuple[Any, ...], HistoryRow | None, asyncio.Future[Any]]] = []
        self.appends: list[tuple[tuple[str, bytes], asyncio.Future[Any]]] = []  # future gets the seq
        self.size = 0

    def futures(self) -> list[asyncio.Future[Any]]:
        return [*self.waiters, *(c[2] for c in self.creates), *(a[1] for a in self.appends)]


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


class GroupCommit:
    """The write side of the store: a queue of writes, drained one transaction at a time by
    the writer thread, which owns the write connection."""

    def __init__(self, path: str, busy_timeout: float, metrics: CheckpointMetrics | None) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.conn: sqlite3.Connection | None = None
        self.pending = 0  # writes queued or being written
        self._writer: WriterThread | None = None
        self._queue = Batch()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight = False  # a batch is being written by the writer thread
        self._flush_scheduled = False
        self._drained: asyncio.Future[None] | None = None
        self._open = False
        self._metrics = metrics
        self._queued_at = 0.0  # when the oldest queued write was queued (metrics only)
        self._batch_queued_at = 0.0  # the same, for the batch being written

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the writer thread and open the write connection with ``connect`` there."""
        loop = asyncio.get_running_loop()
        self._writer = WriterThread(loop)
        self.conn = await self._writer.call(connect)
        self._loop = loop
        self._open = True

    async def close(self) -> None:
        """Write everything queued, then close the connection and end the thread."""
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

    # --- submitting writes -------------------------------------------------------------

    def _batch(self) -> Batch:
        """The batch to add one write to; call `_queued` once it is added."""
        if not self._open:
            raise StoreError(f"database {self.path!r} is closed", path=self.path)
        return self._queue

    def create(self, row: tuple[Any, ...], history: HistoryRow | None) -> asyncio.Future[bytes | None]:
        """Insert a run unless it exists; the future gets the existing snapshot, or None."""
        batch = self._batch()
        assert self._loop is not None
        fut: asyncio.Future[bytes | None] = self._loop.create_future()
        batch.creates.append((row, history, fut))
        self._queued()
        return fut

    def checkpoint(
        self, row: tuple[Any, ...], history: HistoryRow | None, consumed: Any, ended: bool
    ) -> asyncio.Future[None]:
        """Replace a run's row, add its history row, delete the consumed inbox messages (and
        every message of a run that ``ended``)."""
        batch = self._batch()
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
        batch = self._batch()
        assert self._loop is not None
        fut: asyncio.Future[int | None] = self._loop.create_future()
        batch.appends.append(((run_id, data), fut))
        self._queued()
        return fut

    def _queued(self) -> None:
        queue = self._queue
        if self._metrics is not None and not queue.size:
            self._queued_at = time.perf_counter()
        queue.size += 1
        self.pending += 1
        if self._inflight:
            return  # joins the next batch, written as soon as this one commits
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
        if not self._inflight and self._queue.size:
            self._flush()
        elif not self._inflight and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

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
        assert self._writer is not None
        self._writer.submit(partial(self._write_batch_blocking, batch), partial(self._flushed, batch))

    def _write_batch_blocking(self, batch: Batch) -> list[Any]:
        conn = self.conn
        assert conn is not None
        retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.busy_timeout)
        try:
            results = self._insert(batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _insert(self, batch: Batch) -> list[Any]:
        """Apply a batch inside the open transaction. Returns the results of its creates
        (the existing snapshot if the run exists, else None), then of its inbox appends
        (the new message's seq)."""
        conn = self.conn
        assert conn is not None
        results: list[Any] = []
        runs = batch.runs
        history = batch.history
        if batch.creates:
            # A run exists if it is in the database or created earlier in this same batch.
            # A run's checkpoints only follow its committed create, so creates go first.
            existing = self._existing([row[0] for row, _, _ in batch.creates])
            created: list[tuple[Any, ...]] = []
            started: list[HistoryRow] = []
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
        insert_rows(conn, UPSERT_RUN_HEAD, UPSERT_RUN_TAIL, 6, runs)
        insert_rows(conn, INSERT_HISTORY_HEAD, "", 3, history)
        if batch.consumed:
            for chunk in chunks(batch.consumed, 10000):
                conn.execute(f"DELETE FROM inbox WHERE seq IN ({marks(len(chunk))})", chunk)
        if batch.ended:
            for chunk in chunks(batch.ended, 10000):
                conn.execute(f"DELETE FROM inbox WHERE run_id IN ({marks(len(chunk))})", chunk)
        for (run_id, data), _ in batch.appends:  # inbox appends are few: one statement each, for their seq
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
        self.pending -= batch.size
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
            error = translate(exc, self.path, self.busy_timeout) if isinstance(exc, sqlite3.Error) else exc
            for fut in batch.futures():
                if not fut.done():
                    fut.set_exception(error)
        if self._queue.size >= EAGER_BATCH:
            self._flush()
        elif self._queue.size or self._drained is None:
            # The runs just woken go first: each queues its next checkpoint before this
            # flush runs, so they share one transaction instead of trickling in tiny ones.
            self._schedule_flush()
        elif not self._drained.done():
            self._drained.set_result(None)
