"""The default store: one SQLite file in WAL mode, with group commit.

This module is the facade: it encodes what callers hand it, reads, and owns the lifecycle.
Writes go through the group commit (`._sqlite_writer`): one dedicated writer thread with its
own connection, one transaction and one fsync per batch. Reads use a separate aiosqlite
connection, so they never wait behind a commit (WAL lets readers run beside the writer).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import aiosqlite
import msgspec
from opentelemetry.metrics import MeterProvider

from .._errors import DatabaseCorruptError, EncryptionKeyError, SecretDecryptError, StoreError
from ._blobs import Offload, Offloader, PayloadLimits, has_refs, hydrate
from ._cancel_keys_sql import SQLiteCancelKeys
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
from ._events_sqlite import SQLiteEvents
from ._flow_sqlite import SQLiteFlow
from ._leases import SingleOwner
from ._metrics import CheckpointMetrics, observe_health, resolve_meter_provider
from ._pacing_sqlite import SQLitePacing
from ._purge import check_statuses, sqlite_purge
from ._records import AnyEvent, InboxMessage, RunRecord, RunStatus
from ._rotate import BlobTable, KeyRotation, Write, loose_rows, rotate
from ._schedules_sqlite import SQLiteSchedules
from ._search import filter_terms, search_terms
from ._secret import Unsealed
from ._sqlite_connect import Synchronous, open_write_connection
from ._sqlite_errors import translate
from ._sqlite_ownership import Ownership, lock_holder
from ._sqlite_sql import (
    DUE_RUNS,
    GET_HISTORY,
    GET_RUN,
    INBOX_OF_RUN,
    INBOX_SINCE,
    NEXT_WAKE,
    chunks,
    count_runs,
    list_runs,
    marks,
    term_reach,
)
from ._sqlite_writer import BlobRows, GroupCommit
from ._store import StoreHealth

log = logging.getLogger("wayline.store")


#: Below this many free bytes a filesystem counts as full: a group commit of a few runs
#: already needs more (each frame is a 4 KiB page).
LOW_SPACE = 64 * 1024


def _space_left(path: str) -> str | None:
    """Why the filesystem holding ``path`` is full, if it is (one statvfs call)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    # root may use the blocks reserved for it, and the runtime may well run as root
    blocks = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail
    free = blocks * st.f_frsize
    if free >= LOW_SPACE:
        return None
    return (
        f"the filesystem holding {directory!r} has {free} bytes free: no runtime can checkpoint runs on "
        "this database until space is freed"
    )


def _encodable(value: Any) -> bool:
    try:
        encode_raw(value)
    except ENCODE_ERRORS:
        return False
    return True


