"""A client (``open_runtime(..., worker=False)``) on the SQLite default runs nothing: the runs
it starts are committed with the message that brings them to the database's worker.

Before, a client's ``rt.start`` ran the workflow inside the client: a run started there and
then signalled was loaded by the worker too, and its steps ran in both processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from wayline import RunContext, activity, open_runtime, workflow

pytestmark = pytest.mark.anyio

executed: Counter[str] = Counter()


@activity(name="count")
async def count(key: str) -> str:
    executed[key] += 1
    return key


@workflow(name="signalled")
async def signalled(ctx: RunContext, key: str) -> str:
    await ctx.run(count, key + ":before")
    said = await ctx.wait_signal("go", timeout=600)
    await ctx.run(count, key + ":after")
    return f"{key} {said}"


async def test_a_clients_run_is_run_once_by_the_worker_even_when_signalled(tmp_path: Path) -> None:
    db = tmp_path / "wayline.db"
    executed.clear()
    async with open_runtime(db, workflows=[signalled], inbox_poll_interval=0.01) as worker:
        async with open_runtime(db, workflows=[signalled], worker=False, inbox_poll_interval=None) as client:
            handle = await client.start(signalled, "k", run_id="c1")
            assert client.statistics().live_runs == 0
            # The worker takes it from its inbox (the client's StartMessage) and runs to the wait.
            for _ in range(200):
                if executed["k:before"]:
                    break
                await asyncio.sleep(0.01)
            assert executed["k:before"] == 1
            await client.signal("c1", "go", "now")
            assert await handle.result() == "k now"
            assert client.statistics().live_runs == 0
        assert await worker.get_handle("c1").result() == "k now"
    assert executed == Counter({"k:before": 1, "k:after": 1})


async def test_a_run_a_client_started_survives_the_clients_exit(tmp_path: Path) -> None:
    db = tmp_path / "wayline.db"
    executed.clear()
    async with open_runtime(db, workflows=[signalled], worker=False, inbox_poll_interval=None) as client:
        await client.start(signalled, "gone", run_id="c2")
    # The client has closed; a worker opened later (or running all along) takes the run.
    async with open_runtime(db, workflows=[signalled], inbox_poll_interval=0.01) as worker:
        await worker.signal("c2", "go", "later")
        assert await worker.get_handle("c2").result() == "gone later"
    assert executed == Counter({"gone:before": 1, "gone:after": 1})
