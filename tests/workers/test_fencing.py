"""A worker paused with SIGSTOP past its lease while it holds runs: another worker takes them
over; resumed with SIGCONT, the paused worker's stale commits are refused (it drops the runs
and says so in its log) and every run's result is the one an uninterrupted run gives."""

from __future__ import annotations

import re
import sys
import time

import pytest

from wayline import open_runtime

from ._harness import Execution, Procs, all_results, reading, ready, step_results, trouble
from .worker_proc import WORKFLOWS, chain, chain_result, chain_steps

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX"),
]

LEASE = 1.0


async def test_a_worker_paused_past_its_lease_loses_its_runs_and_its_stale_commits_are_refused(
    pg_url: str, procs: Procs
) -> None:
    runs, steps, ms = 10, 30, 30
    workers = [procs.worker(pg_url, pg_url, f"w{i}", lease=LEASE) for i in range(2)]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        handles = [await client.start(chain, [i, steps, ms], run_id=f"r{i}") for i in range(runs)]
        rows = await executions.until(
            lambda rows: len({row.run_id for row in rows}) == runs, what="every run under way"
        )
        held = {w.name: {r.run_id for r in rows if r.worker_id == w.name} for w in workers}
        paused = max(workers, key=lambda w: len(held[w.name]))
        other = next(w for w in workers if w is not paused)
        paused.pause()
        paused_at = time.time()
        # Its runs not at their last step when it stopped: all of them change hands.
        rows = await executions.rows()
        unfinished = {run for run in held[paused.name] if sum(r.run_id == run for r in rows) < steps}
        assert unfinished, "the pause must land mid-run"

        def taken_over(rows: list[Execution]) -> bool:
            after = {r.run_id for r in rows if r.worker_id == other.name and r.started > paused_at}
            return unfinished <= after

        rows = await executions.until(taken_over, within=30, what="the paused worker's runs taken over")
        taken = unfinished
        paused.resume()
        results = await all_results(handles, 60, executions, workers)
        assert results == [chain_result(i, steps) for i in range(runs)]
        for i in range(runs):
            assert (await client.describe(f"r{i}")).status.value == "SUCCEEDED"
            # One stored result per step: no stale commit of the paused worker got in.
            assert await step_results(client, f"r{i}") == chain_steps(i, steps), f"r{i}"

        # The resumed worker ran into its lost lease: it dropped the runs it no longer owns,
        # saying so, rather than committing over the new owner's history.
        def dropped(log: str) -> set[str]:
            return {
                run
                for run in taken
                for line in log.splitlines()
                if "dropped" in line and re.search(rf"\b{run}\b", line)
            }

        named = dropped(await paused.logged(dropped, within=30, what="a 'dropped' line naming a run taken over"))
    assert paused.alive() and other.alive(), [paused.describe(), other.describe()]
    assert trouble(workers) == []
    print(f"\n{paused.name} paused holding {len(held[paused.name])} runs; {len(taken)} taken over; dropped {named}")
