"""Throttle and debounce across two workers (and a client) on one PostgreSQL database: the
pace and the pending run are in the database, so every process sees the same ones."""

from __future__ import annotations

import anyio
import pytest

from _postgres import fresh_database
from wayline import Debounce, RunContext, RunStatus, Throttle, open_runtime, workflow

pytestmark = pytest.mark.anyio


@workflow(name="hourly", throttle=Throttle(2, 3600, burst=1))
async def hourly(ctx: RunContext, n: int) -> int:
    return n


@workflow(name="settle", debounce=Debounce(3600, key=lambda x: x["account"]))
async def settle(ctx: RunContext, job: dict[str, int]) -> int:
    return job["n"]


async def statuses(rt: object, workflow: str) -> list[RunStatus]:
    return sorted(r.status for r in await rt.list_runs(workflow=workflow))  # type: ignore[attr-defined]


async def test_two_workers_share_one_throttle() -> None:
    with fresh_database() as url:
        async with (
            open_runtime(url, workflows=[hourly], worker_id="a") as a,
            open_runtime(url, workflows=[hourly], worker_id="b") as b,
            open_runtime(url, workflows=[hourly], worker=False) as client,
        ):
            for i in range(3):
                await a.start(hourly, i, run_id=f"a{i}")
                await b.start(hourly, i, run_id=f"b{i}")
            await client.start(hourly, 9, run_id="c")
            assert await a.get_handle("a0").result() == 0
            await anyio.sleep(0.5)  # a few poller beats of both workers: nothing more may start
            runs = await a.list_runs(workflow="hourly")
            started = [r.run_id for r in runs if r.status is not RunStatus.QUEUED]
            assert sorted(started) == ["a0", "b0"], started  # 1 + burst at once, whoever started them
            why = (await b.describe("c")).waiting_for[0]
            assert why.startswith("throttled: 2 starts per 3600 s (+1 at once); next start at"), why


async def test_two_workers_debounce_into_one_run() -> None:
    with fresh_database() as url:
        async with (
            open_runtime(url, workflows=[settle], worker_id="a") as a,
            open_runtime(url, workflows=[settle], worker_id="b") as b,
        ):
            first = await a.start(settle, {"account": 1, "n": 1})
            second = await b.start(settle, {"account": 1, "n": 2})
            other = await b.start(settle, {"account": 2, "n": 3})
            third = await a.start(settle, {"account": 1, "n": 4})
            assert first.run_id == second.run_id == third.run_id != other.run_id
            info = await b.describe(first.run_id)
            assert info.status is RunStatus.QUEUED and info.input == {"account": 1, "n": 4}
            assert "3 starts so far" in info.waiting_for[0]
            assert await statuses(a, "settle") == [RunStatus.QUEUED, RunStatus.QUEUED]
