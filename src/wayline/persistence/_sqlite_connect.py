"""Opening the SQLite store's write connection: the file, its pragmas and its migrations."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from .._errors import (
    DatabaseCorruptError,
    DatabaseLinkedError,
    DatabaseReadOnlyError,
    SchemaVersionError,
    StoreError,
    WalDamagedError,
)
from ._schema import MIGRATIONS, REQUIRED_TABLES, SCHEMA_VERSION
from ._sqlite_errors import is_busy, read_only_reason, translate
from ._sqlite_ownership import Ownership, identity_of
from ._sqlite_wal import check_wal

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")


def retry_locked(fn: Callable[[], T], busy_timeout: float) -> T:
    """Call ``fn`` (in the writer thread), retrying while another connection holds the lock."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def open_write_connection(
    path: str, synchronous: Synchronous, busy_timeout: float, ownership: Ownership | None = None
) -> sqlite3.Connection:
    """Create the file if missing (owner-only), check it, set the pragmas, migrate.
    Blocking: it runs in the writer thread, which then owns the connection.

    ``ownership`` is attached to the file (and must be detached once the connection is
    closed, even if this raises); without one, the write-ahead log is checked without the
    wal-index, walking it whole."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        why = read_only_reason(path)
        if why is not None:
            raise DatabaseReadOnlyError(path, why) from exc
        raise StoreError(f"cannot create database {path!r}: {exc}", path=path) from exc
    else:
        os.close(fd)
    check_file(path)
    # SQLite names the -wal and -shm files after the path with symlinks resolved
    real = os.path.realpath(path)
    if ownership is not None:
        ownership.attach(identity_of(path))
    try:
        # Zero busy timeout: waits for other processes' locks are done by `retry_locked`
        # in the writer thread, which checks its deadline between tries.
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, path, busy_timeout) from exc
    try:
        # A damaged log must be refused before anything writes on top of it, and checked
        # under the write lock, so that no other connection appends to it meanwhile. If
        # another connection holds that lock, the log is in use: its wal-index is live, and
        # SQLite replays nothing from the log's frames now, so there is nothing to check
        # (and a reader must not wait for a busy writer).
        if _write_lock_now(conn):
            try:
                check_wal(real, ownership.shm_header if ownership is not None else lambda: None)
            except WalDamagedError:
                _close_keeping_wal(conn, real)
                raise
            conn.execute("ROLLBACK")
        retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # A group commit of thousands of snapshots touches thousands of pages: a 32 MiB
        # page cache (SQLite's default is 2 MiB) keeps them in memory between batches
        # (~20% less insert time at 10,000 runs). It grows only as pages are used.
        conn.execute("PRAGMA cache_size = -32768")
        # Copy the WAL back into the database every 1,000 pages (SQLite's default; 4 MiB).
        # Until copied, committed state lives only in the WAL, where one damaged frame cuts
        # off every transaction after it. 4,096 pages were used before, on the idea that big
        # batches would each pay for a checkpoint; measured on the 2-core machine
        # (2026-12-07), 10,000 runs x 5 checkpoints through the store cost 16.2-16.5 us of
        # CPU per checkpoint at either setting (2 KB vars: 29.5-34.1 us, no difference), and
        # the throughput benchmark at 10,000 runs 47-55 us per step at either. The writer
        # also empties the WAL once writes pause (see GroupCommit._when_idle).
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
        retry_locked(lambda: migrate(conn, path), busy_timeout)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _write_lock_now(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` if the write lock is free this instant; False if it is held."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            return False
        raise
    return True


def _close_keeping_wal(conn: sqlite3.Connection, path: str) -> None:
    """Close ``conn`` without SQLite's checkpoint at close, which would copy the frames
    before the damage into the database and delete the log with everything after it.

    SQLite checkpoints at close only when it can lock the database exclusively, and a
    read-only connection never checkpoints: so a read-only connection in a read
    transaction is held open while ``conn`` closes, and is closed last.
    """
    guard = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        guard.execute("BEGIN")
        guard.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        conn.execute("ROLLBACK")
        conn.close()
    finally:
        guard.close()


def check_file(path: str) -> None:
    """Refuse, before SQLite opens it, a file that SQLite would open wrongly without a word:
    read-only (SQLite falls back to reading, and every write then fails), or with several
    hard links (each name gets its own -wal file: two views of one database).

    Raises:
        DatabaseReadOnlyError: the file, its directory or its filesystem is read-only.
        DatabaseLinkedError: the file has more than one hard link.
    """
    links = os.stat(path).st_nlink
    if links > 1:
        raise DatabaseLinkedError(path, links)
    why = read_only_reason(path)
    if why is not None:
        raise DatabaseReadOnlyError(path, why)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply the migrations this database lacks, each in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(path, version, SCHEMA_VERSION)
    if version > 0:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = REQUIRED_TABLES - tables
        # Tables added by migrations not applied yet are legitimately absent.
        if missing and version == SCHEMA_VERSION:
            raise DatabaseCorruptError(path, f"missing tables: {', '.join(sorted(missing))}")
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
