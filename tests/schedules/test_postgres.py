"""Schedules of a runtime on PostgreSQL: stored in the database, fired, found again by the next
runtime on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from _postgres import fresh_database
from wayline import RunContext, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@workflow(name="beat")
async def beat(ctx: RunContext) -> float:
    return ctx.now()


async def test_a_schedule_on_postgresql_fires_and_survives_a_restart() -> None:
    with fresh_database() as url:
        async with open_runtime(url, workflows=[beat], clock=VirtualClock(T0)) as rt:
            await rt.create_schedule("minutely", beat, every=60, overlap="allow_all")
            await rt.clock.sleep(181)
            first = sorted(r.run_id for r in await rt.list_runs(workflow="beat"))
        assert first == [f"minutely@2026-01-01T00:0{m}:00Z" for m in (1, 2, 3)]
        # Down for two minutes: both fires are within the default catch-up window.
        async with open_runtime(url, workflows=[beat], clock=VirtualClock(T0 + 301)) as rt:
            await rt.clock.sleep(1)
            runs = sorted(r.run_id for r in await rt.list_runs(workflow="beat"))
            info = await rt.get_schedule("minutely").describe()
        assert runs == [f"minutely@2026-01-01T00:0{m}:00Z" for m in (1, 2, 3, 4, 5)]
        assert (info.started, info.missed, info.next_fires[0]) == (5, 0, T0 + 360)
