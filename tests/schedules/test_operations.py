"""Pause, resume, trigger, backfill, update, delete, describe and list, on the virtual clock;
declared schedules reconciled with the code at open; and precise errors for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wayline import RunContext, Schedule, open_runtime, workflow
from wayline.errors import (
    PayloadError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    ScheduleSpecError,
    WorkflowNotFoundError,
)
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
HOUR = 3600.0


@workflow(name="tick")
async def tick(ctx: RunContext, label: str) -> str:
    return label


async def _starts(rt: Any) -> list[tuple[float, str]]:
    """(hours after T0 each run started, its fire kind), in order."""
    runs = await rt.list_runs(workflow="tick")
    return sorted(((r.created_at - T0) / HOUR, r.metadata["fire"]) for r in runs)


async def test_pause_stops_fires_and_resume_goes_on_from_now_without_catching_up() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0)) as rt:
        handle = await rt.create_schedule("hourly", tick, "x", every=HOUR)
        await rt.clock.sleep(HOUR + 1)
        await handle.pause("maintenance of the billing database")
        info = await handle.describe()
        assert (info.paused, info.note, info.next_fires) == (True, "maintenance of the billing database", ())
        await rt.clock.sleep(3 * HOUR)  # 2:00, 3:00, 4:00 fall while paused
        assert await _starts(rt) == [(1, "schedule")]
        await handle.resume("done")
        info = await handle.describe()
        assert (info.paused, info.note, info.next_fires[0]) == (False, "done", T0 + 5 * HOUR)
        await rt.clock.sleep(HOUR)
        assert await _starts(rt) == [(1, "schedule"), (5, "schedule")]
        assert (await handle.describe()).missed == 0  # paused fires are not "missed"


async def test_trigger_fires_once_now_under_the_policy_even_when_paused() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0)) as rt:
        handle = await rt.create_schedule("daily", tick, "x", cron="0 0 * * *")
        await handle.pause()
        first = await handle.trigger()
        second = await handle.trigger()  # decided with the first still going: skipped (overlap="skip")
        third = await handle.trigger(overlap="allow_all")
        await rt.clock.sleep(1)
        assert len({first, second, third}) == 3 and first.startswith("daily@2026-01-01T00:00:00.000000Z/trigger-")
        assert {(await rt.describe(r)).status for r in (first, third)} == {RunStatus.SUCCEEDED}
        assert [r.run_id for r in await rt.list_runs(workflow="tick")] == sorted([first, third])
        info = await handle.describe()
        assert [(a.kind, a.outcome) for a in info.recent] == [
            ("trigger", "started"),
            ("trigger", "skipped"),
            ("trigger", "started"),
        ]


async def test_backfill_runs_every_time_of_the_range_once_one_after_the_other() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0 + 10 * 86400)) as rt:
        handle = await rt.create_schedule("daily", tick, "x", cron="0 6 * * *")
        start = datetime(2026, 1, 2, 6, tzinfo=UTC)
        await handle.backfill(start, start + timedelta(days=3))  # 4 times: both ends included
        await rt.clock.sleep(1)
        runs = sorted(r.run_id for r in await rt.list_runs(workflow="tick"))
        assert runs == [f"daily@2026-01-0{d}T06:00:00Z" for d in (2, 3, 4, 5)]
        assert (await handle.describe()).skipped == 0  # buffer_all: none dropped, though each overlaps
        await handle.backfill(start, start + timedelta(days=1), overlap="allow_all")  # already ran
        await rt.clock.sleep(1)
        assert len(await rt.list_runs(workflow="tick")) == 4  # the same ids: nothing runs twice


async def test_update_changes_the_spec_from_now_and_delete_stops_it() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0)) as rt:
        handle = await rt.create_schedule("s", tick, "x", every=HOUR)
        await rt.clock.sleep(HOUR + 1)
        await handle.update(every=2 * HOUR, input="y", overlap="allow_all")
        info = await handle.describe()
        assert (info.every, info.input, info.overlap) == (2 * HOUR, "y", "allow_all")
        assert info.next_fires[0] == T0 + 2 * HOUR
        await handle.update(cron="30 * * * *", tz="Europe/Paris")
        info = await handle.describe()
        assert (info.cron, info.every, info.tz) == ("30 * * * *", None, "Europe/Paris")
        assert info.next_fires[0] == T0 + 1.5 * HOUR
        with pytest.raises(ScheduleSpecError, match="cannot update workflow"):
            await handle.update(workflow="other")
        await rt.clock.sleep(HOUR)
        outputs = [await rt.get_handle(r.run_id).result() for r in await rt.list_runs(workflow="tick")]
        assert outputs == ["x", "y"]
        await handle.delete()
        with pytest.raises(ScheduleNotFoundError, match="no schedule with id 's'"):
            await handle.describe()
        await rt.clock.sleep(5 * HOUR)
        assert len(await rt.list_runs(workflow="tick")) == 2
        assert await rt.list_schedules() == []


async def test_describe_and_list_show_the_last_runs() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0)) as rt:
        await rt.create_schedule("b", tick, "x", every=HOUR)
        await rt.create_schedule("a", tick, "x", every=HOUR, version="1")
        await rt.clock.sleep(2 * HOUR + 1)
        infos = await rt.list_schedules()
    assert [i.schedule_id for i in infos] == ["a", "b"]
    a = infos[0]
    assert [(r.run_id, r.status) for r in a.last_runs] == [
        ("a@2026-01-01T01:00:00Z", RunStatus.SUCCEEDED),
        ("a@2026-01-01T02:00:00Z", RunStatus.SUCCEEDED),
    ]
    assert (a.workflow, a.version, a.started, a.next_fires[:2]) == ("tick", "1", 2, (T0 + 3 * HOUR, T0 + 4 * HOUR))


async def test_bad_input_gets_precise_errors() -> None:
    async with open_runtime(":memory:", workflows=[tick], clock=VirtualClock(T0)) as rt:
        with pytest.raises(ScheduleSpecError, match=r"exactly one of cron= .* or every="):
            await rt.create_schedule("s", tick, "x")
        with pytest.raises(ScheduleSpecError, match="cron expression '61 \\* \\* \\* \\*' is invalid"):
            await rt.create_schedule("s", tick, "x", cron="61 * * * *")
        with pytest.raises(ScheduleSpecError, match="unknown time zone 'Mars/Olympus'"):
            await rt.create_schedule("s", tick, "x", cron="0 0 * * *", tz="Mars/Olympus")
        with pytest.raises(ScheduleSpecError, match="overlap must be one of skip, buffer_one"):
            await rt.create_schedule("s", tick, "x", every=60, overlap="sometimes")  # type: ignore[arg-type]
        with pytest.raises(ScheduleSpecError, match="without '@'"):
            await rt.create_schedule("a@b", tick, "x", every=60)
        with pytest.raises(ScheduleSpecError, match="timezone-aware"):
            await rt.create_schedule("s", tick, "x", every=60, start_at=datetime(2026, 1, 1))
        with pytest.raises(PayloadError, match="input of schedule 's'"):
            await rt.create_schedule("s", tick, object(), every=60)
        with pytest.raises(WorkflowNotFoundError):
            await rt.create_schedule("s", "nope", "x", every=60)
        await rt.create_schedule("s", tick, "x", every=60)
        with pytest.raises(ScheduleExistsError, match="schedule 's' exists"):
            await rt.create_schedule("s", tick, "x", every=60)
        with pytest.raises(ScheduleSpecError, match="end is before its start"):
            await rt.get_schedule("s").backfill(T0 + 10, T0)
        with pytest.raises(ScheduleNotFoundError):
            await rt.get_schedule("nope").pause()


# --- declared schedules --------------------------------------------------------------------------


def _nightly(**schedule: Any) -> Any:
    @workflow(name="nightly", schedules=[Schedule(**schedule)])
    async def nightly(ctx: RunContext, region: str = "all") -> str:
        return region

    return nightly


async def test_declared_schedules_follow_the_code_at_each_open(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    v1 = _nightly(cron="0 2 * * *", input="vn")
    async with open_runtime(db, workflows=[v1], clock=VirtualClock(T0)) as rt:
        info = await rt.get_schedule("nightly").describe()
        assert (info.declared, info.cron, info.input, info.next_fires[0]) == (True, "0 2 * * *", "vn", T0 + 2 * HOUR)
        await rt.get_schedule("nightly").pause("kept across a code change")
        await rt.clock.sleep(HOUR)
    # The code changes its cron and input: the schedule is updated, its state (paused) kept.
    v2 = _nightly(cron="0 3 * * *", input="th")
    async with open_runtime(db, workflows=[v2], clock=VirtualClock(T0 + HOUR)) as rt:
        info = await rt.get_schedule("nightly").describe()
        assert (info.cron, info.input, info.paused, info.note) == ("0 3 * * *", "th", True, "kept across a code change")
    # A runtime that does not register the workflow leaves its schedule alone.
    async with open_runtime(db, workflows=[tick], clock=VirtualClock(T0 + HOUR)) as rt:
        assert [i.schedule_id for i in await rt.list_schedules()] == ["nightly"]
    # The code no longer declares it: deleted.
    @workflow(name="nightly")
    async def v3(ctx: RunContext, region: str = "all") -> str:
        return region

    async with open_runtime(db, workflows=[v3], clock=VirtualClock(T0 + HOUR)) as rt:
        assert await rt.list_schedules() == []


async def test_a_declared_schedule_fires_and_clashes_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    nightly = _nightly(every=HOUR, input="vn")
    async with open_runtime(db, workflows=[nightly], clock=VirtualClock(T0)) as rt:
        await rt.clock.sleep(HOUR + 1)
        assert [r.run_id for r in await rt.list_runs(workflow="nightly")] == ["nightly@2026-01-01T01:00:00Z"]
        with pytest.raises(ScheduleExistsError, match="declared by workflow 'nightly'"):
            await rt.create_schedule("nightly", nightly, every=60)
    async with open_runtime(db, workflows=[tick], clock=VirtualClock(T0)) as rt:
        await rt.create_schedule("tick", tick, "x", every=60)  # an API schedule, id "tick"

    @workflow(name="tick", schedules=[Schedule(every=60)])
    async def declares_tick(ctx: RunContext, label: str = "") -> str:
        return label

    with pytest.raises(ScheduleExistsError, match=r"rt\.create_schedule has that id"):
        async with open_runtime(db, workflows=[declares_tick], clock=VirtualClock(T0)):
            pass


def test_declarations_are_checked_at_import() -> None:
    with pytest.raises(ScheduleSpecError, match="invalid"):
        Schedule(cron="every day")
    with pytest.raises(ScheduleSpecError, match="two schedules with this id"):

        @workflow(name="twice", schedules=[Schedule(every=60), Schedule(cron="0 0 * * *")])
        async def twice(ctx: RunContext) -> None:
            return None
