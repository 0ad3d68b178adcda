"""Opening the SQLite store's write connection: the file, its pragmas and its migrations."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from .._errors import DatabaseCorruptError, SchemaVersionError, StoreError
from ._schema import MIGRATIONS, REQUIRED_TABLES, SCHEMA_VERSION
from ._sqlite_errors import is_busy, translate

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


def open_write_connection(path: str, synchronous: Synchronous, busy_timeout: float) -> sqlite3.Connection:
    """Create the file if missing (owner-only), set the pragmas, migrate. Blocking: it runs
    in the writer thread, which then owns the connection."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create database {path!r}: {exc}", path=path) from exc
    else:
        os.close(fd)
    try:
        # Zero busy timeout: waits for other processes' locks are done by `retry_locked`
        # in the writer thread, which checks its deadline between tries.
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, path, busy_timeout) from exc
    try:
        retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # A group commit of thousands of snapshots touches thousands of pages: a 32 MiB
        # page cache (SQLite's default is 2 MiB) keeps them in memory between batches
        # (~20% less insert time at 10,000 runs). It grows only as pages are used.
        conn.execute("PRAGMA cache_size = -32768")
        # Copy the WAL back into the database every 4,096 pages (16 MiB) rather than
        # 1,000: one such batch can exceed 1,000 pages, so every commit would pay for a
        # checkpoint; batched, the pages rewritten by successive batches are copied once.
        conn.execute("PRAGMA wal_autocheckpoint = 4096")
        retry_locked(lambda: migrate(conn, path), busy_timeout)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn


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
