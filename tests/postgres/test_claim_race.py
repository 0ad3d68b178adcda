"""Two workers claiming the same run at the same moment (as both do when its message
arrives): exactly one gets it, and the other is told no, never a server error."""

from __future__ import annotations

import asyncio

import pytest

from _postgres import pg_stores

from .test_workers import create

pytestmark = pytest.mark.anyio


async def test_concurrent_claims_of_one_run_give_it_to_exactly_one_worker(pg_url: str) -> None:
    async with pg_stores(pg_url, 3) as (client, a, b):
        ids = [f"r{i:02}" for i in range(30)]
        await create(client, *ids)
        await a.register_worker("a")
        await b.register_worker("b")
        for run_id in ids:
            # The loser's UPDATE waits on the winner's row lock, then re-checks the row: that
            # re-check once failed with "ModifyTable should not be called during EvalPlanQual".
            got = await asyncio.gather(a.claim_run(run_id), b.claim_run(run_id))
            assert sum(lease is not None for lease in got) == 1, (run_id, got)
        owners = await client.run_owners(ids)
        assert set(owners.values()) <= {"a", "b"} and None not in owners.values()
