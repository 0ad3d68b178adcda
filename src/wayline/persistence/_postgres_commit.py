"""The PostgreSQL store's group commit: whatever is queued goes in one statement.

Callers enqueue encoded rows and await a future; one writer task takes the whole queue,
sends it as the single statement `BATCH` (a statement outside an explicit transaction is one
transaction, so a batch of any size costs one round trip and one commit), and resolves every
caller's future from the statement's answer. The next batch is written as soon as this one is
acknowledged.

A lost connection is retried on a new one until ``reconnect_timeout``. The hard case is a
batch whose COMMIT happened but whose acknowledgement was lost: running it again would commit
it twice. Each batch therefore commits a marker row keyed by (writer id, batch number) in the
same statement. After a failure whose outcome is unknown the writer reads the marker on the
new connection: present, the batch committed and its callers are answered from the marker
and the rows; absent, it did not, and it is sent again. If the old server process was still
committing it meanwhile, the retry's insert of the same marker key waits for it and then
fails on the key, and the marker is read again: a batch commits once, whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from .._errors import DatabaseUnreachableError, LeaseLostError, StoreError
from ._codec import decode_record
from ._metrics import CheckpointMetrics
from ._postgres_sql import BATCH, BATCH_MARKER, BATCH_RUNS

log = logging.getLogger("wayline.store")

#: Queue length at which a batch is written at once rather than at the end of the current
#: loop iteration (as in the SQLite store): large batches overlap the loop's work.
EAGER_BATCH = 2048


def is_connection_error(exc: BaseException, conn: asyncpg.Connection | None) -> bool:
    """Whether ``exc`` means the connection is gone (the server or the network), as opposed
    to the statement being wrong: only then is a write retried on a new connection."""
    if isinstance(exc, (OSError, TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError)):
        return True
    if isinstance(exc, DatabaseUnreachableError):  # a reconnection attempt failed: keep trying
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # asyncpg's protocol state left inconsistent by a connection ended under an operation
        # (seen after pg_terminate_backend): that connection is unusable, a new one is not.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        # 08: connection exception; 57P: the server shut down or ended this session.
        state = getattr(exc, "sqlstate", "") or ""
        if state.startswith("08") or state.startswith("57P"):
            return True
    if conn is None:
        return False
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        # A pooled connection already released (the error came out of `pool.acquire()`'s
        # block): it cannot be asked, and the error above is not one of a lost connection.
        return False


class Batch:
    """The writes queued for one statement (rows kept flat, one future per caller)."""

    __slots__ = ("appends", "blobs", "consumed", "creates", "ended", "history", "refs", "runs", "size", "waiters")

    def __init__(self) -> None:
        self.blobs: list[tuple[str, bytes]] = []  # (digest, data): large values, stored once
        self.refs: list[tuple[str, str]] = []  # (run_id, digest): a run refers to a blob
        # (run_id, workflow, status, created_at, wake_at, snapshot, fence or None)
        self.runs: list[tuple[Any, ...]] = []
        self.waiters: list[tuple[str, int | None, asyncio.Future[None]]] = []
        self.history: list[tuple[str, int, bytes]] = []
        self.consumed: list[int] = []
        self.ended: list[str] = []
        # (row without fence, events or None, future of the existing snapshot or None)
        self.creates: list[tuple[tuple[Any, ...], bytes | None, asyncio.Future[Any]]] = []
        self.appends: list[tuple[str, bytes, asyncio.Future[int | None]]] = []
        self.size = 0

    def futures(self) -> list[asyncio.Future[Any]]:
        return [*(w[2] for w in self.waiters), *(c[2] for c in self.creates), *(a[2] for a in self.appends)]


class _Outcome:
    """What a committed batch did, from the statement's answer or from its marker."""

    __slots__ = ("app_runs", "app_seqs", "created", "existing", "ok")

    def __init__(self) -> None:
        self.created: set[str] = set()
        self.existing: dict[str, bytes] = {}
        self.ok: set[str] = set()  # checkpointed runs whose write was accepted
        self.app_runs: list[str] = []
        self.app_seqs: list[int] = []


