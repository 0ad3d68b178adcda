"""`PostgresStore`: the `Store` protocol on a PostgreSQL database (asyncpg).

The same contract and stored bytes as the SQLite store: values are encoded before a call
returns or suspends, checkpoints are group-committed (`_postgres_commit`), and a caller resumes
only after its own write is committed. Reads use a small connection pool beside the writer's
connection. Workers, leases and notifications are in `_postgres_leases`; the SQL in
`_postgres_sql`; the schema in `_postgres_schema`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import msgspec
from opentelemetry.metrics import MeterProvider

from .._errors import (
    DatabaseAuthError,
    DatabaseCorruptError,
    DatabaseMissingError,
    DatabaseUnreachableError,
    EncryptionKeyError,
    LeaseLostError,
    SecretDecryptError,
    StoreError,
)
from ._blobs import Offload, Offloader, PayloadLimits, has_refs, hydrate
from ._cancel_keys_sql import PgCancelKeys
from ._codec import (
    ENCODE_ERRORS,
    decode_history,
    decode_inbox_rows,
    decode_record,
    encode_raw,
    encode_stored,
    payload_error,
    store_encode,
)
from ._crypto import KeyRing, Sealer, encode_message, encode_sealed, may_hold_sealed
from ._events_postgres import PgEvents
from ._flow_postgres import PgFlow
from ._leases import CLAIMABLE, Lease, Listener, Subscription, WorkerInfo
from ._metrics import CheckpointMetrics, observe_worker, resolve_meter_provider
from ._pacing_postgres import PgPacing
from ._postgres_commit import GroupCommit, is_connection_error
from ._postgres_leases import PgSubscription, WorkerLeases
from ._postgres_rotate import pg_rotate
from ._postgres_schema import migrate
from ._postgres_sql import (
    COUNT_RUNS,
    DUE_RUNS,
    GET_HISTORY,
    GET_INBOX,
    GET_RUN,
    INBOX_SINCE,
    NEXT_WAKE,
    PRUNE_MARKERS,
)
from ._postgres_url import redact_url
from ._purge import PG_CANDIDATES, PG_PURGE, check_statuses, ended_before
from ._records import AnyEvent, InboxMessage, RunRecord, RunStatus
from ._rotate import KeyRotation, Write
from ._schedules_postgres import PgSchedules
from ._search import filter_terms, search_terms
from ._store import HEALTHY, StoreHealth

T = TypeVar("T")

log = logging.getLogger("wayline.store")


def _encodable(value: Any) -> bool:
    try:
        encode_raw(value)
    except ENCODE_ERRORS:
        return False
    return True


class PostgresStore:
    """A `Store` on a PostgreSQL database.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (libpq's URL form; the
            password may also come from PGPASSWORD or ~/.pgpass). The database must exist;
            wayline creates its tables in the schema ``wayline``.
        reconnect_timeout: seconds a write or read waits for a lost server to come back
            before failing with `DatabaseUnreachableError`. Writes waiting meanwhile are
            neither lost nor committed twice.
        connect_timeout: seconds one connection attempt may take.
        pool_size: connections for reads and lease operations (the writer has its own).
        lease_seconds: the worker lease `claim_ownership` registers with, renewed every
            third of it: how long a paused worker keeps the database from others (a killed
            one does not: its sessions end with it).
        meter_provider: where the group commit reports latency and batch sizes.
    """

    #: Several worker processes may share this store's database (see `open_runtime`'s ``worker``).
    shared = True

    def __init__(
        self,
        url: str,
        *,
        reconnect_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        pool_size: int = 4,
        lease_seconds: float = 10.0,
        meter_provider: MeterProvider | None = None,
        payload_limits: PayloadLimits | None = None,
    ) -> None:
        self.url = url
        self.payloads = Offloader(payload_limits)
        #: The runtime's keys (`open_runtime(encryption_key=...)`): none until it sets them.
        self.sealer = Sealer(KeyRing(()))
        self.display_url = redact_url(url)
        self.path = self.display_url  # what errors and the CLI name the database by
        self.reconnect_timeout = reconnect_timeout
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self.lease_seconds = lease_seconds
        provider = resolve_meter_provider(meter_provider)
        metrics = CheckpointMetrics(provider) if provider is not None else None
        self.tag = uuid.uuid4().hex[:12]
        self._leases = WorkerLeases(
            self._with_connection, self.display_url, self.tag, connect=lambda: self._connect("lease")
        )
        if provider is not None:
            observe_worker(provider, self._leases.gauge_reader())
        self._writer = GroupCommit(
            lambda: self._connect("writer"),
            self.display_url,
            reconnect_timeout=reconnect_timeout,
            metrics=metrics,
            worker=lambda: self._leases.worker_id,
            on_created=self._leases.created,
        )
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reads = 0
        self._open = False
        self._subscriptions: list[PgSubscription] = []
        self.schedules = PgSchedules(self._with_connection, self.display_url, lambda: self.sealer)
        self.events = PgEvents(self._with_connection, lambda: self.sealer, lambda: self._leases.listens)
        self.flow = PgFlow(self._with_connection)
        self.cancel_keys = PgCancelKeys(self._with_connection)
        self.pacing = PgPacing(self._with_connection)

    # --- connections ---------------------------------------------------------------------

    def _translate_connect(self, exc: BaseException) -> StoreError:
        parts = urlsplit(self.url)
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return DatabaseMissingError(self.display_url, (parts.path or "/").lstrip("/") or "?")
        if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            return DatabaseAuthError(self.display_url, parts.username or "?", str(exc))
        if isinstance(exc, (OSError, TimeoutError, asyncpg.CannotConnectNowError, socket.gaierror)):
            return DatabaseUnreachableError(self.display_url, str(exc) or type(exc).__name__)
        if isinstance(exc, StoreError):
            return exc
        return StoreError(f"cannot open PostgreSQL database {self.display_url}: {exc}", path=self.display_url)

    async def _connect(self, role: str) -> asyncpg.Connection:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                server_settings={"application_name": f"wayline {role} {self.tag}"},
            )
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise self._translate_connect(exc) from exc
        return conn

    async def _with_connection(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection; on a lost connection, again on a new one
        (reads and lease operations are safe to repeat) until ``reconnect_timeout``."""
        pool = self._pool
        if pool is None or not self._open:
            raise StoreError(f"PostgreSQL store {self.display_url} is closed", path=self.display_url)
        self._reads += 1
        try:
            deadline: float | None = None
            attempt = 0
            while True:
                conn: Any = None
                lost = False
                try:
                    async with pool.acquire() as conn:
                        try:
                            return await fn(conn)
                        except asyncpg.InternalClientError:
                            conn.terminate()  # while still held: the pool replaces it, never reuses it
                            raise
                        except Exception:
                            # Asked now, while the connection is still held (once released to
                            # the pool it cannot be asked): a statement or a transaction's end
                            # on a connection the server closed fails in several ways.
                            try:
                                lost = conn.is_closed()
                            except asyncpg.InterfaceError:
                                lost = True  # detached from its connection: the pool saw it go
                            raise
                except StoreError:
                    raise
                except (
                    asyncpg.PostgresError,
                    OSError,
                    TimeoutError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as exc:
                    if not (lost or is_connection_error(exc, None)):
                        raise self._translate_connect(exc) from exc
                    now = time.monotonic()
                    deadline = deadline if deadline is not None else now + self.reconnect_timeout
                    if now >= deadline:
                        detail = f"the connection was lost and not made again within {self.reconnect_timeout:g}s"
                        raise DatabaseUnreachableError(self.display_url, detail) from exc
                    attempt += 1
                    await asyncio.sleep(min(0.02 * 2**attempt, 1.0))
        finally:
            self._reads -= 1

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._writer.pending + self._reads

    def health(self) -> StoreHealth:
        """Whether writes succeed now. Not tracked on PostgreSQL yet (always ``ok``): a write
        that fails raises its `StoreError` to its caller instead of being held and retried
        as the SQLite store does."""
        return HEALTHY

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = await self._connect("migrate")
        try:
            await migrate(conn, self.display_url)
            await conn.execute(PRUNE_MARKERS)
        except asyncpg.PostgresError as exc:
            raise self._translate_connect(exc) from exc
        finally:
            await conn.close()
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                server_settings={"application_name": f"wayline reader {self.tag}"},
            )
            await self._writer.start()
        except BaseException as exc:
            await self._release()
            if isinstance(exc, (asyncpg.PostgresError, OSError, TimeoutError)):
                raise self._translate_connect(exc) from exc
            raise
        self._open = True

    async def claim_ownership(self) -> None:
        """Become the one worker that runs this database's runs, until `close`.

        Until the runtime runs several workers on one database, a worker registers
        exclusively: its writes are fenced by its registration, renewed by a heartbeat.

        Raises:
            DatabaseOwnedByWorkerError: another live worker holds the database.
        """
        await self.register_worker(lease_seconds=self.lease_seconds, exclusive=True)
        self._leases.start_heartbeat()

    async def close(self) -> None:
        if self._open:
            await self._writer.close()
            for sub in list(self._subscriptions):
                await sub.close()
            try:
                await self._leases.stop(unregister=True)
            except StoreError:
                pass  # unreachable: the lease simply expires
        self._open = False
        await self._release()

    async def _release(self) -> None:
        self._open = False
        await self._writer.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except Exception:
                pool.terminate()

    # --- writes --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError(f"PostgreSQL store {self.display_url} is closed", path=self.display_url)

    async def create_run(
        self, record: RunRecord, events: Sequence[AnyEvent], message: InboxMessage | None = None
    ) -> RunRecord | None:
        self._check_open()
        run_id = record.run_id

        def encode_all(record: RunRecord, events: list[AnyEvent]) -> tuple[bytes, bytes | None, Offload | None]:
            snapshot = encode_stored(record, what=f"input of run {run_id!r}", run_id=run_id)
            rows = encode_stored(events, what=f"history of run {run_id!r}", run_id=run_id) if events else None
            offload = self.payloads.prepare(record, events, len(snapshot), len(rows or b""))
            if offload is None:
                return snapshot, rows, None
            rows = store_encode(offload.events) if events else None
            return store_encode(offload.record), rows, offload

        snapshot, rows, offload = encode_sealed(self.sealer, record, events, encode_all)
        if offload is not None:
            self._queue_blobs(run_id, offload)
        assert self._loop is not None
        fut: asyncio.Future[RunRecord | None] = self._loop.create_future()
        meta = search_terms(record)
        row = (record.run_id, record.workflow, record.status.value, record.created_at, record.wake_at, snapshot, meta)
        self._writer.queue.creates.append((row, rows, fut))
        if message is not None:
            # In the same batch, so the same transaction (BATCH stores a message for a run the
            # batch creates): a worker is told of the run by its inbox's notification.
            appended: asyncio.Future[int | None] = self._loop.create_future()
            appended.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._writer.queue.appends.append((run_id, encode_message(self.sealer, message, run_id), appended))
            self._writer.queue.size += 1
            self._writer.pending += 1
        self._writer.queued()
        existing = await fut
        if existing is None:
            return None
        found = await hydrate(existing, self._read_blobs, self.display_url, f"the snapshot of run {record.run_id!r}")
        return self.sealer.open_record(found)

    def _queue_blobs(self, run_id: str, offload: Offload) -> None:
        batch = self._writer.queue
        batch.blobs += [(b.digest, b.data) for b in offload.blobs]
        batch.refs += [(run_id, d) for d in offload.refs]

    async def _read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        rows = await self._fetch("SELECT digest, data FROM wayline.blobs WHERE digest = ANY($1::text[])", digests)
        return {digest: data for digest, data in rows}

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        self._check_open()
        run_id = record.run_id
        try:
            snapshot, rows, offload = encode_sealed(self.sealer, record, events, self._encode_checkpoint)
            meta = search_terms(record)
        except ENCODE_ERRORS as exc:
            what = "history" if _encodable(record) else "state"
            raise payload_error(exc, f"{what} of run {run_id!r}", run_id) from exc
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        leases = self._leases
        fence = leases.held.get(run_id)
        if leases.worker_id is not None and fence is None and not leases.exclusive:
            # One of several workers commits only the runs it holds a lease on.
            fut.set_exception(LeaseLostError(run_id, leases.worker_id, -1))
            return fut
        if offload is not None:
            self._queue_blobs(run_id, offload)
        if record.status.finished:
            self.payloads.run_ended(run_id)
        batch = self._writer.queue
        if rows is not None:
            batch.history.append((run_id, record.history_seq - 1, rows))
        if consumed:
            batch.consumed.extend(consumed)
        if record.status.finished:
            batch.ended.append(run_id)
        wake_at = record.wake_at if record.waits else None
        batch.runs.append(
            (run_id, record.workflow, record.status.value, record.created_at, wake_at, snapshot, fence, meta)
        )
        batch.waiters.append((run_id, fence, fut))
        self._writer.queued()
        if fence is not None:
            leases.watch_commit(fut, run_id, record.status.finished)
        return fut

    def _encode_checkpoint(
        self, record: RunRecord, events: list[AnyEvent]
    ) -> tuple[bytes, bytes | None, Offload | None]:
        snapshot = store_encode(record)
        rows = store_encode(events) if events else None
        offload_bytes = self.payloads.limits.offload_bytes
        if len(snapshot) > offload_bytes or (rows is not None and len(rows) > offload_bytes):
            offload = self.payloads.prepare(record, events, len(snapshot), len(rows or b""))
            if offload is not None:
                rows = store_encode(offload.events) if events else None
                return store_encode(offload.record), rows, offload
        return snapshot, rows, None

    async def purge_runs(
        self,
        *,
        before: float,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int | None = 200,
        dry_run: bool = False,
    ) -> list[str]:
        chosen = check_statuses(statuses)
        scan = None if limit is None else limit * 10  # past runs created in time that ended too late
        rows = await self._fetch(PG_CANDIDATES, chosen, before, workflow, scan)
        picked = [run_id for run_id, data in rows if ended_before(data, before)][:limit]
        if dry_run or not picked:
            return picked
        done = await self._fetch(PG_PURGE, picked, chosen)
        return list(done[0][0])

    async def rotate_keys(
        self,
        *,
        batch_size: int = 100,
        progress: Callable[[KeyRotation], Any] | None = None,
        wrap: Callable[[Write], Write] | None = None,
    ) -> KeyRotation:
        """Re-encrypt stored values with the current key, ``batch_size`` runs at a time (see
        `wayline.persistence._rotate`)."""
        self._check_open()
        return await pg_rotate(self.sealer, self._fetch, self._with_connection, batch_size, progress, wrap)

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        self._check_open()
        data = encode_message(self.sealer, message, run_id)
        assert self._loop is not None
        fut: asyncio.Future[int | None] = self._loop.create_future()
        self._writer.queue.appends.append((run_id, data, fut))
        self._writer.queued()
        return await fut

    # --- reads ---------------------------------------------------------------------------

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        return await self._with_connection(go)

    async def _decode(self, run_id: str, data: bytes) -> RunRecord:
        try:
            record = decode_record(data)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(
                self.display_url, f"the snapshot of run {run_id!r} cannot be decoded: {exc}"
            ) from exc
        refs = has_refs(data)
        if refs:
            record = await hydrate(record, self._read_blobs, self.display_url, f"the snapshot of run {run_id!r}")
        if refs or may_hold_sealed(data):
            record = self.sealer.open_record(record)
        return record

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(GET_RUN, run_id)
        return await self._decode(run_id, rows[0][0]) if rows else None

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        rows = await self._fetch(GET_HISTORY, run_id)
        try:
            out = decode_history(rows)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(
                self.display_url, f"the history of run {run_id!r} cannot be decoded: {exc}"
            ) from exc
        refs = any(has_refs(data) for _, _, data in rows)
        if refs:
            out = await hydrate(out, self._read_blobs, self.display_url, f"the history of run {run_id!r}")
        if refs or any(may_hold_sealed(data) for _, _, data in rows):
            out = self.sealer.open_events(out, run_id)
        return out

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        rows = await self._fetch(GET_INBOX, run_id)
        found = decode_inbox_rows(((s, run_id, d) for s, d in rows), self.display_url)
        return [(s, self.sealer.open_message(m, run_id)) for s, _, m in found]

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        rows = await self._fetch(INBOX_SINCE, seq, limit)
        found = decode_inbox_rows(((s, r, d) for s, r, d in rows), self.display_url, placeholders=True)
        return [(s, r, self.sealer.open_message(m, r)) for s, r, m in found]

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        rows = await self._fetch(DUE_RUNS, until, RunStatus.WAITING.value, limit)
        return [(run_id, wake_at) for run_id, wake_at in rows]

    async def next_wake(self, after: float) -> float | None:
        rows = await self._fetch(NEXT_WAKE, after, RunStatus.WAITING.value)
        return rows[0][0] if rows else None

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        rows = await self._fetch(COUNT_RUNS, [s.value for s in statuses])
        return int(rows[0][0])

    async def list_runs(
        self,
        *,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> list[RunRecord]:
        terms = filter_terms(metadata, tag)
        where: list[str] = []
        args: list[Any] = []
        # With metadata or a tag, the first term's index range drives the listing, in order
        # (run_metadata holds created_at); the other terms are primary-key probes.
        table = "r" if terms else "wayline.runs"
        order = "m" if terms else "wayline.runs"
        for n, (key, value) in enumerate(terms):
            args += [key, _json_term(value)]
            k, v = f"${len(args) - 1}", f"${len(args)}::jsonb"
            if n == 0:
                where += [f"m.key = {k}", f"m.value = {v}"]
            else:
                where.append(
                    f"EXISTS (SELECT 1 FROM wayline.run_metadata o WHERE o.key = {k} AND o.value = {v} "
                    "AND o.created_at = m.created_at AND o.run_id = m.run_id)"
                )
        if statuses is not None:
            args.append([s.value for s in statuses])
            where.append(f"{table}.status = ANY(${len(args)}::text[])")
        if workflow is not None:
            args.append(workflow)
            where.append(f"{table}.workflow = ${len(args)}")
        if since is not None:
            args.append(since)
            where.append(f"{order}.created_at >= ${len(args)}")
        sql = f"SELECT {table}.run_id, {table}.snapshot FROM wayline.runs"
        if terms:
            sql = "SELECT r.run_id, r.snapshot FROM wayline.run_metadata m JOIN wayline.runs r ON r.run_id = m.run_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if newest_first:
            sql += f" ORDER BY {order}.created_at DESC, {order}.run_id DESC"
        else:
            sql += f" ORDER BY {order}.created_at, {order}.run_id"
        if limit is not None:
            args.append(limit)
            sql += f" LIMIT ${len(args)}"
        out = []
        for run_id, data in await self._fetch(sql, *args):
            try:
                out.append(await self._decode(run_id, data))
            except (DatabaseCorruptError, SecretDecryptError, EncryptionKeyError) as exc:
                # One damaged row must not hide every other run (as in SQLite).
                log.error("%s; it is left out of the listing", exc, extra={"run_id": run_id})
        return out

    # --- workers, leases, notifications ----------------------------------------------------

    @property
    def worker_id(self) -> str | None:
        """This store's worker id once registered."""
        return self._leases.worker_id

    async def register_worker(
        self,
        worker_id: str | None = None,
        *,
        lease_seconds: float = 10.0,
        exclusive: bool = False,
        listens: Mapping[str, Collection[str]] | None = None,
    ) -> WorkerInfo:
        """Register this store as a worker of the database (see `Store.register_worker`)."""
        self._check_open()
        return await self._leases.register(worker_id, lease_seconds, exclusive, listens)

    async def renew_worker(self) -> list[str]:
        """Extend this worker's lease; the runs it lost if the lease had lapsed (see `Store`)."""
        return await self._leases.renew()

    async def claim_runs(
        self, limit: int, statuses: Collection[RunStatus] = CLAIMABLE, *, workflows: Collection[str] | None = None
    ) -> list[Lease]:
        """Claim unowned or orphaned runs, ``FOR UPDATE SKIP LOCKED`` (see `Store.claim_runs`)."""
        return await self._leases.claim_runs(limit, statuses, workflows)

    async def unclaimed_workflows(self, statuses: Collection[RunStatus], registered: Collection[str]) -> list[str]:
        """See `Store.unclaimed_workflows`."""
        return await self._leases.unclaimed_workflows(statuses, registered)

    async def claim_run(self, run_id: str) -> Lease | None:
        """Claim one run unless a live worker owns it (see `Store.claim_run`)."""
        return await self._leases.claim_run(run_id)

    async def release_runs(self, run_ids: Collection[str]) -> None:
        """Give up this worker's leases on ``run_ids``."""
        await self._leases.release(run_ids)

    async def list_workers(self) -> list[WorkerInfo]:
        """The registered workers, with the runs each owns."""
        return await self._leases.list_workers()

    async def run_owners(self, run_ids: Collection[str]) -> dict[str, str | None]:
        """The worker that owns each of ``run_ids`` (see `Store.run_owners`)."""
        return await self._leases.run_owners(run_ids)

    async def subscribe(self, listener: Listener) -> Subscription:
        """LISTEN for new inbox messages and new runs on a connection of its own (see `Store`)."""
        self._check_open()
        sub = PgSubscription(lambda: self._connect("listener"), listener)
        await sub.open()
        self._subscriptions.append(sub)
        return sub


def _json_term(value: Any) -> str:
    """A filter value as the index holds it: JSON, booleans as 0/1 (as SQLite's index)."""
    return msgspec.json.encode(int(value) if isinstance(value, bool) else value).decode()
