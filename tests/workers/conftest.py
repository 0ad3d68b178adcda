"""Real worker processes on a real database: each test gets a fresh PostgreSQL database (or a
SQLite file) with the ``executions`` table the workers record their steps in, and a `Procs`
that kills whatever the test started when it ends.

These tests run on asyncio only: the event loops under test are the workers' (one of them on
uvloop where a test starts several), and running each test twice would double the time the
directory takes for no new coverage of the runtime.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from _postgres import fresh_database

from ._harness import Procs
from .worker_proc import EXECUTIONS_DDL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    import asyncpg

    with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(EXECUTIONS_DDL)
        finally:
            await conn.close()
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh database of this test's own (skipped where no server is reachable), with the
    executions table; the runs' tables are the runtime's to create."""
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
def sqlite_record(tmp_path: Path) -> str:
    """A SQLite file with the executions table, for the tests of a SQLite store."""
    path = tmp_path / "executions.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(EXECUTIONS_DDL.replace("double precision", "real"))
        conn.commit()
    finally:
        conn.close()
    return str(path)


@pytest.fixture(params=["sqlite", "postgres"])
async def store_and_record(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_record: str
) -> AsyncIterator[tuple[str, str]]:
    """(the store, where the executions are recorded): a SQLite file, or a fresh PostgreSQL
    database holding both."""
    if request.param == "postgres":
        async with fresh_postgres() as url:
            yield url, url
    else:
        yield str(tmp_path / "wayline.db"), sqlite_record


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    folder = tmp_path / "procs"
    folder.mkdir()
    started = Procs(folder)
    try:
        yield started
    finally:
        started.close()
