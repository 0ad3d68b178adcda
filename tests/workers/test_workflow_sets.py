"""Workers with different workflows on one PostgreSQL database: a run is claimed only by a
worker that has its workflow. A worker without it once claimed the run and gave it back at
every sweep (its fence climbing a few times a second, the run's row rewritten for nothing);
now its sweeps leave the run alone, and it says once that the run waits for another worker."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import asyncpg
import pytest

from wayline import Event, RunContext, on_event, open_runtime, workflow

from ._harness import Procs, all_results, reading, ready, trouble
from .worker_proc import WORKFLOWS, chain, chain_result, waiter, waiter_result

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes"),
]

WAITING_FOR = "runs of workflow 'waiter' wait for a worker that registers it"
FENCE = "SELECT owner, fence FROM wayline.runs WHERE run_id = 'rw'"


async def test_a_worker_leaves_the_runs_of_workflows_it_does_not_have_to_one_that_has_them(
    pg_url: str, procs: Procs
) -> None:
    lease = 1.0  # sweeps every 0.25 s
    chains_only = procs.worker(pg_url, pg_url, "w0", lease=lease, workflows=["chain"])
    await ready(chains_only)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        waiting = await client.start(waiter, 5, run_id="rw")
        chained = await client.start(chain, [7, 3, 1], run_id="rc")
        assert await all_results([chained], 30, executions, [chains_only]) == [chain_result(7, 3)]
        await chains_only.logged(lambda text: WAITING_FOR in text, what="the waiter run waits for another worker")
        before = await executions.fetch(FENCE)
        await asyncio.sleep(8 * lease / 4)  # eight sweeps of w0
        assert await executions.fetch(FENCE) == before
        assert before[0][0] is None, "nobody holds the run"
        both = procs.worker(pg_url, pg_url, "w1", lease=lease, workflows=["chain", "waiter"])
        await ready(both)
        await executions.until(lambda rows: any(r.run_id == "rw" for r in rows), what="the waiter's first step")
        await client.signal("rw", "go", "payload")
        assert await all_results([waiting], 30, executions, [chains_only, both]) == [waiter_result(5, "payload")]
        rows = await executions.rows()
    assert {row.worker_id for row in rows if row.run_id == "rw"} == {"w1"}
    assert chains_only.log().count(WAITING_FOR) == 1
    assert trouble([chains_only, both]) == []


async def _until(what: str, check: Any, seconds: float = 30.0) -> Any:
    """``check()`` again until it returns something true (the workers' beats run meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        got = await check()
        if got or loop.time() > deadline:
            assert got, f"not within {seconds}s: {what}"
            return got
        await asyncio.sleep(0.05)


async def _undispatched(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT seq FROM wayline.events WHERE NOT dispatched ORDER BY seq")]
    finally:
        await conn.close()


async def test_events_start_their_runs_when_a_worker_without_their_trigger_is_up_too(pg_url: str) -> None:
    @workflow(name="on_job", triggers=[on_event("job")])
    async def on_job(ctx: RunContext, event: Event) -> int:
        return int(event.data["n"])

    async with (
        open_runtime(pg_url, workflows=[chain], worker=True, worker_id="other"),
        open_runtime(pg_url, workflows=[on_job], worker=True, worker_id="w") as rt,
        open_runtime(pg_url, workflows=[on_job], worker=False) as client,
    ):
        sent = [await client.send_event("job", {"n": n}) for n in range(20)]
        await asyncio.sleep(1.0)  # ten beats of each worker's poller: "other" reads them all too
        want = {f"on_job@event:{s.seq}" for s in sent}

        async def started() -> bool:
            return {r.run_id for r in await rt.list_runs(limit=100)} == want

        await _until("every event started its run", started)
        # Marked dispatched once "w" dispatched them: nothing is left for the beats to read.
        assert await _until("the events marked dispatched", lambda: _no_undispatched(pg_url)) is True


async def _no_undispatched(url: str) -> bool:
    return await _undispatched(url) == []


async def test_two_workers_with_different_workflows_on_one_event_both_start_their_runs(pg_url: str) -> None:
    @workflow(name="bill", triggers=[on_event("order")])
    async def bill(ctx: RunContext, event: Event) -> int:
        return int(event.data["n"])

    @workflow(name="ship", triggers=[on_event("order")])
    async def ship(ctx: RunContext, event: Event) -> int:
        return int(event.data["n"])

    async with (
        open_runtime(pg_url, workflows=[bill], worker=True, worker_id="billing") as billing,
        open_runtime(pg_url, workflows=[ship], worker=True, worker_id="shipping") as shipping,
        open_runtime(pg_url, workflows=[bill, ship], worker=False) as client,
    ):
        # Sent by each worker (each dispatches its own part at once) and by a client.
        sent = [await billing.send_event("order", {"n": 1}), await shipping.send_event("order", {"n": 2})]
        sent += [await client.send_event("order", {"n": n}) for n in range(3, 13)]
        assert sent[0].run_ids == (f"bill@event:{sent[0].seq}",)
        assert sent[1].run_ids == (f"ship@event:{sent[1].seq}",)

        async def all_started() -> bool:
            bills = {r.run_id for r in await billing.list_runs(workflow="bill", limit=100)}
            ships = {r.run_id for r in await shipping.list_runs(workflow="ship", limit=100)}
            return bills == {f"bill@event:{s.seq}" for s in sent} and ships == {f"ship@event:{s.seq}" for s in sent}

        await _until("both workflows started for every event", all_started)
        await _until("the events marked dispatched", lambda: _no_undispatched(pg_url))
        for s in sent:
            assert (
                await billing.get_handle(f"bill@event:{s.seq}").result()
                == await shipping.get_handle(f"ship@event:{s.seq}").result()
            )


async def test_an_event_no_trigger_listens_to_is_marked_dispatched_by_the_sending_worker(pg_url: str) -> None:
    @workflow(name="on_job", triggers=[on_event("job")])
    async def on_job(ctx: RunContext, event: Event) -> int:
        return 1

    async with (
        open_runtime(pg_url, workflows=[on_job], worker=True, worker_id="a") as a,
        open_runtime(pg_url, workflows=[on_job], worker=True, worker_id="b"),
    ):
        # A cluster of identical workers: the sender marks both kinds when it sends them.
        waited = await a.send_event("paid", {"n": 1})
        job = await a.send_event("job", {"n": 2})
        assert job.run_ids == (f"on_job@event:{job.seq}",)
        assert waited.seq not in await _undispatched(pg_url)
        assert job.seq not in await _undispatched(pg_url)


async def test_a_listener_killed_and_back_within_its_lease_starts_the_runs_of_events_sent_meanwhile(
    pg_url: str, procs: Procs
) -> None:
    lease = 5.0
    first = procs.worker(pg_url, pg_url, "L", lease=lease, workflows=["limited"])
    await ready(first)
    async with (
        reading(pg_url),
        open_runtime(pg_url, workflows=[chain], worker=True, worker_id="other"),
        open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client,
    ):
        first.kill9()
        sent = [await client.send_event("job", {"key": n, "n": n, "ms": 1}) for n in range(5)]
        await asyncio.sleep(1.0)  # ten beats of "other", which has no trigger for them
        # L's registration is live until its lease runs out: the events wait for it.
        assert {s.seq for s in sent} <= set(await _undispatched(pg_url))
        again = procs.worker(pg_url, pg_url, "L", lease=lease, workflows=["limited"])
        await ready(again)
        want = {f"limited@event:{s.seq}" for s in sent}

        async def finished() -> bool:
            return {r.run_id for r in await client.list_runs(workflow="limited", status="SUCCEEDED")} == want

        await _until("the events' runs finished on the worker back", finished)
        await _until("the events marked dispatched", lambda: _no_undispatched(pg_url))
    assert trouble([again]) == []


async def test_two_workers_starting_one_events_run_at_once_both_get_the_run(pg_url: str) -> None:
    # The sender dispatches its event while the other worker's beat may dispatch it too: both
    # create "on_job@event:<seq>", and the create that waited for the other's row (ON CONFLICT)
    # once failed with "refused a write: 'on_job@event:<seq>'" (the statement's snapshot did
    # not show the row it had waited for).
    @workflow(name="on_job", triggers=[on_event("job")])
    async def on_job(ctx: RunContext, event: Event) -> int:
        return 1

    async with (
        open_runtime(pg_url, workflows=[on_job], worker=True, worker_id="a") as a,
        open_runtime(pg_url, workflows=[on_job], worker=True, worker_id="b"),
    ):
        for n in range(150):
            sent = await a.send_event("job", {"n": n})
            assert sent.run_ids == (f"on_job@event:{sent.seq}",)
