"""A fresh PostgreSQL database per scenario, for the ``*-pg`` rows (child-process side).

The server is ``$WAYLINE_BENCH_POSTGRES`` (a URL whose user may create databases), by default
the local one our machines run. Where it cannot be reached the row is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    # On a thread with a loop of its own: a peer time-boxed with thousands of runs in flight
    # keeps this process's loop too busy to finish a connection in time (seen with DBOS at
    # 10,000 runs: the drop's connect timed out).
    await asyncio.to_thread(lambda: asyncio.run(_admin_here(sql)))


@contextlib.asynccontextmanager
async def fresh_database(create: bool = True) -> AsyncIterator[str]:
    """The URL of a new database (``create=False``: only its name is new, for a system that
    creates its database itself), dropped afterwards whatever happened."""
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
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
