"""Another connection holding the write lock: the runtime waits, past the busy timeout too."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import anyio
import pytest

from _support import Changes
from wayline import RunContext, RunStatus, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore

pytestmark = pytest.mark.anyio

ran: Counter[int] = Counter()
GATE: dict[str, asyncio.Event] = {}
stepping = Changes()  # told as each step starts


@activity(name="n")
async def n(i: int) -> int:
    ran[i] += 1
    stepping.changed()
    if i == 1:
        await GATE["go"].wait()
    return i


@workflow(name="three")
async def three(ctx: RunContext) -> list[int]:
    return [await ctx.run(n, i) for i in range(3)]


def hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.parametrize(("hold", "busy_timeout"), [(0.1, 2.0), (0.6, 0.2)], ids=["waits", "waits-degraded"])
async def test_a_run_survives_another_writer_holding_the_lock(
    tmp_path: Path, hold: float, busy_timeout: float, caplog: pytest.LogCaptureFixture
) -> None:
    ran.clear()
    GATE["go"] = asyncio.Event()
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=busy_timeout)
    async with open_runtime(store, workflows=[three]) as rt:
        handle = await rt.start(three, run_id="l")
        await stepping.until(lambda: ran[1] > 0)
        held = threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(path, hold, held))
        holder.start()
        try:
            await anyio.to_thread.run_sync(held.wait)
            GATE["go"].set()  # step 1 finishes while the lock is held: its checkpoint must wait
            with anyio.fail_after(15):
                assert await handle.result() == [0, 1, 2]
        finally:
            await anyio.to_thread.run_sync(holder.join)
        info = await rt.describe("l")
    assert info.status is RunStatus.SUCCEEDED
    # Nothing crashed: the checkpoint of step 1 waited for the lock, so no step ran twice
    # (a checkpoint that failed used to crash the run, which ran step 1 again on restart).
    assert ran == {0: 1, 1: 1, 2: 1}
    assert not [r for r in caplog.records if "crashed" in r.getMessage()]
    # Held past the busy timeout, the store said it could not write and why, then that it could again.
    said = [r.getMessage() for r in caplog.records if r.name == "wayline.store"]
    if hold > busy_timeout:
        assert any("is locked by another process" in m and "Runs wait" in m for m in said), said
        assert any("accepts writes again" in m for m in said), said
    else:
        assert said == []
