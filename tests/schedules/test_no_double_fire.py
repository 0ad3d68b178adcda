"""No fire is started twice when two schedulers share one database.

The runtime does not run several workers on one database yet (PostgreSQL's multi-worker
runtime is the next step; today a second owner is refused), so this races two `Scheduler`s,
each on a store instance of its own (its own connections) on one database: SQLite (two
connections to one file) and PostgreSQL. Both read the same due schedules at the same moment,
and neither writes before both have read (a barrier in front of the table's writes), so every
round is a real race. Each fire must be decided once (the compare-and-swap on the schedule's
revision) and its run created once (the store's create).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from wayline import RunContext, workflow
from wayline.persistence import MemoryStore, RunRecord, RunStatus, Store
from wayline.runtime._schedule_handle import Schedules
from wayline.runtime._schedules import Scheduler
from wayline.runtime._workflows import Registry, Workflow

pytestmark = pytest.mark.anyio

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@workflow(name="job")
async def job(ctx: RunContext) -> None:
    return None


class ManualClock:
    """A clock moved by the test alone; its timers never fire (the test runs every pass)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        return asyncio.get_running_loop().call_later(3600, lambda: None)  # a handle, never due here

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        return None


class RacingTable:
    """A store's schedule table whose first write of a round waits until the other scheduler
    has read too (its later writes, after a lost compare-and-swap, go straight on)."""

    def __init__(self, inner: Any, barrier: asyncio.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def put(self, writes: Any) -> list[bool]:
        if self.armed:
            self.armed = False
            await self._barrier.wait()
        done: list[bool] = await self._inner.put(writes)
        return done


class StoreStarter:
    """Starts a run the way `Runs.create` commits one: the store's create, idempotent on the
    run id. Each run is recorded as ended at once (nothing here executes it)."""

    def __init__(self, store: Store, created: list[str]) -> None:
        self.store = store
        self.created = created

    def live(self, run_id: str) -> object | None:
        return None

    async def create(self, wf: Workflow, input: Any, run_id: str, metadata: dict[str, Any] | None = None) -> None:
        record = RunRecord(
            run_id=run_id, workflow=wf.name, status=RunStatus.SUCCEEDED, input=input, metadata=metadata or {}
        )
        if await self.store.create_run(record, []) is None:
            self.created.append(run_id)

    async def cancel_run(self, run_id: str, reason: str | None) -> None:
        raise AssertionError("no policy here cancels")


async def test_two_schedulers_on_one_database_start_each_fire_once(make_store: Callable[[], Store]) -> None:
    first_store, second_store = make_store(), make_store()
    if isinstance(first_store, MemoryStore):
        pytest.skip("the in-memory store has one instance: nothing to race")
    await first_store.start()
    await second_store.start()
    clock = ManualClock(T0)
    registry = Registry([job])
    created: list[str] = []
    barrier = asyncio.Barrier(2)
    tables = [RacingTable(s.schedules, barrier) for s in (first_store, second_store)]  # type: ignore[attr-defined]
    schedulers = [
        Scheduler(table, clock, registry, StoreStarter(s, created))
        for table, s in zip(tables, (first_store, second_store), strict=True)
    ]
    try:
        api = Schedules(first_store, clock, registry, None)
        for i in range(10):
            # Five every 60 s, five every 90 s, half of each under skip, half under allow_all.
            await api.create(
                f"s{i}",
                job,
                None,
                cron=None,
                every=60.0 if i < 5 else 90.0,
                tz=None,
                overlap="skip" if i % 2 else "allow_all",
                catchup_window=86400.0,
                jitter=0.0,
                start_at=None,
                end_at=None,
                version=None,
            )
        for _ in range(30):
            clock.now += 30
            for table in tables:
                table.armed = True
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.run_pass() for s in schedulers))
        records = [await api.get_record(f"s{i}") for i in range(10)]
    finally:
        for s in schedulers:
            await s.close()
        await first_store.close()
        await second_store.close()
    # 900 s: 15 fires of the 60 s schedules, 10 of the 90 s ones.
    expected = {
        f"s{i}@2026-01-01T00:{m // 60:02d}:{m % 60:02d}Z"
        for i in range(10)
        for m in range(60 if i < 5 else 90, 901, 60 if i < 5 else 90)
    }
    assert Counter(created) == Counter(expected)  # every fire once, none twice
    for i, rec in enumerate(records):
        fires = 15 if i < 5 else 10
        assert (rec.started, rec.skipped, rec.missed) == (fires, 0, 0)  # decided once each
        assert rec.watermark == T0 + 900  # the last fire of both kinds: 900 s


class PausingTable:
    """A schedule table whose next write is preceded by another process's pause, committed
    after the pass read the schedule and before it writes: the race a lost update comes from."""

    def __init__(self, inner: Any, api: Schedules) -> None:
        self._inner = inner
        self._api = api
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def put(self, writes: Any) -> list[bool]:
        if self.armed:
            self.armed = False
            await self._api.modify("s", lambda rec, now: msgspec.structs.replace(rec, paused=True))
        done: list[bool] = await self._inner.put(writes)
        return done


async def test_a_pause_committed_during_a_pass_is_not_overwritten(make_store: Callable[[], Store]) -> None:
    store = make_store()
    await store.start()
    clock = ManualClock(T0)
    registry = Registry([job])
    api = Schedules(store, clock, registry, None)
    table = PausingTable(store.schedules, api)  # type: ignore[attr-defined]
    scheduler = Scheduler(table, clock, registry, StoreStarter(store, []))
    try:
        await api.create(
            "s",
            job,
            None,
            cron=None,
            every=60.0,
            tz=None,
            overlap="skip",
            catchup_window=86400.0,
            jitter=0.0,
            start_at=None,
            end_at=None,
            version=None,
        )
        clock.now += 60
        table.armed = True
        await scheduler.run_pass()  # decides the fire at 60, but the pause lands first
        clock.now += 600
        await scheduler.run_pass()
        rec = await api.get_record("s")
    finally:
        await scheduler.close()
        await store.close()
    assert rec.paused  # the pass lost its compare-and-swap, read the paused record, decided again
    assert rec.started == 0  # paused before the fire was decided: nothing fired, then or later
