"""Which database the demo runs on, and the promise that it never loses anyone's runs.

Without ``--db`` the demo makes a fresh temporary database of its own. With ``--db PATH`` it
looks before it writes: a path that does not exist is created, a database with no runs is
used as it is, and a database that holds only the demo's own runs is started afresh (or
reused with ``--keep``). A database with runs of any other workflow is refused, with what to
do instead: the demo deletes a file only when every run in it is the demo's.

It reads the file with SQLite in read-only mode, so looking changes nothing, not even the
schema version of a database from another wayline version.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import urllib.parse
from dataclasses import dataclass

from ._order import WORKFLOW

#: The files SQLite keeps beside a database in WAL mode (and in rollback mode).
_COMPANIONS = ("", "-wal", "-shm", "-journal")


class DatabaseRefused(Exception):
    """The demo will not run on the given database; the message says why and what to do."""

    def __init__(self, why: str, todo: str, db: str | None = None) -> None:
        self.db = db
        super().__init__(f"{f'--db {db}: ' if db is not None else ''}{why}; {todo}")


_FRESH_INSTEAD = (
    "run the demo without --db (it makes a fresh temporary database), or give --db a path that does not exist yet"
)


@dataclass(frozen=True)
class DemoDatabase:
    """The database the demo runs on and how it came to be chosen (shown to the user)."""

    path: str
    origin: str
    #: True if the demo may find its run already there (``--keep`` on a database it used before).
    reused: bool = False


def choose(db: str | None, *, keep: bool) -> DemoDatabase:
    """The database for this demo run, made ready: a fresh temporary one unless ``db`` is given.

    Raises:
        DatabaseRefused: ``db`` holds runs of other workflows, is not a wayline database, or
            cannot be read; or ``keep`` was given without ``db``.
    """
    if db is None:
        if keep:
            raise DatabaseRefused(
                "--keep reuses a database given with --db, and none was given",
                "add --db PATH of an earlier demo's database, or leave out --keep",
            )
        folder = tempfile.mkdtemp(prefix="wayline-demo-")
        return DemoDatabase(os.path.join(folder, "demo.db"), "a fresh temporary database")
    path = os.path.abspath(db)
    if not os.path.lexists(path):
        return DemoDatabase(path, "created for the demo")
    if os.path.isdir(path):
        raise DatabaseRefused("it is a directory", "give --db the path of a database file", db)
    runs = runs_by_workflow(db, path)
    others = {name: count for name, count in runs.items() if name != WORKFLOW}
    if others:
        listed = ", ".join(f"{count} of {name!r}" for name, count in sorted(others.items())[:5])
        more = f" and {len(others) - 5} more workflows" if len(others) > 5 else ""
        raise DatabaseRefused(
            f"it holds runs of other workflows ({listed}{more}). "
            "The demo never writes to or deletes a database with runs that are not its own",
            _FRESH_INSTEAD,
            db,
        )
    if not runs:
        return DemoDatabase(path, "an existing database with no runs, used as it is")
    if keep:
        return DemoDatabase(path, "an earlier demo's database, reused (--keep)", reused=True)
    for suffix in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    return DemoDatabase(path, "an earlier demo's database, started afresh; --keep would reuse it")


def runs_by_workflow(db: str, path: str) -> dict[str, int]:
    """How many runs of each workflow the database at ``path`` holds, read without writing.

    Raises:
        DatabaseRefused: the file is not a SQLite database, is one that wayline did not make,
            or cannot be read.
    """
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DatabaseRefused(f"cannot be opened: {exc}", _FRESH_INSTEAD, db) from None
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return {}  # an empty file, or a SQLite database with nothing in it yet
        if "runs" not in tables:
            names = ", ".join(sorted(tables))
            raise DatabaseRefused(
                f"it is a SQLite database but not a wayline one (tables: {names})", _FRESH_INSTEAD, db
            )
        return dict(conn.execute("SELECT workflow, COUNT(*) FROM runs GROUP BY workflow").fetchall())
    except sqlite3.DatabaseError as exc:
        # "file is not a database", a locked or damaged file: whatever it is, it is not the demo's.
        raise DatabaseRefused(f"cannot be read as a wayline database ({exc})", _FRESH_INSTEAD, db) from None
    finally:
        conn.close()