class GroupCommit:
    """One writer connection and its queue.

    Args:
        connect: opens a new connection (errors already translated).
        url: the database, for messages (password removed).
        reconnect_timeout: how long a batch waits for the server to come back before its
            callers get `DatabaseUnreachableError`.
        metrics: commit latency and batch sizes, or None.
        on_created: called with the run ids this store's worker created (to lease them).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        url: str,
        *,
        reconnect_timeout: float,
        metrics: CheckpointMetrics | None,
        worker: Callable[[], str | None],
        on_created: Callable[[list[str]], None],
    ) -> None:
        self._connect = connect
        self._url = url
        self._reconnect_timeout = reconnect_timeout
        self._metrics = metrics
        self._worker = worker
        self._on_created = on_created
        self.writer_id = uuid.uuid4().hex
        self._n = 0
        self._conn: asyncpg.Connection | None = None
        self.queue = Batch()
        self._inflight = False
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pending = 0
        self._queued_at = 0.0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._connection()

    async def close(self) -> None:
        """Write what is queued, then close the connection."""
        if self._inflight or self.queue.size:
            assert self._loop is not None
            self._drained = self._loop.create_future()
            if not self._inflight:
                self._flush()
            await self._drained
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:  # already broken: nothing to hand back
                conn.terminate()

    # --- queueing ------------------------------------------------------------------------

    def queued(self) -> None:
        """Account for one write added to ``queue`` and make sure a flush will come."""
        queue = self.queue
        queue.size += 1
        self.pending += 1
        if queue.size == 1 and self._metrics is not None:
            self._queued_at = time.perf_counter()
        if self._inflight:
            return  # joins the next batch, written as soon as this one commits
        if queue.size >= EAGER_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        if not self._inflight and self.queue.size:
            self._flush()
        elif not self._inflight and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _flush(self) -> None:
        batch, self.queue = self.queue, Batch()
        self._inflight = True
        self._n += 1
        started = self._queued_at
        self._task = asyncio.ensure_future(self._write(batch, self._n, started))

    # --- writing -------------------------------------------------------------------------

    async def _write(self, batch: Batch, n: int, started: float) -> None:
        ok = False
        try:
            outcome = await self._commit(batch, n)
            self._resolve(batch, outcome)
            ok = True
        except BaseException as exc:
            error = exc if isinstance(exc, (StoreError, asyncio.CancelledError)) else self._translate(exc)
            for fut in batch.futures():
                if not fut.done():
                    fut.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._inflight = False
            self.pending -= batch.size
            if self._metrics is not None:
                self._metrics.committed(batch.size, time.perf_counter() - started, ok=ok)
            self._next()

    def _next(self) -> None:
        if self.queue.size >= EAGER_BATCH:
            self._flush()
        elif self.queue.size or self._drained is None:
            # The runs just woken go first: each queues its next checkpoint before this
            # flush runs, so they share one statement instead of trickling in tiny ones.
            if not self._scheduled:
                self._scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush_soon)
        elif not self._drained.done():
            self._drained.set_result(None)

    def _translate(self, exc: BaseException) -> StoreError:
        return StoreError(f"PostgreSQL at {self._url} refused a write: {exc}", path=self._url)

    async def _commit(self, batch: Batch, n: int) -> _Outcome:
        """Commit ``batch`` exactly once, across lost connections; its outcome."""
        args = self._arguments(batch, n)
        deadline: float | None = None
        attempt = 0
        uncertain = False  # a previous attempt may have committed
        while True:
            try:
                conn = await self._connection()
                if uncertain:
                    marker = await conn.fetchrow(BATCH_MARKER, self.writer_id, n)
                    if marker is not None:
                        return await self._from_marker(conn, batch, marker)
                row = await conn.fetchrow(BATCH, *args)
                assert row is not None
                out = self._from_answer(row)
                missing = {create[0][0] for create in batch.creates} - out.created - out.existing.keys()
                if missing:
                    # Created by another worker's commit that landed while this statement ran:
                    # its ON CONFLICT waited for that row, which the statement's snapshot does
                    # not show. Read now, it is there (two workers starting one event's run).
                    out.existing.update((r[0], r[1]) for r in await conn.fetch(BATCH_RUNS, list(missing)))
                return out
            except asyncpg.UniqueViolationError:
                if not uncertain:
                    raise
                # The earlier attempt committed after all (its server process was still at it):
                # the retry's marker insert waited for it and hit the key.
                conn = await self._connection()
                marker = await conn.fetchrow(BATCH_MARKER, self.writer_id, n)
                if marker is None:
                    raise
                return await self._from_marker(conn, batch, marker)
            except Exception as exc:
                if not is_connection_error(exc, self._conn):
                    raise
                uncertain = True
                self._drop_connection()
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._reconnect_timeout
                    log.warning(
                        "PostgreSQL connection lost during a commit of %d write(s) (%s); retrying on a new one",
                        batch.size,
                        exc,
                    )
                if now >= deadline:
                    raise DatabaseUnreachableError(
                        self._url, f"the connection was lost and not made again within {self._reconnect_timeout:g}s"
                    ) from exc
                attempt += 1
                await asyncio.sleep(min(0.02 * 2**attempt, 1.0))

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await self._connect()
            # Prepared once per connection (asyncpg caches it): the server loads the tables'
            # metadata now, not in the first commit a run waits on (measured: the first
            # commits on a new connection took 2-3x the 0.4 ms of later ones).
            await conn.prepare(BATCH)
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    def _arguments(self, batch: Batch, n: int) -> list[Any]:
        creates: dict[str, tuple[tuple[Any, ...], bytes | None]] = {}
        for row, events, _ in batch.creates:
            creates.setdefault(row[0], (row, events))  # the first create of an id wins
        c_rows = [row for row, _ in creates.values()]
        runs: dict[str, tuple[Any, ...]] = {}
        for row in batch.runs:
            runs[row[0]] = row  # a run checkpointed twice in one batch: its last snapshot
        k_rows = list(runs.values())
        return [
            self.writer_id,
            n,
            self._worker(),
            [r[0] for r in c_rows],
            [r[1] for r in c_rows],
            [r[2] for r in c_rows],
            [r[3] for r in c_rows],
            [r[4] for r in c_rows],
            [r[5] for r in c_rows],
            [events for _, events in creates.values()],
            [r[0] for r in k_rows],
            [r[1] for r in k_rows],
            [r[2] for r in k_rows],
            [r[3] for r in k_rows],
            [r[4] for r in k_rows],
            [r[5] for r in k_rows],
            [r[6] for r in k_rows],
            [h[0] for h in batch.history],
            [h[1] for h in batch.history],
            [h[2] for h in batch.history],
            batch.consumed,
            batch.ended,
            [a[0] for a in batch.appends],
            [a[1] for a in batch.appends],
            [r[6] for r in c_rows],
            [r[7] for r in k_rows],
            [b[0] for b in batch.blobs],
            [b[1] for b in batch.blobs],
            [r[0] for r in batch.refs],
            [r[1] for r in batch.refs],
        ]

    @staticmethod
    def _from_answer(row: asyncpg.Record) -> _Outcome:
        out = _Outcome()
        out.created = set(row["created"])
        out.ok = set(row["ok"])
        out.existing = dict(zip(row["ex_ids"], row["ex_snaps"], strict=True))
        out.app_runs = list(row["app_runs"])
        out.app_seqs = list(row["app_seqs"])
        return out

    async def _from_marker(self, conn: asyncpg.Connection, batch: Batch, marker: asyncpg.Record) -> _Outcome:
        """The outcome of a batch that committed although its acknowledgement was lost."""
        log.warning("a batch whose acknowledgement was lost had committed; it is not written again")
        out = _Outcome()
        out.created = set(marker["created"])
        out.ok = set(marker["ok"])
        out.app_runs = list(marker["app_runs"])
        out.app_seqs = list(marker["app_seqs"])
        # Creates that found their run: answered with the run as it is now (it existed before).
        ids = {row[0] for row, _, _ in batch.creates} - out.created
        if ids:
            out.existing = dict(await conn.fetch(BATCH_RUNS, list(ids)))  # type: ignore[arg-type]
        return out

    def _resolve(self, batch: Batch, out: _Outcome) -> None:
        worker = self._worker()
        for run_id, fence, fut in batch.waiters:
            if fut.done():
                continue
            if run_id in out.ok:
                fut.set_result(None)
            else:  # refused by the fencing check: the lease is lost
                fut.set_exception(LeaseLostError(run_id, worker or "?", -1 if fence is None else fence))
        if batch.creates:
            mine = [run_id for run_id in out.created]
            if mine and worker is not None:
                self._on_created(mine)
            first: dict[str, bytes] = {}
            for row, _, cfut in batch.creates:
                run_id = row[0]
                if run_id in first:  # a second create of an id in this batch
                    found: bytes | None = first[run_id]
                elif run_id in out.created:
                    first[run_id] = row[5]
                    found = None
                else:
                    found = first[run_id] = out.existing[run_id]
                if not cfut.done():
                    cfut.set_result(None if found is None else decode_record(found))
        if batch.appends:
            seqs: dict[str, list[int]] = {}
            for run_id, seq in zip(out.app_runs, out.app_seqs, strict=True):
                seqs.setdefault(run_id, []).append(seq)
            for run_id, _, afut in batch.appends:
                got = seqs.get(run_id)
                if not afut.done():
                    afut.set_result(got.pop(0) if got else None)
