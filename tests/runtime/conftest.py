from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["memory", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a runtime keeps its runs: the in-memory store or a real SQLite file."""
    return ":memory:" if request.param == "memory" else str(tmp_path / "wayline.db")
