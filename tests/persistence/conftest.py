from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wayline.persistence import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "store.db")
    await s.start()
    try:
        yield s
    finally:
        await s.close()
