"""Worker processes on one PostgreSQL database killed with SIGKILL mid-run: the others take
their runs over once the lease lapses, every run ends with the result it would have had
without the kill, and no step ever runs on two workers at the same time."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter

import pytest

from wayline import open_runtime

from ._harness import (
    Execution,
    Proc,
    Procs,
    all_results,
    by_step,
    concurrent_on_two_workers,
    reading,
    ready,
    step_results,
    trouble,
)
from .worker_proc import WORKFLOWS, chain, chain_result, chain_steps

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

LEASE = 1.0


def in_flight(rows: list[Execution], steps: int) -> dict[str, set[str]]:
    """Per worker, the runs it has recorded a step of and that are not yet at their last step."""
    done = Counter(row.run_id for row in rows)
    held: dict[str, set[str]] = {}
    for row in rows:
        if done[row.run_id] < steps:
            held.setdefault(row.worker_id, set()).add(row.run_id)
    return held


def dropped_runs(workers: list[Proc]) -> set[str]:
    """The run ids named by "dropped" lines in the workers' logs."""
    return {
        run for w in workers for line in w.log().splitlines() if "dropped" in line for run in re.findall(r"r\d+", line)
    }


async def test_three_workers_300_runs_one_killed_mid_run(pg_url: str, procs: Procs) -> None:
    runs, steps, ms = 300, 4, 5
    # A 2 s lease: on a busy 2-core machine a worker holding ~250 runs can miss a 1 s one (then
    # every run it held changes hands too: correct, at-least-once, but not what this test is
    # about; test_claims.py holds the bug such a cascade once showed).
    workers = [
        procs.worker(pg_url, pg_url, f"w{i}", lease=2 * LEASE, loop="uvloop" if i == 0 else "asyncio") for i in range(3)
    ]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        handles = await asyncio.gather(*(client.start(chain, [i, steps, ms], run_id=f"r{i:03}") for i in range(runs)))
        rows = await executions.until(lambda rows: len(rows) >= runs * steps // 4, what="a quarter of the steps")
        held = in_flight(rows, steps)
        victim = max(workers, key=lambda w: len(held.get(w.name, ())))
        assert held.get(victim.name), f"no worker holds a run mid-way: the kill would not land mid-run ({held})"
        victim.kill9()
        results = await all_results(handles, 60, executions, workers)
        assert results == [chain_result(i, steps) for i in range(runs)]
        rows = await executions.rows()
        for run in held[victim.name]:  # the runs taken over: one stored result per step
            assert await step_results(client, run) == chain_steps(int(run[1:]), steps), run
    survivors = [w for w in workers if w is not victim]
    assert all(w.alive() for w in survivors), [w.describe() for w in survivors]
    assert concurrent_on_two_workers(rows) == []
    assert trouble(workers) == []
    groups = by_step(rows)
    assert set(groups) == {(f"r{i:03}", s) for i in range(runs) for s in range(steps)}
    # A step runs again only where the killed worker may have run it without its checkpoint
    # committing, or where a worker says it dropped the run (it lost its lease: at-least-once).
    explained = dropped_runs(survivors)
    again = {key: group for key, group in groups.items() if len(group) > 1}
    unexplained = {
        key: group
        for key, group in again.items()
        if not any(row.worker_id == victim.name for row in group) and key[0] not in explained
    }
    assert unexplained == {}
    taken_over = {
        run for run in held[victim.name] if {row.worker_id for row in rows if row.run_id == run} - {victim.name}
    }
    assert taken_over, "the killed worker's runs in flight were finished by the others"
    print(f"\nkilled {victim.name} holding {len(held[victim.name])} runs mid-way; {len(again)} steps ran again")


async def test_a_killed_workers_runs_resume_elsewhere_within_the_lease_and_a_second(pg_url: str, procs: Procs) -> None:
    runs, steps, ms = 8, 40, 20
    workers = [procs.worker(pg_url, pg_url, f"w{i}", lease=LEASE) for i in range(2)]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        handles = [await client.start(chain, [i, steps, ms], run_id=f"r{i}") for i in range(runs)]
        rows = await executions.until(
            lambda rows: len({row.run_id for row in rows}) == runs, what="every run under way"
        )
        held = in_flight(rows, steps)
        victim = max(workers, key=lambda w: len(held.get(w.name, ())))
        orphans = held.get(victim.name, set())
        assert orphans, f"no worker holds a run mid-way ({held})"
        killed_at = time.time()
        victim.kill9()

        def resumed(rows: list[Execution]) -> bool:
            return all(any(r.run_id == run and r.worker_id != victim.name for r in rows) for run in orphans)

        rows = await executions.until(resumed, within=30, what="the killed worker's runs resumed elsewhere")
        results = await all_results(handles, 60, executions, workers)
    assert results == [chain_result(i, steps) for i in range(runs)]
    resumed_at = [
        min(r.started for r in rows if r.run_id == run and r.worker_id != victim.name and r.started >= killed_at)
        for run in orphans
    ]
    failover = max(resumed_at) - killed_at
    print(f"\nfailover: {len(orphans)} runs resumed elsewhere {failover:.3f} s after the kill (lease {LEASE} s)")
    # The bound is lease + 1 s; the slack is for a busy 2-core machine (the figure
    # itself is the benchmarks' to report).
    assert failover <= 2 * (LEASE + 1.0), failover
    assert concurrent_on_two_workers(rows) == []
    assert trouble(workers) == []
