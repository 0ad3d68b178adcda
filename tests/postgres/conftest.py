from __future__ import annotations

from collections.abc import Iterator

import pytest

from _postgres import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh database of this test's own (skipped where no server is reachable)."""
    with fresh_database() as url:
        yield url
