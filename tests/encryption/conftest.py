"""Where the encryption tests keep their runs: a SQLite file, or a fresh PostgreSQL database
(the two stores that encrypt at rest; a module may define its own ``db``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_database() as url:
            yield url
        return
    yield str(tmp_path / "wayline.db")
