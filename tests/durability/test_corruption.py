"""A damaged row must give a precise error and must not take healthy runs down with it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import anyio
import pytest

from _support import idle
from wayline import RunContext, activity, open_runtime, workflow
from wayline._errors import DatabaseCorruptError
from wayline.persistence import SQLiteStore
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

GATE = {"open": False}


@activity(name="s")
async def s(i: int) -> int:
    if not GATE["open"]:
        await asyncio.Event().wait()
    return i * 10


@workflow(name="w")
async def w(ctx: RunContext, i: int) -> int:
    return await ctx.run(s, i)


async def make_db_with_a_damaged_run(path: Path) -> None:
    GATE["open"] = False
    async with open_runtime(path, workflows=[w], clock=VirtualClock()) as rt:
        await rt.start(w, 1, run_id="good")
        await rt.start(w, 2, run_id="bad")
        await idle(rt)  # both steps run, and wait at the gate
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET snapshot = ? WHERE run_id = 'bad'", (b"\xc1 not msgpack",))
    conn.commit()
    conn.close()
    GATE["open"] = True


async def test_a_damaged_snapshot_raises_database_corrupt_error(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    await make_db_with_a_damaged_run(path)
    store = SQLiteStore(path)
    await store.start()
    try:
        with pytest.raises(DatabaseCorruptError) as info:
            await store.get_run("bad")
        assert "bad" in str(info.value)
        good = await store.get_run("good")
        assert good is not None and good.input == 1
    finally:
        await store.close()


async def test_healthy_runs_recover_despite_a_damaged_one(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await make_db_with_a_damaged_run(path)
    async with open_runtime(path, workflows=[w], clock=VirtualClock()) as rt:
        with anyio.fail_after(5):
            assert await rt.get_handle("good").result() == 10
        with pytest.raises(DatabaseCorruptError):
            await rt.describe("bad")
