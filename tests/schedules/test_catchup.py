"""Fires missed while no runtime ran: a real restart of the runtime on the same database after
3 hours down. Those within the catch-up window run once each (or as the overlap policy says),
older ones are skipped and counted, and nothing fires twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wayline import RunContext, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
MIN = 60.0


@workflow(name="sync")
async def sync(ctx: RunContext) -> float:
    return ctx.now()


async def _fires(rt: Any) -> list[tuple[float, float]]:
    """(nominal fire minute, start minute) of each run, both after T0."""
    runs = await rt.list_runs(workflow="sync")
    return sorted(((r.metadata["scheduled_at"] - T0) / MIN, (r.created_at - T0) / MIN) for r in runs)


@pytest.mark.parametrize(
    ("overlap", "after_restart"),
    [
        # 210 and 240 are within the hour before the restart at 241: each runs once.
        ("allow_all", [(210, 241), (240, 241)]),
        # Under skip, the first catch-up run still goes when 240 is decided: 240 is skipped.
        ("skip", [(210, 241)]),
    ],
)
async def test_catch_up_after_three_hours_down(
    tmp_path: Path, overlap: str, after_restart: list[tuple[float, float]]
) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[sync], clock=VirtualClock(T0)) as rt:
        await rt.create_schedule("half-hourly", sync, every=30 * MIN, catchup_window=60 * MIN, overlap=overlap)
        await rt.clock.sleep(61 * MIN)
        before = await _fires(rt)
    assert before == [(30, 30), (60, 60)]

    # The process is down from minute 61 to minute 241: fires at 90 ... 240 were missed.
    async with open_runtime(db, workflows=[sync], clock=VirtualClock(T0 + 241 * MIN)) as rt:
        await rt.clock.sleep(1)
        fires = await _fires(rt)
        info = await rt.get_schedule("half-hourly").describe()
    assert fires == before + after_restart
    assert info.missed == 4  # 90, 120, 150, 180: older than the window
    missed = [a for a in info.recent if a.outcome == "missed"]
    assert [(a.count, (a.at - T0) / MIN, ((a.until or 0) - T0) / MIN) for a in missed] == [(4, 90, 180)]
    assert info.skipped == (1 if overlap == "skip" else 0)
    assert info.next_fires[0] == T0 + 270 * MIN

    # Opened again at the same moment: nothing fires twice.
    async with open_runtime(db, workflows=[sync], clock=VirtualClock(T0 + 241 * MIN)) as rt:
        await rt.clock.sleep(1)
        assert await _fires(rt) == fires


async def test_a_run_decided_but_not_started_before_a_crash_starts_after_it(tmp_path: Path) -> None:
    # The pass stores its decision first, then starts the run: a crash in between must not
    # lose the run. Played here by a store that dies right after the schedule's write.
    from wayline.persistence import SQLiteStore
    from wayline.testing import FaultInjectingStore, SimulatedCrash

    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[sync], clock=VirtualClock(T0)) as rt:
        await rt.create_schedule("hourly", sync, every=60 * MIN)
    faulty = FaultInjectingStore(SQLiteStore(db), crash_at=1, when="after")
    with pytest.raises(SimulatedCrash, match="after write #1"):  # the pass's write, made at open
        async with open_runtime(faulty, workflows=[sync], clock=VirtualClock(T0 + 61 * MIN)) as rt:
            await rt.clock.sleep(1)
    assert faulty.writes == 1
    async with open_runtime(db, workflows=[sync], clock=VirtualClock(T0 + 62 * MIN)) as rt:
        await rt.clock.sleep(1)
        assert await _fires(rt) == [(60, 62)]
