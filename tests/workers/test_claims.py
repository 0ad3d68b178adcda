"""The store calls under failures the real-process tests of this directory ran into, each
made to happen every time.

- Two claims of one run at once by one worker (a run woken twice, by NOTIFY and by the
  poller) bumped its fence twice: the worker's checkpoint under the older fence was refused,
  the run dropped, and it stayed RUNNING, owned by a live worker that did not run it.
- A claim that waited for another transaction's change of the run's row re-ran the CTE that
  deletes expired workers (EvalPlanQual): "ModifyTable should not be called during
  EvalPlanQual".
- A PostgreSQL error that is not a lost connection came out of a pooled read as asyncpg's
  InterfaceError ("connection has been released back to the pool"), not a StoreError.
- A worker loading hundreds of runs had every pooled connection busy reading them, and its
  lease's renewal waited behind those reads (0.3 to 0.6 s of a 1 s lease, measured with 2,000
  runs started at once): the renewal has its own connection now.
- A worker registering again (its lease had lapsed) forgot, after giving its runs up, a claim
  committed in between: the database named it the owner, its commits were refused, and no
  other worker could claim the run from a live owner.
"""

from __future__ import annotations

import asyncio

import pytest

from _postgres import pg_stores
from wayline._errors import StoreError
from wayline.persistence import RunRecord, RunStarted, RunStatus, StepSucceeded

pytestmark = pytest.mark.anyio


def rec(run_id: str, seq: int) -> RunRecord:
    return RunRecord(run_id=run_id, workflow="wf", created_at=1.0, history_seq=seq, status=RunStatus.RUNNING)


async def test_two_claims_of_one_run_at_once_by_one_worker_give_it_one_lease(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (client, a):
        await a.register_worker("a")
        await client.create_run(rec("r", 1), [RunStarted(ts=1.0, workflow="wf", version="1")])  # nobody's yet
        first, second = await asyncio.gather(a.claim_run("r"), a.claim_run("r"))
        assert first is not None and first == second
        # and the worker's commits go through under it
        await a.checkpoint(rec("r", 2), [StepSucceeded(ts=2.0, step="s", index=1, attempt=1, result=1)])


async def test_a_claim_that_waits_for_another_workers_claim_of_the_run_loses_it(pg_url: str) -> None:
    import asyncpg

    async with pg_stores(pg_url, 3) as (client, a, b):
        await a.register_worker("a")
        await b.register_worker("b")
        await client.create_run(rec("r", 1), [RunStarted(ts=1.0, workflow="wf", version="1")])
        blocker = await asyncpg.connect(pg_url)
        try:
            async with blocker.transaction():  # worker a's claim of the run, not yet committed
                await blocker.execute("UPDATE wayline.runs SET owner = 'a', fence = fence + 1 WHERE run_id = 'r'")
                claim = asyncio.ensure_future(b.claim_run("r"))
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'wayline %' AND wait_event_type = 'Lock'"
                )
                async with asyncio.timeout(10):
                    while not await blocker.fetchval(waiting):  # noqa: ASYNC110 - a server-side condition
                        await asyncio.sleep(0.01)
        finally:
            await blocker.close()
        assert await claim is None  # a live worker holds it now


async def test_a_postgres_error_on_a_read_is_a_store_error(pg_url: str) -> None:
    async with pg_stores(pg_url, 1) as (store,):
        with pytest.raises(StoreError):
            await store.get_run("a\x00b")  # PostgreSQL text cannot hold NUL: 22021


async def test_a_claim_during_registering_again_is_a_claim_the_worker_keeps(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (client, a):
        await a.register_worker("a", lease_seconds=30)
        for i in range(30):  # the two statements race: one of several orders strands the run
            run_id = f"r{i}"
            await client.create_run(rec(run_id, 1), [RunStarted(ts=1.0, workflow="wf", version="1")])
            # The worker lost its lease and registers again while its sweep claims a run.
            _, lease = await asyncio.gather(a.register_worker("a", lease_seconds=30), a.claim_run(run_id))
            owner = (await client.run_owners([run_id])).get(run_id)
            if owner is None:  # given up by the registration: claimable by anyone, this worker included
                lease = await a.claim_run(run_id)
            # The database says the worker owns it: its commits go through.
            assert lease is not None and (await client.run_owners([run_id])).get(run_id) == "a"
            await a.checkpoint(rec(run_id, 2), [StepSucceeded(ts=2.0, step="s", index=1, attempt=1, result=1)])


async def test_a_lease_renewal_does_not_wait_for_a_busy_pool(pg_url: str) -> None:
    import asyncpg

    from wayline.persistence import PostgresStore

    store = PostgresStore(pg_url, pool_size=1)
    await store.start()
    try:
        async with pg_stores(pg_url, 1) as (client,):
            await store.register_worker("a", lease_seconds=30)
            await client.create_run(rec("r", 1), [RunStarted(ts=1.0, workflow="wf", version="1")])
            blocker = await asyncpg.connect(pg_url)
            try:
                async with blocker.transaction():
                    await blocker.execute("SELECT 1 FROM wayline.runs WHERE run_id = 'r' FOR UPDATE")
                    claim = asyncio.ensure_future(store.claim_run("r"))  # holds the pool's one connection
                    await asyncio.sleep(0.2)
                    assert not claim.done()
                    async with asyncio.timeout(10):  # a renewal through the pool waits for the claim
                        assert await store.renew_worker() == []
                    assert not claim.done()
            finally:
                await blocker.close()
            assert await claim is not None
    finally:
        await store.close()
