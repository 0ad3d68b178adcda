"""A message for a passivated run that reaches a worker at its ``max_runs``: the worker
leaves the run alone then (another worker, or this one once it has room, takes it). Nothing
took it later: the sweep claims only runs that are not waiting (a passivated run comes back by
its message or its timer, and the message had come and gone), so the run stayed WAITING with
the message in its inbox until a worker opened the database again."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from wayline import open_runtime

from ._harness import Executions, Procs, all_results, reading, ready, trouble
from .worker_proc import WORKFLOWS, chain, chain_result, waiter, waiter_result

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes"),
]

PASSIVATED = "SELECT 1 FROM wayline.runs WHERE run_id = 'rw' AND status = 'WAITING' AND owner IS NULL"


async def until_passivated(executions: Executions, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await executions.fetch(PASSIVATED):
        if time.monotonic() > deadline:
            pytest.fail(f"the waiter run did not passivate within {seconds}s")
        await asyncio.sleep(0.02)


async def test_a_message_that_finds_its_worker_full_wakes_the_run_once_there_is_room(pg_url: str, procs: Procs) -> None:
    worker = procs.worker(pg_url, pg_url, "w0", lease=2.0, max_runs=1, passivate_after=0.2)
    await ready(worker)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        waiting = await client.start(waiter, 5, run_id="rw")
        # Step 0, then it waits for "go" and leaves memory (and the worker's hands).
        await executions.until(lambda rows: len(rows) == 1, what="the waiter's first step")
        await until_passivated(executions)
        # A chain takes the worker's one place for a while (30 steps of 50 ms).
        busy = await client.start(chain, [3, 30, 50], run_id="rc")
        await executions.until(lambda rows: any(r.run_id == "rc" for r in rows), what="the chain under way")
        await client.signal("rw", "go", "payload")  # the worker is full: it leaves the run
        results = await all_results([busy, waiting], 60, executions, [worker])
    assert results == [chain_result(3, 30), waiter_result(5, "payload")]
    assert trouble([worker]) == []
