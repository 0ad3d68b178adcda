"""Which version the next segment of a run runs when it continues as new: the newest registered
(it replays nothing of the last segment, so new code is safe there), unless the run was pinned
to its version at its start; ``ctx.continue_as_new(..., version=)`` overrides both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wayline import RunContext, RunFailed, open_runtime, workflow
from wayline.errors import InvalidArgumentError
from wayline.history import ContinuedAsNew
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


def _ticker(label: str) -> Any:
    """Version ``label`` of "ticker": each segment waits for a "go", notes its version, and
    continues as new while ``left`` > 0, on version ``to`` if the input names one."""

    @workflow(name="ticker", version=label)
    async def ticker(ctx: RunContext, state: dict[str, Any]) -> list[str]:
        await ctx.wait_signal("go")
        seen = [*state["seen"], f"{label}@{ctx.version}"]
        if state["left"] > 0:
            to = state.get("to")
            ctx.continue_as_new({**state, "left": state["left"] - 1, "seen": seen}, version=to)
        return seen

    return ticker


V1, V2 = _ticker("1"), _ticker("2")


async def _segments(rt: Any, run_id: str) -> list[str]:
    return [e.version for e in [e async for e in rt.history(run_id)] if isinstance(e, ContinuedAsNew)]


async def test_an_unpinned_run_continues_on_the_newest_version(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[V1], clock=VirtualClock()) as rt:
        await rt.start(V1, {"left": 1, "seen": []}, run_id="t")
        assert (await rt.describe("t")).version == "1"
    # Version 2 is deployed beside version 1 while the run waits in its first segment.
    async with open_runtime(db, workflows=[V1, V2], clock=VirtualClock()) as rt:
        await rt.signal("t", "go")  # the run, on version 1, continues as new: on version 2
        await rt.signal("t", "go")
        assert await rt.get_handle("t").result() == ["1@1", "2@2"]
        info = await rt.describe("t")
        assert info.version == "2" and "pinned" not in info.metadata
        assert await _segments(rt, "t") == ["2"]


@pytest.mark.parametrize("how", ["version=", "name:version"])
async def test_a_pinned_run_keeps_its_version(tmp_path: Path, how: str) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[V1, V2], clock=VirtualClock()) as rt:
        state = {"left": 2, "seen": []}
        if how == "version=":
            handle = await rt.start(V1, state, run_id="t", version="1")
        else:
            handle = await rt.start("ticker:1", state, run_id="t")
        for _ in range(3):
            await rt.signal("t", "go")
        assert await handle.result() == ["1@1", "1@1", "1@1"]
        info = await rt.describe("t")
        assert info.version == "1" and info.metadata["pinned"] is True
        assert await _segments(rt, "t") == ["1"]  # the last segment's history: its own start


async def test_the_version_argument_overrides_the_default(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[V1, V2], clock=VirtualClock()) as rt:
        # A pinned run moved on to version 2 by its own code.
        moved = await rt.start(V1, {"left": 1, "seen": [], "to": "2"}, run_id="moved", version="1")
        # An unpinned run (a registered definition given: not a pin) that asks to stay on 1.
        stays = await rt.start("ticker", {"left": 1, "seen": [], "to": "1"}, run_id="stays", version=None)
        for run_id in ("moved", "stays"):
            await rt.signal(run_id, "go")
            await rt.signal(run_id, "go")
        assert await moved.result() == ["1@1", "2@2"]
        assert await stays.result() == ["2@2", "1@1"]  # started on the newest, then stayed on 1 as asked


async def test_a_version_not_registered_fails_the_run_naming_it(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[V1, V2], clock=VirtualClock()) as rt:
        handle = await rt.start(V2, {"left": 1, "seen": [], "to": "9"}, run_id="t")
        await rt.signal("t", "go")
        with pytest.raises(RunFailed) as failed:
            await handle.result()
        assert failed.value.error == "VersionNotFoundError"
        assert "no version '9' registered" in (failed.value.cause or "") and "'1', '2'" in (failed.value.cause or "")


def test_a_version_that_is_no_label_is_refused_at_the_call() -> None:
    from wayline.runtime import RunContext as Ctx
    from wayline.testing import VirtualClock as Clock

    ctx = Ctx("r", "ticker", "1", Clock())
    with pytest.raises(InvalidArgumentError, match=r"ctx\.continue_as_new.*version"):
        ctx.continue_as_new({}, version="")
