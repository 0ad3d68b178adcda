"""Schedules fire exactly on the instants their spec names, on the virtual clock: 30 days of
cron across daylight-saving changes, intervals, jitter, start and end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from wayline import RunContext, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

NEW_YORK = ZoneInfo("America/New_York")


@workflow(name="report")
async def report(ctx: RunContext, region: str) -> str:
    return f"{region} at {ctx.now()}"


def _local(day: datetime, hour: int, minute: int) -> datetime:
    """The instant a job set for ``hour:minute`` local time runs on ``day``, by cron's rule at
    a skipped hour (run right after the change) and a repeated one (run once, the first time):
    worked out from the zone's offsets here, not by the cron library."""
    naive = datetime(day.year, day.month, day.day, hour, minute)
    first = naive.replace(tzinfo=NEW_YORK, fold=0)
    if first.astimezone(UTC).astimezone(NEW_YORK).replace(tzinfo=None) != naive:
        # Skipped (clocks went forward over it): the first instant after the gap, on the hour.
        return datetime(day.year, day.month, day.day, hour + 1, 0, tzinfo=NEW_YORK)
    return first  # fold=0: the first of a repeated hour


async def _fired(rt: Any) -> list[tuple[float, float]]:
    """(nominal fire time, run start) of each scheduled run, in order."""
    runs = await rt.list_runs(workflow="report")
    return sorted((r.metadata["scheduled_at"], r.created_at) for r in runs)


@pytest.mark.parametrize(
    ("start", "minute_of_day"),
    [
        (datetime(2026, 3, 1, tzinfo=NEW_YORK), (2, 30)),  # 8 March: 02:00 -> 03:00, 02:30 does not exist
        (datetime(2026, 10, 15, tzinfo=NEW_YORK), (1, 30)),  # 1 November: 02:00 -> 01:00, 01:30 twice
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_a_cron_schedule_fires_on_every_expected_instant_for_30_days_across_dst(
    tmp_path: Path, start: datetime, minute_of_day: tuple[int, int]
) -> None:
    hour, minute = minute_of_day
    clock = VirtualClock(start)
    async with open_runtime(tmp_path / "w.db", workflows=[report], clock=clock) as rt:
        await rt.create_schedule("daily", report, "vn", cron=f"{minute} {hour} * * *", tz="America/New_York")
        await rt.clock.sleep(30 * 86400)
        fired = await _fired(rt)
        info = await rt.get_schedule("daily").describe()
    expected = [_local(start + timedelta(days=d), hour, minute).timestamp() for d in range(30)]
    assert [at for at, _ in fired] == expected
    assert [began for _, began in fired] == expected  # each run started exactly on its instant
    assert (info.started, info.skipped, info.missed) == (30, 0, 0)
    assert info.next_fires[0] == _local(start + timedelta(days=30), hour, minute).timestamp()
    offsets = {datetime.fromtimestamp(at, NEW_YORK).utcoffset() for at in expected}
    assert len(offsets) == 2  # the window really crosses a change


async def test_run_ids_are_the_schedule_id_and_the_fire_time() -> None:
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with open_runtime(":memory:", workflows=[report], clock=clock) as rt:
        await rt.create_schedule("hourly", report, "vn", every=3600)
        await rt.clock.sleep(3 * 3600 + 1)
        runs = sorted(r.run_id for r in await rt.list_runs(workflow="report"))
        outputs = [await rt.get_handle(r).result() for r in runs]
    assert runs == ["hourly@2026-01-01T01:00:00Z", "hourly@2026-01-01T02:00:00Z", "hourly@2026-01-01T03:00:00Z"]
    assert outputs[0] == f"vn at {datetime(2026, 1, 1, 1, tzinfo=UTC).timestamp()}"


async def test_every_counts_from_start_at_and_stops_after_end_at() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    async with open_runtime(":memory:", workflows=[report], clock=VirtualClock(t0)) as rt:
        await rt.create_schedule("bounded", report, "vn", every=600, start_at=t0 + 125, end_at=t0 + 2000)
        await rt.clock.sleep(86400)
        fired = await _fired(rt)
        info = await rt.get_schedule("bounded").describe()
    assert [at - t0 for at, _ in fired] == [125, 725, 1325, 1925]
    assert info.next_fires == ()  # ended


async def test_jitter_delays_each_fire_by_a_fixed_amount_within_the_bound(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[report], clock=VirtualClock(t0)) as rt:
        await rt.create_schedule("spread", report, "vn", every=3600, jitter=600)
        predicted = (await rt.get_schedule("spread").describe()).next_fires
        await rt.clock.sleep(5 * 3600 + 601)
        fired = await _fired(rt)
        later = (await rt.get_schedule("spread").describe()).next_fires
    delays = [began - at for at, began in fired]
    assert len(fired) == 5 and all(0 <= d < 600 for d in delays)
    assert len(set(delays)) == 5  # not one fixed delay for all
    assert [began for _, began in fired] == list(predicted)  # describe knew them in advance
    # Another process (a restart) computes the same delays: they come from the id and the time.
    async with open_runtime(db, workflows=[report], clock=VirtualClock(t0 + 5 * 3600 + 601)) as rt:
        info = await rt.get_schedule("spread").describe()
    assert info.next_fires == later and info.started == 5
