"""The workers' connections to the server end mid-run: they reconnect and every run finishes.

A server restart (``pg_ctlcluster ... restart``) would end the sessions of every other test
running against the same server at the same time (``make test`` runs two at once). So this test
does to the workers what a restart does to them, and only to them: the server ends every
session of the runtimes on this test's database (``pg_terminate_backend`` on
``application_name LIKE 'wayline %'``), twice, mid-run. Each worker sees its writer, its pool
and its LISTEN connection die at once, exactly as when the server goes away and comes back.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from _postgres import admin
from wayline import open_runtime

from ._harness import Procs, all_results, by_step, concurrent_on_two_workers, reading, ready, trouble
from .worker_proc import WORKFLOWS, chain, chain_result

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TAGS = "SELECT id, tag FROM wayline.workers"  # a worker's sessions are named "wayline <role> <tag>"
TERMINATE = (
    "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = $1 AND application_name LIKE 'wayline %'"
)


async def test_workers_reconnect_after_the_server_ends_their_sessions_mid_run(pg_url: str, procs: Procs) -> None:
    runs, steps, ms = 40, 20, 10
    database = urlsplit(pg_url).path.lstrip("/")
    workers = [
        procs.worker(pg_url, pg_url, f"w{i}", lease=2.0, loop=loop) for i, loop in enumerate(["asyncio", "uvloop"])
    ]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        handles = await asyncio.gather(*(client.start(chain, [i, steps, ms], run_id=f"r{i}") for i in range(runs)))
        tags = dict(await executions.fetch(TAGS))
        assert sorted(tags) == ["w0", "w1"]
        ended = []
        for share in (4, 2):  # at a quarter of the steps, then at half
            await executions.until(lambda rows, share=share: len(rows) >= runs * steps // share, what="progress")
            killed = await admin(TERMINATE, database)
            ended.append([str(row[0]) for row in killed])  # type: ignore[attr-defined]
        results = await all_results(handles, 60, executions, workers)
        assert results == [chain_result(i, steps) for i in range(runs)]
        rows = await executions.rows()
    for names in ended:  # every worker lost its sessions, each time
        assert all(any(name.endswith(" " + tag) for name in names) for tag in tags.values()), (names, tags)
    assert all(w.alive() for w in workers), [w.describe() for w in workers]
    assert set(by_step(rows)) == {(f"r{i}", s) for i in range(runs) for s in range(steps)}
    assert concurrent_on_two_workers(rows) == []
    assert trouble(workers) == []
    again = sum(len(group) - 1 for group in by_step(rows).values())
    print(f"\nsessions ended: {[len(n) for n in ended]}; steps run again: {again}")
