"""The schedule table of every store: compare-and-swap writes, due times, two instances racing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from wayline.persistence import MemoryStore, ScheduleRecord, ScheduleSpec, Store

pytestmark = pytest.mark.anyio


def _rec(sid: str, *, workflow: str = "report", revision: int = 1, due_at: float | None = 100.0) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=sid,
        workflow=workflow,
        spec=ScheduleSpec(cron="0 2 * * *", tz="Asia/Ho_Chi_Minh"),
        watermark=0.0,
        input={"region": "vn"},
        revision=revision,
        due_at=due_at,
    )


def _schedules(store: Store) -> Any:
    return store.schedules  # type: ignore[attr-defined]


async def test_a_write_applies_only_on_the_expected_revision(store: Store) -> None:
    s = _schedules(store)
    assert await s.put([(_rec("a"), None)]) == [True]
    assert await s.put([(_rec("a"), None)]) == [False]  # exists already
    assert await s.put([(_rec("a", revision=3), 2)]) == [False]  # stored revision is 1
    assert await s.put([(_rec("a", revision=2, due_at=50.0), 1)]) == [True]
    got = await s.get("a")
    assert got is not None and (got.revision, got.due_at, got.input) == (2, 50.0, {"region": "vn"})
    assert got.spec == ScheduleSpec(cron="0 2 * * *", tz="Asia/Ho_Chi_Minh")
    assert await s.put([(_rec("b", revision=1), 0)]) == [False]  # an update of nothing
    assert await s.get("b") is None
    assert await s.delete("a", 1) is False
    assert await s.delete("a", 2) is True
    assert await s.get("a") is None and await s.all() == []


async def test_several_writes_in_one_call_each_get_their_answer(store: Store) -> None:
    s = _schedules(store)
    assert await s.put([(_rec("a"), None), (_rec("b"), None)]) == [True, True]
    answers = await s.put([(_rec("a", revision=2), 1), (_rec("b", revision=2), 5), (_rec("c"), None)])
    assert answers == [True, False, True]
    assert [(r.schedule_id, r.revision) for r in await s.all()] == [("a", 2), ("b", 1), ("c", 1)]


async def test_due_and_next_due_read_the_index_by_workflow(store: Store) -> None:
    s = _schedules(store)
    await s.put(
        [
            (_rec("late", due_at=300.0), None),
            (_rec("early", due_at=100.0), None),
            (_rec("idle", due_at=None), None),
            (_rec("other", workflow="billing", due_at=50.0), None),
        ]
    )
    assert [r.schedule_id for r in await s.due(300.0, ["report"])] == ["early", "late"]
    assert [r.schedule_id for r in await s.due(299.0, ["report", "billing"])] == ["other", "early"]
    assert [r.schedule_id for r in await s.due(1000.0, ["report"], limit=1)] == ["early"]
    assert await s.due(1000.0, []) == []
    assert await s.next_due(["report"]) == 100.0
    assert await s.next_due(["billing", "report"]) == 50.0
    assert await s.next_due(["nothing"]) is None


async def test_two_store_instances_racing_on_one_schedule_apply_one_write(make_store: Callable[[], Store]) -> None:
    first, second = make_store(), make_store()
    await first.start()
    if second is not first:
        await second.start()
    try:
        await _schedules(first).put([(_rec("nightly"), None)])
        for revision in range(1, 21):
            # Each instance read revision `revision` and wants to make the next one.
            mine = _rec("nightly", revision=revision + 1, due_at=float(revision))
            theirs = msgspec.structs.replace(mine, due_at=-float(revision))
            answers = await asyncio.gather(
                _schedules(first).put([(mine, revision)]), _schedules(second).put([(theirs, revision)])
            )
            assert sorted(a[0] for a in answers) == [False, True]
            stored = await _schedules(second).get("nightly")
            assert stored is not None and stored.revision == revision + 1
            assert stored.due_at == (float(revision) if answers[0][0] else -float(revision))
    finally:
        await first.close()
        if second is not first:
            await second.close()


async def test_every_store_keeps_schedules(store: Store) -> None:
    from wayline.persistence import ScheduleStore

    assert isinstance(_schedules(store), ScheduleStore)
    assert isinstance(MemoryStore().schedules, ScheduleStore)
