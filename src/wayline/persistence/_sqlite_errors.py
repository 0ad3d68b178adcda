"""sqlite3 errors turned into the `StoreError` a user can act on, at the store's boundary."""

from __future__ import annotations

import os
import sqlite3

from .._errors import DatabaseCorruptError, DatabaseLockedError, DatabaseReadOnlyError, StoreError


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds a lock this one needs (SQLITE_BUSY or SQLITE_LOCKED)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def read_only_reason(path: str) -> str | None:
    """Why ``path`` cannot be written, if it cannot: the reasons SQLite reports only as
    "unable to open database file" or "attempt to write a readonly database"."""
    real = os.path.realpath(path)  # SQLite resolves symlinks, and names -wal and -shm after the result
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        return None  # no such directory: not a question of being read-only
    statvfs = getattr(os, "statvfs", None)  # not on Windows
    if statvfs is not None and statvfs(directory).f_flag & getattr(os, "ST_RDONLY", 1):
        return f"the filesystem holding {directory!r} is mounted read-only"
    for name, what in ((real, "the database file"), (f"{real}-wal", "its -wal file"), (f"{real}-shm", "its -shm file")):
        # access() also says no for an immutable file (chattr +i), even to root
        if os.path.exists(name) and not os.access(name, os.W_OK):
            return f"{what} {name!r} is not writable (permissions or an immutable flag)"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory!r} is not writable, and SQLite must create the -wal and -shm files there"
    return None


def translate(exc: BaseException, path: str, busy_timeout: float) -> StoreError:
    """Turn a sqlite3 error into the precise `StoreError` a user can act on."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        why = read_only_reason(path)
        if why is not None:
            return DatabaseReadOnlyError(path, why)
    if "locked" in text or "busy" in text:
        return DatabaseLockedError(path, busy_timeout)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return DatabaseCorruptError(path, str(exc))
    if "full" in text:
        return StoreError(
            f"database {path!r}: disk or database full ({exc}); free space and retry — "
            "the failed write was rolled back and nothing committed was lost",
            path=path,
        )
    return StoreError(f"database {path!r}: {exc}", path=path)


# SQLite's primary result codes for failures that may pass while the database itself is fine:
# a write that failed with one is rolled back whole and can be tried again later.
_OUTAGES = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    7: "no_memory",  # SQLITE_NOMEM
    8: "read_only",  # SQLITE_READONLY: e.g. the filesystem was remounted read-only
    10: "io_error",  # SQLITE_IOERR
    13: "disk_full",  # SQLITE_FULL
    14: "read_only",  # SQLITE_CANTOPEN: the -wal or -shm file cannot be opened
    15: "locked",  # SQLITE_PROTOCOL: a lock race that retrying resolves
}


def outage(exc: BaseException, path: str, busy_timeout: float) -> tuple[str, str] | None:
    """``(cause, reason)`` if ``exc`` says the database cannot be written *now* (disk full, an
    I/O error, a lock held too long...), so that the write can wait and be retried; None for
    anything else (corruption, a bug)."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        cause = _OUTAGES.get(code & 0xFF)
    else:  # raised by the sqlite3 module itself, without a result code
        cause = "locked" if is_busy(exc) else "disk_full" if "full" in str(exc).lower() else None
    if cause is None:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    db = f"database {path!r}"
    if cause == "disk_full":
        return cause, f"{db} is full ({exc}): free space on the filesystem holding {directory!r}"
    if cause == "io_error":
        return cause, f"{db} cannot be written: I/O error ({exc}); check the disk and its filesystem (kernel log)"
    if cause == "locked":
        return cause, (
            f"{db} is locked by another process or connection and stayed locked for more than {busy_timeout:g}s; "
            "stop what holds it (a long transaction, a backup or inspection tool)"
        )
    if cause == "read_only":
        why = read_only_reason(path) or f"SQLite cannot write its files ({exc})"
        return cause, f"{db} is read-only: {why}; make it writable again"
    return cause, f"{db} cannot be written: SQLite ran out of memory ({exc})"
