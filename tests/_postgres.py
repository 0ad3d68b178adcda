"""A fresh PostgreSQL database per test, on the server named by WAYLINE_TEST_POSTGRES.

The default is the local server our machines and CI run (127.0.0.1:5432, user postgres, trust
auth). Where it cannot be reached the PostgreSQL tests are skipped with one line saying how to
run them; `.ci/run` starts the local server first, so in CI they run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("WAYLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SKIP_REASON = (
    f"no PostgreSQL server at {ADMIN_URL}; to run these tests start one or set "
    "WAYLINE_TEST_POSTGRES=postgresql://user@host:port/db (a user that may create databases)"
)
_reachable: bool | None = None


def reachable() -> bool:
    """Whether the server accepts TCP connections (checked once)."""
    global _reachable
    if _reachable is None:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            _reachable = False
            return False
        parts = urlsplit(ADMIN_URL)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2):
                _reachable = True
        except OSError:
            _reachable = False
    return _reachable


def require_postgres() -> None:
    if not reachable():
        pytest.skip(SKIP_REASON)


def url_for(database: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{database}"))


async def admin(sql: str, *args: object) -> object:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _admin_sync(sql: str) -> None:
    # On a thread of its own: callers may be inside a running event loop (async fixtures).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(admin(sql))).result()


@contextlib.contextmanager
def fresh_database(prefix: str = "wayline_test") -> Iterator[str]:
    """Create a database of its own, yield its URL, drop it afterwards."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin_sync(f'CREATE DATABASE "{name}"')
    try:
        yield url_for(name)
    finally:
        _admin_sync(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def pg_stores(url: str, n: int) -> AsyncIterator[list[Any]]:
    """``n`` started `PostgresStore`s on ``url``: to the database, ``n`` worker processes."""
    from wayline.persistence import PostgresStore

    opened = [PostgresStore(url) for _ in range(n)]
    for s in opened:
        await s.start()
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()
