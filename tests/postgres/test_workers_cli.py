"""`wayline workers list` and the OWNER of runs on PostgreSQL: two registered workers (two
stores, as two worker processes are) with the runs they claimed, read by the real command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _postgres import pg_stores
from wayline.persistence import RunRecord, RunStarted, RunStatus, StepSucceeded

from .test_workers import create, expire, rec

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def wayline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "wayline.cli", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def run_json(*args: str) -> Any:
    done = await asyncio.to_thread(wayline, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def finished(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, workflow="wf", created_at=1.0, history_seq=2, status=RunStatus.SUCCEEDED)


async def test_workers_list_counts_the_runs_each_worker_owns(pg_url: str) -> None:
    async with pg_stores(pg_url, 3) as (client, a, b):
        await create(client, *(f"r{i}" for i in range(5)))  # a client's runs: no owner yet
        await a.register_worker("worker-a", lease_seconds=30)
        await b.register_worker("worker-b", lease_seconds=30)
        got_a = {lease.run_id for lease in await a.claim_runs(3)}
        got_b = {lease.run_id for lease in await b.claim_runs(3)}
        assert len(got_a) == 3 and len(got_b) == 2 and not got_a & got_b
        # A finished run is no longer owned: it leaves its worker's count and has no owner.
        done = sorted(got_a)[0]
        await a.checkpoint(finished(done), [StepSucceeded(ts=2.0, step="s", index=1, attempt=1, result=1)])

        workers = {w["worker_id"]: w for w in await run_json("workers", "list", "--db", pg_url)}
        assert {wid: w["runs"] for wid, w in workers.items()} == {"worker-a": 2, "worker-b": 2}
        assert {w["pid"] for w in workers.values()} == {os.getpid()}
        for w in workers.values():
            assert not w["expired"] and 0 < w["lease_left_s"] <= 30 and w["heartbeat_age_s"] < 30

        runs = {r["run_id"]: r["owner"] for r in await run_json("runs", "list", "--db", pg_url)}
        expected = {run_id: "worker-a" for run_id in got_a} | {run_id: "worker-b" for run_id in got_b}
        expected[done] = None
        assert runs == expected
        shown = await asyncio.to_thread(wayline, "runs", "show", sorted(got_b)[0], "--db", pg_url)
        assert "owner        worker-b" in shown.stdout

        table = await asyncio.to_thread(wayline, "workers", "list", "--db", pg_url)
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        assert header.split() == ["WORKER", "HOST", "PID", "RUNS", "STARTED", "HEARTBEAT", "LEASE"]
        assert [row.split()[0] for row in rows] == ["worker-a", "worker-b"]  # oldest first
        assert [row.split()[3] for row in rows] == ["2", "2"]
        assert all(row.endswith("s left") for row in rows)


async def test_an_expired_worker_is_shown_as_such_and_its_runs_move_on_a_claim(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (a, b):
        await a.register_worker("paused", lease_seconds=30)
        await b.register_worker("alive", lease_seconds=30)
        await create(a, "x")  # a worker owns the runs it creates
        await expire(a)
        workers = {w["worker_id"]: w for w in await run_json("workers", "list", "--db", pg_url)}
        assert workers["paused"]["expired"] and workers["paused"]["lease_left_s"] < 0
        assert workers["paused"]["runs"] == 1 and not workers["alive"]["expired"]
        table = await asyncio.to_thread(wayline, "workers", "list", "--db", pg_url)
        assert re.search(r"^paused .* expired \d+s ago$", table.stdout, re.MULTILINE), table.stdout
        # Its run still names it until another worker claims it.
        assert [r["owner"] for r in await run_json("runs", "list", "--db", pg_url)] == ["paused"]
        assert await b.claim_run("x") is not None
        assert [r["owner"] for r in await run_json("runs", "list", "--db", pg_url)] == ["alive"]
        assert [w["worker_id"] for w in await run_json("workers", "list", "--db", pg_url)] == ["alive"]


async def test_no_workers_is_said(pg_url: str) -> None:
    async with pg_stores(pg_url, 1) as (client,):
        await client.create_run(rec("lone"), [RunStarted(ts=1.0, workflow="wf", version="1")])
    done = await asyncio.to_thread(wayline, "workers", "list", "--db", pg_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no workers are registered on ")
    assert await run_json("workers", "list", "--db", pg_url) == []
    assert [r["owner"] for r in await run_json("runs", "list", "--db", pg_url)] == [None]


async def test_store_run_owners(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (a, b):
        await a.register_worker("a")
        await create(a, "mine")
        await create(b, "free")  # b is not registered: a client's run
        owners = await b.run_owners(["mine", "free", "nope"])
        assert owners == {"mine": "a", "free": None, "nope": None}


async def test_each_worker_reports_the_unfinished_runs_it_owns_as_a_gauge(pg_url: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from wayline.persistence import PostgresStore

    def owned(reader: InMemoryMetricReader) -> dict[str, int]:
        data = reader.get_metrics_data()
        if data is None:  # nothing observed at all
            return {}
        return {
            str(p.attributes["wayline.worker.id"]): int(p.value)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "wayline.worker.runs_owned"
            for p in metric.data.data_points
        }

    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    a, b = (PostgresStore(pg_url, meter_provider=MeterProvider(metric_readers=[r])) for r in readers)
    async with pg_stores(pg_url, 1) as (client,):
        await a.start()
        await b.start()
        try:
            assert owned(readers[0]) == {}  # not a worker yet: no series
            await create(client, "c1", "c2", "c3")
            await a.register_worker("a")
            await b.register_worker("b")
            await create(a, "a1")  # a worker owns the runs it creates
            assert len(await a.claim_runs(2)) == 2
            [lease] = await b.claim_runs(5)
            assert (owned(readers[0]), owned(readers[1])) == ({"a": 3}, {"b": 1})
            await a.checkpoint(finished("a1"), [])  # ended: no longer owned
            assert owned(readers[0]) == {"a": 2}
            await b.release_runs([lease.run_id])
            assert owned(readers[1]) == {"b": 0}
            # The gauge agrees with what the database says each worker owns.
            assert {w.worker_id: w.runs for w in await client.list_workers()} == {"a": 2, "b": 0}
        finally:
            await a.close()
            await b.close()
