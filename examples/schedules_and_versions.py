"""Schedules and versions, on a virtual clock: a month of a nightly report in a week's time, a
deploy that changes a running workflow safely, and a state machine alias routing 90/10.

Run it: ``python examples/schedules_and_versions.py`` (it uses a temporary database).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from wayline import RunContext, Schedule, StateMachine, activity, open_runtime, workflow
from wayline.runtime import StateMachineAlias, check_replay
from wayline.testing import VirtualClock

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


@activity(name="build_report")
async def build_report(region: str) -> str:
    return f"report for {region}"


# A declared schedule: created (or brought up to date) when a runtime that registers the
# workflow opens the database, and deleted once the code no longer declares it.
@workflow(name="nightly", schedules=[Schedule(cron="0 2 * * *", tz="Asia/Ho_Chi_Minh", input="vn")])
async def nightly(ctx: RunContext, region: str) -> str:
    return await ctx.run(build_report, region)


@activity(name="charge")
async def charge(order: str) -> float:
    return 10.0


@activity(name="fee")
async def fee(order: str) -> float:
    return 1.5


@workflow(name="checkout")
async def checkout_v1(ctx: RunContext, order: str) -> float:
    total = await ctx.run(charge, order)
    await ctx.wait_signal("shipped")
    return total


@workflow(name="checkout")
async def checkout_v2(ctx: RunContext, order: str) -> float:
    total = await ctx.run(charge, order)
    if ctx.patched("fee"):  # runs that passed this point before the deploy skip it
        total += await ctx.run(fee, order)
    await ctx.wait_signal("shipped")
    return total


async def schedules(db: Path) -> None:
    clock = VirtualClock(datetime(2026, 3, 1, tzinfo=HANOI))
    async with open_runtime(db, workflows=[nightly], clock=clock) as rt:
        weekly = await rt.create_schedule("weekly", nightly, "th", cron="0 9 * * MON", tz="Asia/Bangkok")
        await rt.clock.sleep(7 * 86400)  # a virtual week
        await weekly.pause("quarter closing")
        await weekly.backfill(datetime(2026, 2, 2, 9, tzinfo=HANOI), datetime(2026, 2, 23, 9, tzinfo=HANOI))
        await rt.clock.sleep(1)
        for info in await rt.list_schedules():
            when = datetime.fromtimestamp(info.next_fires[0], HANOI) if info.next_fires else None
            state = f"paused ({info.note})" if info.paused else f"next {when}"
            print(f"{info.schedule_id}: {info.started} runs started, {state}")
        runs = await rt.list_runs(workflow="nightly")
        print(f"{len(runs)} runs, the first {runs[0].run_id}")


async def versions(db: Path) -> None:
    async with open_runtime(db, workflows=[checkout_v1], clock=VirtualClock()) as rt:
        await rt.start(checkout_v1, "o-1", run_id="o-1")  # in flight when the new code ships
        await rt.clock.sleep(1)
    # Before deploying: replay the runs in flight against the new code, running nothing.
    async with open_runtime(db, worker=False) as rt:
        print("replay:", [(r.run_id, r.verdict.value) for r in await check_replay(rt.store, checkout_v2)])
    async with open_runtime(db, workflows=[checkout_v2], clock=VirtualClock()) as rt:
        await rt.start(checkout_v2, "o-2", run_id="o-2")
        for run_id in ("o-1", "o-2"):
            await rt.signal(run_id, "shipped")
        print("totals:", [await rt.get_handle(r).result() for r in ("o-1", "o-2")])


async def aliases() -> None:
    first = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v1", "End": True}}}
    second = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v2", "End": True}}}
    v1 = StateMachine(first, name="orders").publish("1")  # the definition of version 1, fixed
    v2 = StateMachine(second, name="orders").publish("2")
    live = StateMachineAlias("live", "orders", {"1": 90, "2": 10})
    async with open_runtime(":memory:", workflows=[v1, v2, live]) as rt:
        handles = [await rt.start(live, {}) for _ in range(1000)]
        versions = Counter([(await h.describe()).version for h in handles])
    print(f"alias live: {versions['1']} runs on version 1, {versions['2']} on version 2")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await schedules(Path(tmp) / "schedules.db")
        await versions(Path(tmp) / "versions.db")
    await aliases()


if __name__ == "__main__":
    asyncio.run(main())
