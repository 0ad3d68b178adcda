"""Child runs and continue-as-new on PostgreSQL: a parent's child ends through the inbox, and a
continued run's segments write their history rows over the earlier ones."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from children.test_children import order_wf, ship
from children.test_continue_as_new import counter
from wayline import RunStatus, open_runtime
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_family_and_an_eternal_run_on_postgres(pg_url: str) -> None:
    import asyncpg

    async with open_runtime(pg_url, workflows=[order_wf, ship, counter], clock=VirtualClock()) as rt:
        with anyio.fail_after(60):
            out = await (await rt.start(order_wf, {"id": "o1", "items": ["a"]}, run_id="o1")).result()
            loop = await (await rt.start(counter, {"n": 0, "until": 30}, run_id="eternal")).result()
        kid = await rt.describe("o1/0")
        events: list[Any] = [e async for e in rt.history("eternal")]
    assert out == {"shipped": {"order": "o1", "boxes": ["packed-a"]}}
    assert kid.status is RunStatus.SUCCEEDED
    assert loop["n"] == 30
    assert len(events) <= 8  # the last segment's alone
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetchval("SELECT COUNT(*) FROM wayline.history WHERE run_id = 'eternal'")
    finally:
        await conn.close()
    assert rows <= 2  # written over segment after segment
