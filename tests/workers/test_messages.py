"""A signal sent from a client process reaches the run on whichever worker owns it."""

from __future__ import annotations

from collections import Counter

import pytest

from wayline import open_runtime

from ._harness import Procs, all_results, by_step, reading, ready, trouble
from .worker_proc import WORKFLOWS, waiter, waiter_result

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_signal_from_a_client_reaches_runs_owned_by_other_workers(pg_url: str, procs: Procs) -> None:
    runs = 6
    # At most 3 runs each: both workers own some of the parked runs.
    workers = [procs.worker(pg_url, pg_url, f"w{i}", lease=2.0, max_runs=3) for i in range(2)]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        handles = [await client.start(waiter, i, run_id=f"s{i}") for i in range(runs)]
        rows = await executions.until(lambda rows: len(rows) == runs, what="every run parked on its signal")
        owner = {row.run_id: row.worker_id for row in rows}
        assert set(owner.values()) == {"w0", "w1"}, owner
        for i in range(runs):
            await client.signal(f"s{i}", "go", f"payload {i}")
        results = await all_results(handles, 30, executions, workers)
        assert results == [waiter_result(i, f"payload {i}") for i in range(runs)]
        rows = await executions.rows()
    # Each step ran once, both on the run's owner: the signal went to it, not to a new owner.
    assert trouble(workers) == []
    groups = by_step(rows)
    assert sorted(groups) == sorted((f"s{i}", step) for i in range(runs) for step in (0, 1))
    assert all(len(group) == 1 and group[0].worker_id == owner[run] for (run, _), group in groups.items()), groups
    print(f"\nruns per worker: {dict(Counter(owner.values()))}")
