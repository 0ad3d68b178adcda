"""Each overlap policy, through a runtime on the virtual clock: what a fire does while the
schedule's previous run is still going."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wayline import Cancelled, RunContext, open_runtime, workflow
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@workflow(name="job")
async def job(ctx: RunContext) -> str:
    try:
        await ctx.wait_signal("done")  # runs until told
    except Cancelled:
        ctx.vars["cancelled"] = True
        raise
    return "done"


def _rid(minute: int) -> str:
    return f"every@2026-01-01T00:{minute:02d}:00Z"


async def _runs(rt: Any) -> dict[str, tuple[RunStatus, float]]:
    """Each run of the schedule: its status and when it started (seconds after T0)."""
    return {r.run_id: (r.status, r.created_at - T0) for r in await rt.list_runs(workflow="job")}


async def _open(overlap: str) -> Any:
    rt_cm = open_runtime(":memory:", workflows=[job], clock=VirtualClock(T0))
    rt = await rt_cm.__aenter__()
    await rt.create_schedule("every", job, every=60, overlap=overlap)
    await rt.clock.sleep(181)  # fires at 60, 120 and 180; the first run is still going
    return rt_cm, rt


async def _done(rt: Any, run_id: str) -> None:
    await rt.signal(run_id, "done")
    await rt.clock.sleep(1)  # virtual: whatever follows the run's end has happened


W, R, S, C = RunStatus.WAITING, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.CANCELLED


async def test_skip_drops_fires_while_a_run_goes() -> None:
    cm, rt = await _open("skip")
    try:
        assert await _runs(rt) == {_rid(1): (W, 60)}
        await _done(rt, _rid(1))
        assert await _runs(rt) == {_rid(1): (S, 60)}  # nothing starts until the next fire
        await rt.clock.sleep(60)
        assert await _runs(rt) == {_rid(1): (S, 60), _rid(4): (W, 240)}
        info = await rt.get_schedule("every").describe()
        assert (info.started, info.skipped) == (2, 2)
        assert [a.outcome for a in info.recent] == ["started", "skipped", "skipped", "started"]
    finally:
        await cm.__aexit__(None, None, None)


async def test_buffer_one_keeps_one_fire_for_when_the_run_ends() -> None:
    cm, rt = await _open("buffer_one")
    try:
        assert await _runs(rt) == {_rid(1): (W, 60)}
        info = await rt.get_schedule("every").describe()
        assert info.buffered == (T0 + 120,) and info.skipped == 1  # 180 found one waiting
        await _done(rt, _rid(1))
        assert await _runs(rt) == {_rid(1): (S, 60), _rid(2): (W, 181)}  # started at its end
    finally:
        await cm.__aexit__(None, None, None)


async def test_buffer_all_runs_every_fire_one_after_the_other() -> None:
    cm, rt = await _open("buffer_all")
    try:
        assert (await rt.get_schedule("every").describe()).buffered == (T0 + 120, T0 + 180)
        await _done(rt, _rid(1))
        assert await _runs(rt) == {_rid(1): (S, 60), _rid(2): (W, 181)}
        await _done(rt, _rid(2))
        runs = await _runs(rt)
        assert runs[_rid(3)] == (W, 182)  # the next buffered one, at the end of the previous
        assert runs[_rid(2)][0] is S
        assert (await rt.get_schedule("every").describe()).skipped == 0
    finally:
        await cm.__aexit__(None, None, None)


async def test_cancel_other_cancels_the_run_and_starts_the_fire_once_it_has_ended() -> None:
    cm, rt = await _open("cancel_other")
    try:
        runs = await _runs(rt)
        # 120: run 1 cancelled, fire 120 waited for its end and started; 180: the same to run 2.
        assert runs == {_rid(1): (C, 60), _rid(2): (C, 120), _rid(3): (W, 180)}
        assert (await rt.describe(_rid(1))).vars == {"cancelled": True}  # it saw the cancel
        info = await rt.get_schedule("every").describe()
        assert [a.outcome for a in info.recent].count("cancelled") == 2
    finally:
        await cm.__aexit__(None, None, None)


async def test_terminate_other_cancels_the_run_and_starts_the_fire_at_once() -> None:
    cm, rt = await _open("terminate_other")
    try:
        assert await _runs(rt) == {_rid(1): (C, 60), _rid(2): (C, 120), _rid(3): (W, 180)}
    finally:
        await cm.__aexit__(None, None, None)


async def test_allow_all_starts_every_fire() -> None:
    cm, rt = await _open("allow_all")
    try:
        assert await _runs(rt) == {_rid(1): (W, 60), _rid(2): (W, 120), _rid(3): (W, 180)}
        assert (await rt.get_schedule("every").describe()).running == ()
    finally:
        await cm.__aexit__(None, None, None)
