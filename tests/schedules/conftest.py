"""Stores for the schedule tests: in memory, a SQLite file, a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from _postgres import fresh_database
from wayline.persistence import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A factory of store instances on one database (each call: another instance on it; the
    in-memory store has one instance only)."""
    if request.param == "postgres":
        from wayline.persistence import PostgresStore

        with fresh_database() as url:
            yield lambda: PostgresStore(url)
        return
    if request.param == "memory":
        only = MemoryStore()
        yield lambda: only
        return
    yield lambda: SQLiteStore(tmp_path / "store.db")


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    s = make_store()
    await s.start()
    try:
        yield s
    finally:
        await s.close()
