"""sqlite3 errors turned into the `StoreError` a user can act on, at the store's boundary."""

from __future__ import annotations

import sqlite3

from .._errors import DatabaseCorruptError, DatabaseLockedError, StoreError


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds a lock this one needs (SQLITE_BUSY or SQLITE_LOCKED)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def translate(exc: BaseException, path: str, busy_timeout: float) -> StoreError:
    """Turn a sqlite3 error into the precise `StoreError` a user can act on."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
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