class SQLiteStore(SingleOwner):
    """A `Store` on one SQLite file.

    Args:
        path: the database file; created with owner-only permissions (0600) if missing.
        synchronous: SQLite's ``synchronous`` pragma. ``FULL`` (the default) fsyncs every
            commit, so a committed checkpoint survives power loss, not only a process crash.
        busy_timeout: seconds to wait for a lock held by another connection before the
            write counts as failed (runs then wait and retry; see `health`).
        idle_checkpoint: seconds without writes after which the write-ahead log is copied
            into the database file and emptied (None: only SQLite's automatic checkpoint
            every 1,000 pages). Committed state that lives only in the log is lost from the
            first damaged frame on; this keeps it to what the last second wrote.
        meter_provider: where the group commit reports its latency and batch sizes
            (OpenTelemetry); the global provider by default, nothing if none is configured.
        payload_limits: the largest a value and a run's vars may be, and from what size a
            value is kept out of the snapshot in the blob table (`PayloadLimits`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        idle_checkpoint: float | None = 1.0,
        meter_provider: MeterProvider | None = None,
        payload_limits: PayloadLimits | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.payloads = Offloader(payload_limits)
        #: The runtime's keys (`open_runtime(encryption_key=...)`): none until it sets them.
        self.sealer = Sealer(KeyRing(()))
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        provider = resolve_meter_provider(meter_provider)
        metrics = CheckpointMetrics(provider) if provider else None
        self._writes = GroupCommit(self.path, busy_timeout, metrics, idle_checkpoint)
        self._reader: aiosqlite.Connection | None = None
        self._reads = 0  # reads in flight
        self._ownership = Ownership(self.path)
        self.schedules = SQLiteSchedules(self._fetch, self._writes.transact, self.path, lambda: self.sealer)
        self.events = SQLiteEvents(self._fetch, self._writes.transact, lambda: self.sealer)
        self.flow = SQLiteFlow(self._fetch, self._writes.transact)
        self.cancel_keys = SQLiteCancelKeys(self._fetch)
        self.pacing = SQLitePacing(self._fetch, self._writes.transact)
        if provider is not None:
            observe_health(provider, weakref.WeakMethod(self.health))

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._writes.pending + self._reads

    @property
    def _wconn(self) -> sqlite3.Connection | None:
        """The writer thread's connection (tests watch its statements)."""
        return self._writes.conn

    async def start(self) -> None:
        try:
            await self._writes.start(self._connect)
            self._reader = await aiosqlite.connect(self.path, timeout=self.busy_timeout)
        except BaseException:
            await self._release()
            raise

    def _connect(self) -> sqlite3.Connection:
        """In the writer thread: open the write connection, and learn which file it opened."""
        conn = open_write_connection(self.path, self.synchronous, self.busy_timeout, self._ownership)
        self._writes.watch(self._ownership.real, self._ownership.identity)
        return conn

    def health(self) -> StoreHealth:
        """Whether this store's writes succeed, and if not why and since when. When its own
        writes are fine, a filesystem with (almost) no space left is reported too: a client
        that only reads (``wayline runs show``) then sees why the runtime running the runs is
        stuck, from another process."""
        health = self._writes.health()
        if health.ok:
            full = _space_left(self._ownership.real)
            if full is not None:
                return StoreHealth("degraded", "disk_full", full)
        return health

    def claim_ownership(self) -> None:
        """Become the one runtime that runs this database's runs, until `close`: a lock on
        the database file itself (see `._sqlite_ownership`).

        Clients that only start, signal or read runs do not claim it.

        Raises:
            DatabaseOwnedError: another runtime holds it.
        """
        self._ownership.claim()

    def owner_pid(self) -> int | None:
        """The pid of the process (on this host) that owns this database, None if none does;
        the store need not be open (see `._sqlite_ownership.lock_holder`).

        Raises:
            OSError: the file cannot be read, or the platform cannot tell (not Linux).
        """
        return lock_holder(self.path)

    async def close(self) -> None:
        """Commit what is queued and close.

        Raises:
            DatabaseDeletedError: the database file was deleted or replaced while open:
                what was committed since is lost, which must not pass unnoticed at exit.
        """
        await self._writes.close()
        await self._release()
        if self._writes.gone is not None:
            raise self._writes.gone

    async def _release(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        await self._writes.close()
        # Last: the ownership lock's descriptor may be closed only once no connection of
        # this store holds SQLite's locks on the file.
        self._ownership.detach()

    # --- writes --------------------------------------------------------------------------

    async def create_run(
        self, record: RunRecord, events: Sequence[AnyEvent], message: InboxMessage | None = None
    ) -> RunRecord | None:
        run_id = record.run_id

        def encode_all(record: RunRecord, events: list[AnyEvent]) -> tuple[bytes, bytes | None, BlobRows]:
            snapshot = encode_stored(record, what=f"input of run {run_id!r}", run_id=run_id)
            rows = encode_stored(events, what=f"history of run {run_id!r}", run_id=run_id) if events else None
            offload = self.payloads.prepare(record, events, len(snapshot), len(rows or b""))
            if offload is None:
                return snapshot, rows, None
            rows = store_encode(offload.events) if events else None
            return store_encode(offload.record), rows, _blob_rows(run_id, offload)

        snapshot, rows, blobs = encode_sealed(self.sealer, record, events, encode_all)
        meta = search_terms(record)
        row = (run_id, record.workflow, record.status.value, record.created_at, record.wake_at, snapshot, meta)
        data = None if message is None else encode_message(self.sealer, message, run_id)
        existing = await self._writes.create(row, None if rows is None else (run_id, 0, rows), blobs, data)
        return None if existing is None else await self._decode(run_id, existing)

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        # A plain function returning the commit future: with thousands of runs waiting on
        # commits, one coroutine frame fewer per waiting run is measurable GC work saved.
        run_id = record.run_id
        blobs = None
        try:
            if self.sealer.payloads or self.payloads.tracks(run_id):
                snapshot, rows, blobs = encode_sealed(self.sealer, record, events, self._encode_checkpoint)
            else:
                # The common checkpoint, inline (it runs for every step of every run): a record
                # that holds a plaintext Secret raises `Unsealed` and takes the path above.
                try:
                    snapshot = store_encode(record)
                    rows = store_encode(list(events)) if events else None
                except Unsealed:
                    snapshot, rows, blobs = encode_sealed(self.sealer, record, events, self._encode_checkpoint)
                else:
                    # Only a snapshot or events above the offload size hold a value that may be:
                    # the common checkpoint pays two length checks.
                    offload_bytes = self.payloads.limits.offload_bytes
                    if len(snapshot) > offload_bytes or (rows is not None and len(rows) > offload_bytes):
                        offload = self.payloads.prepare(record, list(events), len(snapshot), len(rows or b""))
                        if offload is not None:
                            snapshot = store_encode(offload.record)
                            rows = store_encode(offload.events) if events else None
                            blobs = _blob_rows(run_id, offload)
            meta = search_terms(record)
        except ENCODE_ERRORS as exc:
            # The message is only built here: this runs for every step of every run.
            what = "history" if _encodable(record) else "state"
            raise payload_error(exc, f"{what} of run {run_id!r}", run_id) from exc
        if record.status.finished:
            self.payloads.run_ended(run_id)
            self.sealer.run_ended(run_id)
        # The status member is a str; a run with no waits has no wake time (the common case).
        wake_at = record.wake_at if record.waits else None
        return self._writes.checkpoint(
            (run_id, record.workflow, record.status, record.created_at, wake_at, snapshot, meta),
            None if rows is None else (run_id, record.history_seq - 1, rows),
            consumed,
            record.status.finished,
            blobs,
        )

    def _encode_checkpoint(self, record: RunRecord, events: list[AnyEvent]) -> tuple[bytes, bytes | None, BlobRows]:
        run_id = record.run_id
        if self.payloads.tracks(run_id):
            # A run holding a large value: each value is encoded once, by the offload.
            offload = self.payloads.prepare(record, events, -1, -1)
            assert offload is not None
            rows = store_encode(offload.events) if events else None
            return store_encode(offload.record), rows, _blob_rows(run_id, offload)
        snapshot = store_encode(record)
        rows = store_encode(events) if events else None
        # Only a snapshot or events above the offload size hold a value that may be:
        # the common checkpoint pays two length checks.
        offload_bytes = self.payloads.limits.offload_bytes
        if len(snapshot) > offload_bytes or (rows is not None and len(rows) > offload_bytes):
            offload = self.payloads.prepare(record, events, len(snapshot), len(rows or b""))
            if offload is not None:
                rows = store_encode(offload.events) if events else None
                return store_encode(offload.record), rows, _blob_rows(run_id, offload)
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
        return await self._writes.transact(lambda conn: sqlite_purge(conn, before, chosen, workflow, limit, dry_run))

    async def rotate_keys(
        self,
        *,
        batch_size: int = 100,
        progress: Callable[[KeyRotation], Any] | None = None,
        wrap: Callable[[Write], Write] | None = None,
    ) -> KeyRotation:
        """Re-encrypt stored values with the current key, ``batch_size`` runs at a time (see
        `wayline.persistence._rotate`)."""

        async def read_runs(after: str, limit: int) -> list[Any]:
            return await self._fetch(
                "SELECT run_id, snapshot FROM runs WHERE run_id > ? ORDER BY run_id LIMIT ?", (after, limit)
            )

        async def read_history(run_ids: list[str]) -> list[Any]:
            return await self._fetch(
                f"SELECT run_id, seq, events FROM history WHERE run_id IN ({marks(len(run_ids))})", run_ids
            )

        def write(
            conn: sqlite3.Connection, snaps: list[tuple[str, bytes, bytes]], hist: list[tuple[str, int, bytes, bytes]]
        ) -> tuple[int, int]:
            n = sum(
                conn.execute(
                    "UPDATE runs SET snapshot = ? WHERE run_id = ? AND snapshot = ?", (new, run_id, old)
                ).rowcount
                for run_id, old, new in snaps
            )
            m = sum(
                conn.execute(
                    "UPDATE history SET events = ? WHERE run_id = ? AND seq = ? AND events = ?", (new, run_id, seq, old)
                ).rowcount
                for run_id, seq, old, new in hist
            )
            return n, m

        async def write_batch(
            snaps: list[tuple[str, bytes, bytes]], hist: list[tuple[str, int, bytes, bytes]]
        ) -> tuple[int, int]:
            return await self._writes.transact(lambda conn: write(conn, snaps, hist))

        async def write_rows(sql: str, params: list[tuple[Any, ...]]) -> int:
            def apply(conn: sqlite3.Connection) -> int:
                return sum(conn.execute(sql, p).rowcount for p in params)

            written: int = await self._writes.transact(apply)
            return written

        async def read_refs(run_ids: list[str]) -> list[Any]:
            return await self._fetch(
                f"SELECT run_id, digest FROM run_blobs WHERE run_id IN ({marks(len(run_ids))})", run_ids
            )

        async def write_blobs(changes: list[tuple[str, bytes, bytes]]) -> int:
            return await write_rows(
                "UPDATE blobs SET data = ?, size = ? WHERE digest = ? AND data = ?",
                [(new, len(new), digest, old) for digest, old, new in changes],
            )

        return await rotate(
            self.sealer,
            read_runs,
            read_history,
            write_batch,
            batch_size=batch_size,
            progress=progress,
            wrap=wrap,
            rows=loose_rows(self._fetch, write_rows, mark=lambda i: "?"),
            blobs=BlobTable(self._read_blobs, write_blobs, read_refs),
        )

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        data = encode_message(self.sealer, message, run_id)
        return await self._writes.append(run_id, data)

    # --- reads ---------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._reader is None:
            raise StoreError(f"database {self.path!r} is closed", path=self.path)
        self._reads += 1
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc
        finally:
            self._reads -= 1

    async def _decode(self, run_id: str, data: bytes) -> RunRecord:
        try:
            record = decode_record(data)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self.path, f"the snapshot of run {run_id!r} cannot be decoded: {exc}") from exc
        refs = has_refs(data)
        if refs:
            record = await hydrate(record, self._read_blobs, self.path, f"the snapshot of run {run_id!r}")
        if refs or may_hold_sealed(data):
            record = self.sealer.open_record(record)
        return record

    async def _rarest_first(
        self, terms: list[tuple[str, Any]], newest_first: bool, since: float | None
    ) -> list[tuple[str, Any]]:
        """The terms, the one that the listing finds least often first (see `term_reach`)."""
        reach: list[float] = []
        for key, value in terms:
            rows = await self._fetch(*term_reach(key, value, newest_first, since))
            if not rows:
                reach.append(-math.inf)  # fewer than a sample: the rarest there is
            else:
                reach.append(rows[0][0] if newest_first else -rows[0][0])
        order = sorted(range(len(terms)), key=lambda i: reach[i])
        return [terms[i] for i in order]

    async def _read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in chunks(digests, 500):
            for digest, data in await self._fetch(
                f"SELECT digest, data FROM blobs WHERE digest IN ({marks(len(chunk))})", chunk
            ):
                found[digest] = data
        return found

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        rows = await self._fetch(INBOX_SINCE, (seq, limit))
        return [
            (s, r, self.sealer.open_message(m, r)) for s, r, m in decode_inbox_rows(rows, self.path, placeholders=True)
        ]

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        rows = await self._fetch(DUE_RUNS, (until, RunStatus.WAITING.value, limit))
        return [(run_id, wake_at) for run_id, wake_at in rows]

    async def next_wake(self, after: float) -> float | None:
        rows = await self._fetch(NEXT_WAKE, (after, RunStatus.WAITING.value))
        return rows[0][0] if rows else None

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        rows = await self._fetch(INBOX_OF_RUN, (run_id,))
        found = decode_inbox_rows(((s, run_id, d) for s, d in rows), self.path)
        return [(s, self.sealer.open_message(message, run_id)) for s, _, message in found]

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(GET_RUN, (run_id,))
        return await self._decode(run_id, rows[0][0]) if rows else None

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        rows = await self._fetch(GET_HISTORY, (run_id, run_id))
        try:
            out = decode_history(rows)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self.path, f"the history of run {run_id!r} cannot be decoded: {exc}") from exc
        refs = any(has_refs(data) for _, _, data in rows)
        if refs:
            out = await hydrate(out, self._read_blobs, self.path, f"the history of run {run_id!r}")
        if refs or any(may_hold_sealed(data) for _, _, data in rows):
            out = self.sealer.open_events(out, run_id)
        return out

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        rows = await self._fetch(*count_runs(statuses))
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
        if len(terms) > 1:
            terms = await self._rarest_first(terms, newest_first, since)
        out = []
        for run_id, data in await self._fetch(*list_runs(statuses, workflow, since, newest_first, limit, terms)):
            try:
                out.append(await self._decode(run_id, data))
            except (DatabaseCorruptError, SecretDecryptError, EncryptionKeyError) as exc:
                # One damaged row must not hide (or stop the recovery of) every other run;
                # reading that run alone still raises.
                log.error("%s; it is left out of the listing", exc, extra={"run_id": run_id})
        return out


def _blob_rows(run_id: str, offload: Offload) -> BlobRows:
    if not offload.blobs and not offload.refs:
        return None
    return [(b.digest, len(b.data), b.data) for b in offload.blobs], [(run_id, d) for d in offload.refs]
