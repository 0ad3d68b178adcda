"""An ``every=`` schedule fired by three real worker processes on one PostgreSQL database, on
the real clock, one of them killed with SIGKILL half-way.

What the design promises (`wayline.runtime._schedules`, `._schedule_pass`): every owning
runtime runs a pass over the schedule when it comes due, and a pass's decisions are stored by
one compare-and-swap on the schedule's revision, so each fire instant is decided by exactly one
worker; its run's id is made from the schedule id and the instant, so the run is created once
whoever starts it (and a fire whose decision committed but whose run a dying worker never
created is started again by the next pass, from the record's ``starting``). A schedule is not
leased to a worker: when one dies the others' passes go on at the next due time, so with
``overlap="allow_all"`` (nothing waits for a run to end) no fire is missed at all, the kill
included. What the lease takeover explains is only the runs the dead worker held: they finish
on another worker once its lease lapses, and a step it ran without its checkpoint committing
may run again there (at-least-once).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter

import pytest

from wayline import open_runtime
from wayline.persistence import RunStatus
from wayline.runtime._schedule_spec import fire_run_id

from ._harness import Procs, reading, ready, trouble
from .worker_proc import WORKFLOWS, chain, chain_result

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

LEASE = 1.0
EVERY = 0.5
FIRES = 29  # 14 s of fires: both ends of the window included
KILL_AFTER = 12  # fires seen started before the kill
STEP_MS = 400  # each run one step this long: runs are in flight on the workers at any moment
#: The schedule's runs not yet ended, and the worker holding each.
HELD = (
    "SELECT run_id, owner FROM wayline.runs WHERE run_id LIKE 'tick@%' "
    "AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
)


async def test_three_workers_fire_each_instant_once_and_go_on_after_one_is_killed(pg_url: str, procs: Procs) -> None:
    workers = [procs.worker(pg_url, pg_url, f"w{i}", lease=LEASE) for i in range(3)]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        # The fire instants are fixed in advance: start_at..end_at, both included.
        start = math.ceil(time.time()) + 2.0
        end = start + (FIRES - 1) * EVERY
        expected = [start + k * EVERY for k in range(FIRES)]
        schedule = await client.create_schedule(
            "tick", chain, [7, 1, STEP_MS], every=EVERY, overlap="allow_all", start_at=start, end_at=end
        )

        async def fired() -> dict[str, float]:
            """Run id -> the fire instant it was started for (its metadata says)."""
            runs = await client.list_runs(workflow="chain")
            return {r.run_id: r.metadata["scheduled_at"] for r in runs if r.metadata.get("schedule_id") == "tick"}

        async def until_fired(n: int, seconds: float) -> dict[str, float]:
            deadline = time.monotonic() + seconds
            while len(found := await fired()) < n:
                if time.monotonic() > deadline:
                    logs = "\n".join(w.describe() for w in workers)
                    pytest.fail(f"{len(found)} of {n} fires started within {seconds}s\n{logs}")
                await asyncio.sleep(0.05)
            return found

        # All three live: fires go on; then a worker holding a run mid-step is killed.
        await until_fired(KILL_AFTER, start - time.time() + KILL_AFTER * EVERY + 10)
        held: list[tuple[str, str]] = []
        deadline = time.monotonic() + 10
        while not held:
            held = [(r, o) for r, o in await executions.fetch(HELD) if o]
            if time.monotonic() > deadline:
                pytest.fail("no worker held a run of the schedule mid-step: the kill would not land mid-run")
            await asyncio.sleep(0.02)
        victim = next(w for w in workers if w.name == held[0][1])
        killed_at = time.time()
        victim.kill9()
        orphans = {run for run, owner in await executions.fetch(HELD) if owner == victim.name}
        survivors = [w for w in workers if w is not victim]

        found = await until_fired(FIRES, end - time.time() + LEASE + 15)
        await asyncio.sleep(2 * EVERY)  # a fire after end_at, or one started twice, would show now
        found = await fired()

        # Every fire instant started exactly one run, under the id made from it; none more.
        assert sorted(found.values()) == expected
        assert found == {fire_run_id("tick", at): at for at in expected}
        # Each fire was decided once: counted once as started, never skipped nor missed.
        info = await schedule.describe()
        assert (info.started, info.skipped, info.missed) == (FIRES, 0, 0), info
        assert [a.outcome for a in info.recent] == ["started"] * len(info.recent)

        # Every run finishes with its result (the dead worker's ones after the lease takeover).
        handles = [client.get_handle(run_id) for run_id in sorted(found)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=30)
        assert results == [chain_result(7, 1)] * FIRES
        done = await client.list_runs(workflow="chain", status=RunStatus.SUCCEEDED)
        assert {r.run_id for r in done} == set(found)

        rows = await executions.rows()
    assert all(w.alive() for w in survivors), [w.describe() for w in survivors]
    assert trouble(workers) == []
    # One execution of each run's step, save where the dead worker may have run it without its
    # checkpoint committing (then a survivor ran it again after the takeover).
    per_run = Counter(r.run_id for r in rows)
    assert set(per_run) == set(found)
    again = {run for run, n in per_run.items() if n > 1}
    assert all(any(r.worker_id == victim.name for r in rows if r.run_id == run) for run in again), again
    # After the kill, the fires go on from the survivors: every run of a fire due later than
    # the lease after the kill ran on a survivor only.
    late = {run for run, at in found.items() if at > killed_at + LEASE}
    assert late and all(r.worker_id != victim.name for r in rows if r.run_id in late)
    # The runs the dead worker held mid-step were finished by a survivor, after the takeover.
    assert orphans
    for run in orphans:
        assert {r.worker_id for r in rows if r.run_id == run} - {victim.name}, run
    lag = sorted(min(r.started for r in rows if r.run_id == run) - at for run, at in found.items())
    print(
        f"\n{FIRES} fires every {EVERY}s on 3 workers, {victim.name} killed after {KILL_AFTER}: "
        f"lag fire->step p50 {lag[len(lag) // 2] * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms; "
        f"{len(orphans)} runs held by it finished elsewhere, {len(again)} steps ran again"
    )
