"""Two runtimes on one database file (a rolling deploy starts the new process first)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import anyio
import pytest

from _support import Changes
from wayline import RunContext, activity, open_runtime, workflow
from wayline._errors import DatabaseLockedError

pytestmark = pytest.mark.anyio

ran: Counter[int] = Counter()
GATE: dict[str, asyncio.Event] = {}
stepping = Changes()  # told as each step starts


@activity(name="s")
async def s(i: int) -> int:
    ran[i] += 1
    stepping.changed()
    await GATE["go"].wait()
    return i


@workflow(name="two_steps")
async def two_steps(ctx: RunContext) -> list[int]:
    return [await ctx.run(s, 0), await ctx.run(s, 1)]


async def test_a_second_runtime_on_a_live_database_never_runs_steps_twice(tmp_path: Path) -> None:
    ran.clear()
    GATE["go"] = asyncio.Event()
    path = tmp_path / "shared.db"
    async with open_runtime(path, workflows=[two_steps]) as first:
        handle = await first.start(two_steps, run_id="r")
        await stepping.until(lambda: ran[0] > 0)
        try:
            async with open_runtime(path, workflows=[two_steps]) as second:
                for _ in range(50):  # a run it recovered (it must not) would start its step meanwhile
                    await asyncio.sleep(0)
                GATE["go"].set()
                with anyio.fail_after(5):
                    assert await handle.result() == [0, 1]
                    assert await second.get_handle("r").result() == [0, 1]
        except DatabaseLockedError:
            GATE["go"].set()  # refusing the second owner is a fine answer too
            with anyio.fail_after(5):
                assert await handle.result() == [0, 1]
    assert ran == {0: 1, 1: 1}


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
async def test_the_owner_lock_sees_through_a_symlinked_path(tmp_path: Path) -> None:
    real = tmp_path / "data" / "wayline.db"
    real.parent.mkdir()
    alias = tmp_path / "alias.db"
    async with open_runtime(real, workflows=[two_steps]):
        alias.symlink_to(real)
        with pytest.raises(DatabaseLockedError):
            async with open_runtime(alias, workflows=[two_steps]):
                pass


async def test_one_owner_at_a_time_and_inspectors_are_welcome(tmp_path: Path) -> None:
    from wayline._errors import DatabaseOwnedError

    ran.clear()
    GATE["go"] = asyncio.Event()
    path = tmp_path / "owned.db"
    async with open_runtime(path, workflows=[two_steps]) as owner:
        handle = await owner.start(two_steps, run_id="r")
        with pytest.raises(DatabaseOwnedError) as info:
            async with open_runtime(path, workflows=[two_steps]):
                pass
        assert str(path) in str(info.value)
        # a client that does not recover (a CLI, a dashboard) may open it alongside
        async with open_runtime(path, workflows=[two_steps], worker=False) as inspector:
            assert (await inspector.describe("r")).status.value == "RUNNING"
        GATE["go"].set()
        with anyio.fail_after(5):
            assert await handle.result() == [0, 1]
    assert ran == {0: 1, 1: 1}
    async with open_runtime(path, workflows=[two_steps]) as next_owner:  # released on close
        assert await next_owner.get_handle("r").result() == [0, 1]
