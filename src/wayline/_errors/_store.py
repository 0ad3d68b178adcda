"""Errors of the stores: the SQLite file, the PostgreSQL server, schema versions and leases."""

from __future__ import annotations

from ._base import WaylineError


class StoreError(WaylineError):
    """The store could not read or write (disk full, I/O error, closed store)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class DatabaseLockedError(StoreError):
    """Another process holds the database lock for longer than the busy timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            f"database {path!r} is locked by another process or connection and stayed locked "
            f"for {timeout:g}s; stop the other process or open a different database file",
            path=path,
        )


class DatabaseOwnedError(DatabaseLockedError):
    """Another runtime already runs the runs of this database."""

    def __init__(self, path: str) -> None:
        StoreError.__init__(
            self,
            f"database {path!r} is already run by another runtime (in this or another process); "
            "two runtimes would run the same steps twice. Stop the other one, or open this one "
            "with open_runtime(..., worker=False) to use the database as a client",
            path=path,
        )


class DatabaseCorruptError(StoreError):
    """The file is not a SQLite database, or its wayline schema is damaged."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r} is not a usable wayline database ({detail}); restore it from a "
            "backup or point wayline at a new file",
            path=path,
        )


class StoreUnavailableError(StoreError):
    """The database cannot be written right now (disk full, I/O error, a lock held too long):
    this call stored nothing. Runs already started are not failed: they wait, and go on by
    themselves once the store accepts writes again.

    Attributes:
        reason: what is wrong and what to do about it.
        since: when the store stopped accepting writes (epoch seconds).
    """

    def __init__(self, path: str, reason: str, since: float) -> None:
        self.reason = reason
        self.since = since
        super().__init__(
            f"{reason}. Nothing was stored for this call: retry it once the database accepts writes "
            "again (runs already started wait meanwhile, and then go on by themselves)",
            path=path,
        )


class DatabaseDeletedError(StoreError):
    """The database file was deleted or replaced while the runtime had it open."""

    def __init__(self, path: str, detail: str, copy_from: str | None = None) -> None:
        self.detail = detail
        self.copy_from = copy_from
        rescue = (
            f" Until this process exits, the data is still readable at {copy_from!r}: copy it back to "
            f"{path!r} (or elsewhere) before stopping the process, then restart on the copy."
            if copy_from
            else ""
        )
        super().__init__(
            f"database {path!r} was {detail} while this runtime had it open: whatever it committed "
            "is no longer in any file and is lost when this process exits. wayline accepts no more "
            f"work on it.{rescue} Otherwise restore the file from a backup and restart; never delete "
            "a database (or its -wal and -shm files) that a runtime has open",
            path=path,
        )


class DatabaseReadOnlyError(StoreError):
    """The database cannot be opened for writing: the file, its directory or its filesystem
    is read-only."""

    def __init__(self, path: str, why: str) -> None:
        self.why = why
        super().__init__(
            f"database {path!r} is read-only: {why}. wayline writes a checkpoint after every step, so it "
            "needs to write the file and to create its -wal and -shm files beside it: make them writable "
            "(remount the filesystem read-write, or fix the permissions), or copy the database to a "
            "writable place and open the copy",
            path=path,
        )


class DatabaseLinkedError(StoreError):
    """The database file has more than one hard link (name)."""

    def __init__(self, path: str, links: int) -> None:
        self.links = links
        super().__init__(
            f"database {path!r} has {links} hard links (names). SQLite names the -wal and -shm files "
            "after the name a process opens, so two names give two write-ahead logs: each process would "
            "see its own view, and writes through both corrupt the file. Remove the other names (find them "
            f"with `find / -samefile {path}`) and open the database through one name only (a symbolic "
            "link is fine)",
            path=path,
        )


class WalDamagedError(DatabaseCorruptError):
    """The write-ahead log is damaged in the middle: committed transactions follow the damage,
    and SQLite would drop them without a word.

    Attributes:
        frame: the first damaged frame (0: the log's header).
        frames: frames in the log.
        commits: committed transactions after the one holding the damage.
    """

    def __init__(self, path: str, frame: int, frames: int, commits: int) -> None:
        self.frame = frame
        self.frames = frames
        self.commits = commits
        self.detail = f"write-ahead log damaged at frame {frame} of {frames}" if frame else "WAL header damaged"
        where = f"at frame {frame} of {frames}" if frame else "in its header"
        StoreError.__init__(
            self,
            f"database {path!r}: its write-ahead log {path + '-wal'!r} is damaged {where}, and {commits} "
            "committed transaction(s) follow the one holding the damage. SQLite stops reading the log at "
            "the first bad frame and would drop them without a word, so the database was not opened and "
            "nothing was changed. Copy the database and its -wal file aside first; then restore both from "
            "a backup, or accept losing the transactions from the damage on by checkpointing what SQLite "
            'can read: python -c "import sqlite3; '
            f"sqlite3.connect({path!r}).execute('PRAGMA wal_checkpoint(TRUNCATE)')\"",
            path=path,
        )


class SchemaVersionError(StoreError):
    """The database was written by a newer wayline than this one."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path!r} has schema version {found}, but this wayline supports up to "
            f"{supported}; upgrade wayline to open it",
            path=path,
        )


