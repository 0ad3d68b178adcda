"""A fresh PostgreSQL database per scenario, for the ``*-pg`` rows (child-process side).

The server is ``$WAYLINE_BENCH_POSTGRES`` (a URL whose user may create databases), by default
the local one our machines run. Where it cannot be reached the row is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from ._common import Skipped

SERVER = os.environ.get("WAYLINE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class NoServer(Skipped):
    """No PostgreSQL server to measure on."""

    def __init__(self, detail: str) -> None:
        Exception.__init__(
            self, f"no PostgreSQL server at {SERVER} ({detail}); set WAYLINE_BENCH_POSTGRES=postgresql://..."
        )
        self.package = "postgres"


def url_of(database: str) -> str:
    return urlunsplit(urlsplit(SERVER)._replace(path=f"/{database}"))


async def _admin_here(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(SERVER, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _admin(sql: str) -> None:
    # On a thread with a loop of its own, so a busy loop here cannot time its connection out.
    await asyncio.to_thread(lambda: asyncio.run(_admin_here(sql)))


def _drop_later(name: str) -> None:
    """Drop the database from a process of its own, not waited for: a peer time-boxed with
    thousands of runs in flight keeps this process too busy for it (DBOS at 10,000 runs held
    an in-process drop for minutes), and the child exits hard once it has reported."""
    script = (
        "import asyncio, asyncpg\n"
        "async def main():\n"
        f"    conn = await asyncpg.connect({SERVER!r}, timeout=30)\n"
        f"    await conn.execute('DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)')\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.Popen(
        [sys.executable, "-c", script],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.asynccontextmanager
async def fresh_database(create: bool = True) -> AsyncIterator[str]:
    """The URL of a new database, dropped afterwards whatever happened. ``create=False``: only
    its name is new, for a system that creates its database itself (DBOS); that one is dropped
    by a detached process (see `_drop_later`)."""
    try:
        import asyncpg  # noqa: F401
    except ImportError as exc:
        raise Skipped("asyncpg") from exc
    name = f"wayline_bench_{uuid.uuid4().hex[:12]}"
    try:
        await _admin("SELECT 1")
    except (OSError, TimeoutError) as exc:
        raise NoServer(str(exc)) from exc
    if create:
        await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield url_of(name)
    finally:
        if create:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            _drop_later(name)
