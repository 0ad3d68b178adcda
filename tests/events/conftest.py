"""Where the events tests keep their runs: in memory, a SQLite file, a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _postgres import fresh_database


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_database() as url:
            yield url
        return
    yield ":memory:" if request.param == "memory" else str(tmp_path / "wayline.db")
