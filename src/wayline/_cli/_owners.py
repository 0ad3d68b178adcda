"""Who runs what: the worker that owns each run (``runs list``'s OWNER column, ``runs show``)
and, on SQLite, the one process that owns the database.

On PostgreSQL each unfinished run names its owner, a registered worker (`Store.run_owners`).
A SQLite database has one owner, the process that holds its lock: it runs every unfinished
run, and registers nowhere another process can read, so a command names it by host and pid.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

from ..persistence import SQLiteStore, Store
from ..runtime import RunInfo


@dataclass(frozen=True)
class OwnerProcess:
    """The process that owns a SQLite database."""

    pid: int
    host: str
    command: str | None  # its command line, where it can be read

    @property
    def label(self) -> str:
        """How ``runs list`` names it (a PostgreSQL worker id reads ``host:pid:random``)."""
        return f"{self.host}:{self.pid}"


def sqlite_owner(store: SQLiteStore) -> OwnerProcess | None:
    """The process that owns ``store``'s database, None if none does.

    Raises:
        OSError: the platform cannot tell (see `SQLiteStore.owner_pid`).
    """
    pid = store.owner_pid()
    if pid is None:
        return None
    return OwnerProcess(pid, socket.gethostname(), _command_of(pid))


def _command_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # One line whatever the arguments hold (a `python -c` script has newlines).
    return " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split()) or None


async def run_owners(store: Store, runs: Sequence[RunInfo]) -> dict[str, str | None]:
    """The owner of each of ``runs``: a worker id, on SQLite the owning process's
    ``host:pid``, None for a finished or unowned run (or where the owner cannot be told)."""
    owners = await store.run_owners([r.run_id for r in runs])
    if isinstance(store, SQLiteStore) and not any(owners.values()):
        # This process is a client: the owner registered in its own process, not here.
        try:
            found = sqlite_owner(store)
        except OSError:
            found = None
        if found is not None:
            for r in runs:
                if not r.status.finished:
                    owners[r.run_id] = found.label
    return owners
