"""step_info(): what an activity knows about its attempt, and idempotency keys across crashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import find_crash
from wayline import RetryPolicy, RunContext, StepInfo, activity, open_runtime, step_info, workflow
from wayline.persistence import SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

seen: list[StepInfo] = []


@activity(name="probe", retry=RetryPolicy(max_attempts=3, interval=1.0))
async def probe(fail_first: bool) -> str:
    info = step_info()
    seen.append(info)
    if fail_first and info.attempt == 1:
        raise RuntimeError("first attempt fails")
    return info.idempotency_key


@workflow(name="probed")
async def probed(ctx: RunContext) -> list[Any]:
    a = await ctx.run(probe, False)
    b = await ctx.run(probe, True)
    c = await ctx.gather(ctx.run(probe, False), ctx.run(probe, False))
    return [a, b, c]


async def test_step_info_describes_each_attempt(db: str) -> None:
    seen.clear()
    async with open_runtime(db, workflows=[probed], clock=VirtualClock()) as rt:
        out = await (await rt.start(probed, run_id="r")).result()
    assert out == ["r:0:1", "r:1:2", ["r:2:1", "r:3:1"]]
    assert [(i.run_id, i.step, i.index, i.attempt) for i in seen] == [
        ("r", "probe", 0, 1),
        ("r", "probe", 1, 1),
        ("r", "probe", 1, 2),
        ("r", "probe", 2, 1),
        ("r", "probe", 3, 1),
    ]
    assert seen[1].step_key == seen[2].step_key == "r:1"
    assert seen[1].idempotency_key != seen[2].idempotency_key


def test_step_info_outside_an_activity_raises() -> None:
    with pytest.raises(LookupError):
        step_info()


async def test_idempotency_key_is_the_same_when_a_crash_reruns_the_attempt(tmp_path: Path) -> None:
    seen.clear()
    path = tmp_path / "k.db"
    # writes: 1 create, 2 step 0 done; crash before write 3 (step 1's outcome) is committed
    store = FaultInjectingStore(SQLiteStore(path), crash_at=3, when="before")
    try:
        async with open_runtime(store, workflows=[probed], clock=VirtualClock()) as rt:
            await (await rt.start(probed, run_id="r")).result()
    except BaseException as exc:
        if find_crash(exc) is None:
            raise
    before = [i.idempotency_key for i in seen]
    seen.clear()
    async with open_runtime(path, workflows=[probed], clock=VirtualClock()) as rt:
        await rt.get_handle("r").result()
    after = [i.idempotency_key for i in seen]
    assert before == ["r:0:1", "r:1:1"]
    assert after[0] == "r:1:1"  # the interrupted attempt runs again under the same key
