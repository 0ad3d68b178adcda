"""The `store` fixture shared by the store-level tests (tests/persistence, tests/context): a
started store of each kind, in memory, in a SQLite file, in a fresh PostgreSQL database.

A conftest takes it over with ``from _stores import store as store``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from _postgres import fresh_database
from wayline.persistence import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        from wayline.persistence import PostgresStore

        with fresh_database() as url:
            s: Store = PostgresStore(url)
            await s.start()
            try:
                yield s
            finally:
                await s.close()
        return
    s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "store.db")
    await s.start()
    try:
        yield s
    finally:
        await s.close()