class DatabaseUnreachableError(StoreError):
    """The PostgreSQL server cannot be reached (down, wrong host or port, network), or the
    connection was lost and could not be made again in time."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"cannot reach PostgreSQL at {url} ({detail}); check that the server is running and "
            "that the URL's host and port are right. Nothing was lost: every acknowledged write is committed",
            path=url,
        )


class DatabaseAuthError(StoreError):
    """The PostgreSQL server refused the URL's user or password."""

    def __init__(self, url: str, user: str, detail: str) -> None:
        self.url = url
        self.user = user
        super().__init__(
            f"PostgreSQL at {url} refused user {user!r} ({detail}); check the user and password in the "
            "URL (or PGPASSWORD / ~/.pgpass) and the server's pg_hba.conf",
            path=url,
        )


class DatabaseMissingError(StoreError):
    """The URL names a PostgreSQL database that does not exist."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        super().__init__(
            f"PostgreSQL database {database!r} does not exist at {url}; create it first "
            f"(`createdb {database}` or CREATE DATABASE {database}), wayline creates its tables itself",
            path=url,
        )


class DatabaseOwnedByWorkerError(DatabaseOwnedError):
    """Another live worker already runs the runs of this PostgreSQL database."""

    def __init__(self, url: str, worker_id: str, host: str, pid: int, seconds_left: float) -> None:
        self.url = url
        self.worker_id = worker_id
        StoreError.__init__(
            self,
            f"PostgreSQL database {url} is already run by worker {worker_id!r} (host {host!r}, pid {pid}); "
            "until the runtime runs several workers on one database, two would run the same steps twice. "
            f"Stop that worker, wait for its lease to expire ({seconds_left:.1f}s left if it is dead), or "
            "open this runtime with open_runtime(..., worker=False) to use the database as a client",
            path=url,
        )


class LeaseLostError(StoreError):
    """A checkpoint was refused: this worker no longer holds the run's lease (it expired and
    another worker claimed the run), so committing it would overwrite the new owner's state."""

    def __init__(self, run_id: str, worker_id: str, fence: int) -> None:
        self.run_id = run_id
        self.worker_id = worker_id
        self.fence = fence
        super().__init__(
            f"run {run_id!r}: worker {worker_id!r} lost its lease (fence {fence}) and may not commit it "
            "any more; another worker owns the run now. Drop the run from this worker: its last committed "
            "checkpoint is where the new owner goes on"
        )


class PostgresDriverMissingError(StoreError):
    """A ``postgresql://`` URL was given but asyncpg is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the PostgreSQL store needs the asyncpg driver; install it with pip install 'wayline[postgres]'"
        )
